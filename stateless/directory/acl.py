"""Directory ACLs for OpenLDAP (olcAccess), written as data so the LDIF is generated and tested.

Who may do what below the base `B`:

- stateless admins, members of `cn=admins,ou=groups,B` (groupOfNames): everything;
- site admins, the DNs a site entry names in `statelessAdmin`: write the inventory subtree of
  their site (every container whose `statelessSite`, or an ancestor's, names the site, with its
  links and sub-containers), the policies whose `statelessSite` names it (and create such
  policies), and read everything else but secrets;
- the daemons, members of `cn=daemons,ou=groups,B`: read everything (sealed values included:
  they open them), write host entries, pool allocations (`statelessAllocated`), the nonce
  store, and their own server entry `cn=NAME,ou=servers,B`, which belongs to the account
  `cn=NAME,ou=accounts,B` (a naming rule: a daemon's account is named like its server);
- everyone else, anonymous included: nothing (anonymous may bind).

`schema/generate.py` writes `schema/acl/openldap.ldif` from `openldap_ldif()`.
"""

from __future__ import annotations

import re

DATABASE = "olcDatabase={1}mdb,cn=config"


def _rules(base: str) -> list[str]:
    admins = f'group.exact="cn=admins,ou=groups,{base}"'
    daemons = f'group.exact="cn=daemons,ou=groups,{base}"'
    sites = f"ou=sites,{base}"
    site_admins = f'set="user & [ldap:///{sites}??one?(objectClass=statelessSite)]/statelessAdmin"'

    def owners(targets: str) -> str:
        """The admins of the sites `targets` (a set of entries) name in statelessSite."""
        return f'set="user & ([cn=] + {targets}/statelessSite + [,{sites}])/statelessAdmin"'

    servers = re.escape(f"ou=servers,{base}")
    return [
        f'to dn.subtree="{base}" attrs=userPassword by {admins} write by self write '
        "by anonymous auth by * none",
        f'to dn.subtree="{base}" by {admins} write by * break',
        f'to dn.subtree="ou=nonces,{base}" by {daemons} write by * none',
        f'to dn.subtree="ou=secrets,{base}" by {daemons} read by * none',
        f'to dn.subtree="{base}" attrs=statelessPassword,statelessEnrollKey,statelessSealed '
        f"by {daemons} read by * none",
        f'to dn.subtree="ou=hosts,{base}" by {daemons} write by {site_admins} read by * none',
        f'to dn.regex="^cn=([^,]+),{servers}$" by dn.exact,expand="cn=$1,ou=accounts,{base}" '
        f"write by {daemons} read by {site_admins} read by * none",
        f'to dn.base="ou=servers,{base}" attrs=children by {daemons} write by * break',
        f'to dn.one="ou=pools,{base}" attrs=statelessAllocated by {daemons} write by * break',
        f'to dn.subtree="ou=inventory,{base}" attrs=statelessSite by {daemons} read '
        f"by {site_admins} read by * none",
        f'to dn.subtree="ou=inventory,{base}" by {daemons} read by {owners("(this | this/-*)")} '
        f"write by {site_admins} read by * none",
        f'to dn.base="ou=policies,{base}" attrs=children by {site_admins} write by * break',
        f'to dn.one="ou=policies,{base}" by {daemons} read by {owners("this")} write '
        f"by {site_admins} read by * none",
        f'to dn.subtree="{base}" by {daemons} read by {site_admins} read by * none',
    ]


def olc_access(base: str) -> list[str]:
    """The olcAccess values, numbered, in the order slapd must evaluate them."""
    return [f"{{{n}}}{rule}" for n, rule in enumerate(_rules(base))]


def openldap_ldif(base: str, database: str = DATABASE) -> str:
    """An ldapmodify LDIF that puts the rules first in the database's access list.

    `add:` with numbered values inserts them before any rules the database already has
    (which keep applying to entries outside the stateless subtree)."""
    lines = [f"dn: {database}", "changetype: modify", "add: olcAccess"]
    lines += [f"olcAccess: {rule}" for rule in olc_access(base)]
    return "\n".join(lines) + "\n"
