"""`python -m stateless.agent`: run the boot agent."""

import sys

from stateless.agent.cli import main

sys.exit(main())
