"""`python -m stateless.cli`."""

from stateless.cli import main

raise SystemExit(main())
