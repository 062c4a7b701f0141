"""ldap3 adapter: the directory as the store of policies, inventory and hosts.

`Directory` reads snapshots and writes entries; `EmbeddedDirectory` runs a private slapd;
`syntax` is the pure text codec of setting attributes; `schemadef` the one schema definition.
"""

from stateless.directory.client import Directory
from stateless.directory.connection import DEFAULT_BASE

__all__ = ["DEFAULT_BASE", "Directory"]
