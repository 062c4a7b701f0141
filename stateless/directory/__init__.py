"""ldap3 adapter: the directory as the store of policies, inventory and hosts."""
