"""The LDAP schema and base DIT, defined once.

`schema/generate.py` writes the OpenLDAP (`.schema`, cn=config `.ldif`) and 389-DS files from
these tables, and the adapter takes its attribute names from here, so the three schema files,
the base DIT and the code cannot diverge.

OIDs live under an X.667 UUID arc (2.25.<uuid as decimal>), which needs no registration:
`.1.n` are attribute types, `.2.n` object classes.
"""

from __future__ import annotations

import attrs

ARC = "2.25.237648715018121080275270722828873560390"
ATTR_ARC = f"{ARC}.1"
CLASS_ARC = f"{ARC}.2"

# Syntax OIDs (RFC 4517).
BOOLEAN = "1.3.6.1.4.1.1466.115.121.1.7"
DSTRING = "1.3.6.1.4.1.1466.115.121.1.15"
GENTIME = "1.3.6.1.4.1.1466.115.121.1.24"
IA5 = "1.3.6.1.4.1.1466.115.121.1.26"
INTEGER = "1.3.6.1.4.1.1466.115.121.1.27"
DN = "1.3.6.1.4.1.1466.115.121.1.12"

_RULES: dict[tuple[str, bool], tuple[str, str | None, str | None]] = {
    # (syntax, case-exact) -> (EQUALITY, ORDERING, SUBSTR)
    (BOOLEAN, True): ("booleanMatch", None, None),
    (DN, True): ("distinguishedNameMatch", None, None),
    (INTEGER, True): ("integerMatch", "integerOrderingMatch", None),
    (GENTIME, True): ("generalizedTimeMatch", "generalizedTimeOrderingMatch", None),
    (DSTRING, True): ("caseExactMatch", None, "caseExactSubstringsMatch"),
    (DSTRING, False): ("caseIgnoreMatch", None, "caseIgnoreSubstringsMatch"),
    (IA5, True): ("caseExactIA5Match", None, "caseExactIA5SubstringsMatch"),
    (IA5, False): ("caseIgnoreIA5Match", None, "caseIgnoreIA5SubstringsMatch"),
}


@attrs.frozen
class AttributeType:
    number: int
    name: str
    desc: str
    syntax: str
    single: bool = False
    exact: bool = True

    @property
    def oid(self) -> str:
        return f"{ATTR_ARC}.{self.number}"

    def definition(self) -> str:
        """RFC 4512 AttributeTypeDescription."""
        equality, ordering, substr = _RULES[(self.syntax, self.exact)]
        parts = [f"( {self.oid}", f"NAME '{self.name}'", f"DESC '{self.desc}'", f"EQUALITY {equality}"]
        if ordering:
            parts.append(f"ORDERING {ordering}")
        if substr:
            parts.append(f"SUBSTR {substr}")
        parts.append(f"SYNTAX {self.syntax}")
        if self.single:
            parts.append("SINGLE-VALUE")
        return " ".join(parts) + " )"


@attrs.frozen
class ObjectClass:
    number: int
    name: str
    desc: str
    kind: str  # STRUCTURAL or AUXILIARY
    must: tuple[str, ...] = ()
    may: tuple[str, ...] = ()
    sup: str = "top"

    @property
    def oid(self) -> str:
        return f"{CLASS_ARC}.{self.number}"

    def definition(self) -> str:
        parts = [f"( {self.oid}", f"NAME '{self.name}'", f"DESC '{self.desc}'", f"SUP {self.sup}",
                 self.kind]
        if self.must:
            parts.append(f"MUST {_oids(self.must)}")
        if self.may:
            parts.append(f"MAY {_oids(self.may)}")
        return " ".join(parts) + " )"


def _oids(names: tuple[str, ...]) -> str:
    return names[0] if len(names) == 1 else "( " + " $ ".join(names) + " )"


def _a(number: int, name: str, desc: str, syntax: str, *, single: bool = False,
       exact: bool = True) -> AttributeType:
    return AttributeType(number, name, desc, syntax, single, exact)


# Numbers are permanent: append new attributes, never renumber.
ATTRIBUTES: tuple[AttributeType, ...] = (
    # containers and links
    _a(1, "statelessKind", "container kind: root, datacenter, folder or cluster", DSTRING,
       single=True, exact=False),
    _a(2, "statelessBlockInheritance", "TRUE: non-enforced links above do not apply", BOOLEAN,
       single=True),
    _a(3, "statelessLinkPolicy", "name of the linked policy", DSTRING, single=True),
    _a(4, "statelessOrder", "link or rule order, lower first", INTEGER, single=True),
    _a(5, "statelessEnforced", "TRUE: the link wins over links below and ignores blocks", BOOLEAN,
       single=True),
    _a(6, "statelessDisabled", "TRUE: the link is ignored", BOOLEAN, single=True),
    # policy settings: one value per item
    _a(10, "statelessVSwitch", "vSwitch item: NAME; field=value; ...", DSTRING),
    _a(11, "statelessPortGroup", "port group item: NAME; field=value; ...", DSTRING),
    _a(12, "statelessVmknic", "VMkernel NIC item: PORTGROUP; field=value; ...", DSTRING),
    _a(13, "statelessNfsDatastore", "NFS datastore item: NAME; field=value; ...", DSTRING),
    _a(14, "statelessService", "service item: KEY; policy=on|off|automatic", DSTRING),
    _a(15, "statelessAdvanced", "advanced option: Option.Key=value", DSTRING),
    _a(16, "statelessNtp", "NTP: servers=a,b; policy=on", DSTRING, single=True),
    _a(17, "statelessDns", "DNS: servers=a,b; search=d1,d2", DSTRING, single=True),
    _a(18, "statelessSyslog", "syslog: targets=udp://host:514", DSTRING, single=True),
    _a(19, "statelessIscsi", "iSCSI: enabled=..; targets=..; chap.name=..; chap.secret=..", DSTRING,
       single=True),
    _a(20, "statelessLockdown", "lockdown: mode=normal; exceptions=u1,u2", DSTRING, single=True),
    _a(21, "statelessSnmp", "SNMP: enabled=..; communities=..; targets=..", DSTRING, single=True),
    _a(22, "statelessRemove", "explicit removal of an inherited item or key", DSTRING),
    # hosts
    _a(30, "statelessUuid", "SMBIOS system UUID, lower-case hyphenated", IA5, single=True,
       exact=False),
    _a(31, "statelessLocation", "inventory path such as /DC1/Prod/ClusterA", DSTRING, single=True),
    _a(32, "statelessSerial", "serial number", DSTRING, single=True, exact=False),
    _a(33, "statelessVendor", "hardware vendor", DSTRING, single=True, exact=False),
    _a(34, "statelessModel", "hardware model", DSTRING, single=True, exact=False),
    _a(35, "statelessAsset", "asset tag", DSTRING, single=True, exact=False),
    _a(36, "statelessOemString", "SMBIOS OEM string", DSTRING, exact=False),
    _a(37, "statelessMac", "MAC address aa:bb:cc:dd:ee:ff", IA5, exact=False),
    _a(38, "statelessBootMac", "MAC address the host booted from", IA5, single=True, exact=False),
    _a(39, "statelessIpv4", "IPv4 address the host was born with", IA5, single=True),
    _a(40, "statelessHostname", "host name (one DNS label)", IA5, single=True, exact=False),
    _a(41, "statelessDomain", "DNS domain", IA5, single=True, exact=False),
    _a(42, "statelessAnswer", "host answer: key=value", DSTRING),
    _a(43, "statelessAllocation", "pool allocation: vmknic.PG; pool=NAME; address=A", DSTRING),
    _a(44, "statelessState", "pending, applying, compliant, drifted, failed, quarantined", DSTRING,
       single=True, exact=False),
    _a(45, "statelessStateReason", "why the host is in its state", DSTRING, single=True),
    _a(46, "statelessAppliedDigest", "digest of the last applied configuration", IA5, single=True),
    _a(47, "statelessLastBirth", "time of the last birth message", GENTIME, single=True),
    _a(48, "statelessOwner", "server that accepted the birth; the only writer of the state",
       DSTRING, single=True),
    # pools
    _a(50, "statelessRangeStart", "first address of the pool", IA5, single=True),
    _a(51, "statelessRangeEnd", "last address of the pool", IA5, single=True),
    _a(52, "statelessNetmask", "netmask such as 255.255.255.0", IA5, single=True),
    _a(53, "statelessGateway", "gateway address", IA5, single=True),
    _a(54, "statelessAllocated", "an address taken from the pool (added atomically)", IA5),
    # sites, servers, vCenters
    _a(60, "statelessSubnet", "site subnet in CIDR form", IA5),
    _a(61, "statelessSiteList", "the two sites a site link joins", DSTRING),
    _a(62, "statelessCost", "site link cost, lower is closer", INTEGER, single=True),
    _a(63, "statelessSite", "site of a server", DSTRING, single=True),
    _a(64, "statelessUrl", "URL", IA5, single=True),
    _a(65, "statelessVCenterName", "name of a vCenter a server serves", DSTRING),
    _a(66, "statelessPriority", "SRV priority, lower first", INTEGER, single=True),
    _a(67, "statelessWeight", "SRV weight", INTEGER, single=True),
    _a(68, "statelessUser", "user name", DSTRING, single=True),
    _a(69, "statelessPassword", "credential, opaque (encrypted) string", DSTRING, single=True),
    _a(70, "statelessThumbprint", "TLS certificate SHA-1 or SHA-256 thumbprint", IA5, single=True,
       exact=False),
    # rules and images
    _a(80, "statelessMatch", "rule pattern: field=pattern", DSTRING),
    _a(81, "statelessImageName", "name of a boot image", DSTRING, single=True),
    _a(82, "statelessPolicyName", "name of a policy the rule links", DSTRING),
    _a(83, "statelessVersion", "image version", DSTRING, single=True),
    _a(84, "statelessKernel", "image kernel", DSTRING, single=True),
    _a(85, "statelessModule", "image module, in order", DSTRING),
    _a(86, "statelessOptions", "kernel options", DSTRING, single=True),
    # security: enrollment, admission, delegation, pinned identity, replay store, sealed secrets
    _a(90, "statelessEnrollKey", "site enrollment key: KEYID; created=TIME; secret=SEALED", DSTRING),
    _a(91, "statelessAdmission", "admission of unknown hosts: open, rules or approval", DSTRING,
       single=True, exact=False),
    _a(92, "statelessAdmin", "DN of an account that administers this site (or entry)", DN),
    _a(93, "statelessPinnedThumbprint", "host certificate thumbprint pinned at first approval", IA5,
       single=True, exact=False),
    _a(94, "statelessPinnedSerial", "serial number pinned at first approval", DSTRING, single=True,
       exact=False),
    _a(95, "statelessPinnedMac", "MAC address pinned at first approval", IA5, exact=False),
    _a(96, "statelessPinnedName", "name the host is added to vCenter under, pinned at approval",
       IA5, single=True, exact=False),
    _a(97, "statelessPinnedAt", "time the identity was pinned", GENTIME, single=True),
    _a(98, "statelessNonce", "SITE:NONCE of a signed birth (replay store)", IA5, single=True),
    _a(99, "statelessExpires", "time after which the entry may be purged", GENTIME, single=True),
    _a(100, "statelessSealed", "a sealed secret: aesgcm:KEYID:NONCE:CIPHERTEXT", IA5, single=True),
    _a(101, "statelessSecretKind", "kind of a stored secret: chap, snmp or root-password", DSTRING,
       single=True, exact=False),
    # boot: a container's image assignment before the current one (rollback restores it)
    _a(110, "statelessPreviousImage", "boot image assigned before the current one", DSTRING,
       single=True),
    _a(111, "statelessBootImage", "boot image a host reported at its last birth", DSTRING,
       single=True),
    # federation: a server's lease (its liveness, and what its ownership of hosts rests on)
    _a(130, "statelessLeaseExpiry", "until when a server holds its lease (renewed while it runs)",
       GENTIME, single=True),
    # admission: what a quarantined birth claimed, kept apart from the host's (pinned) identity
    _a(140, "statelessClaim", "identity a quarantined birth claimed (JSON), until approved or "
       "denied", DSTRING, single=True),
    # local accounts of the hosts: the root password, as a reference to a sealed secret
    _a(180, "statelessAccount", "accounts: root.password=secret:NAME", DSTRING, single=True),
)

_POLICY_SETTINGS = ("statelessVSwitch", "statelessPortGroup", "statelessVmknic",
                    "statelessNfsDatastore", "statelessService", "statelessAdvanced", "statelessNtp",
                    "statelessDns", "statelessSyslog", "statelessIscsi", "statelessLockdown",
                    "statelessSnmp", "statelessAccount", "statelessRemove")
_PINNED = ("statelessPinnedThumbprint", "statelessPinnedSerial", "statelessPinnedMac",
           "statelessPinnedName", "statelessPinnedAt")
_IDENTITY = ("statelessSerial", "statelessVendor", "statelessModel", "statelessAsset",
             "statelessOemString", "statelessMac", "statelessBootMac", "statelessIpv4",
             "statelessHostname", "statelessDomain")

OBJECT_CLASSES: tuple[ObjectClass, ...] = (
    ObjectClass(1, "statelessSite", "a site: the subnets of one location", "STRUCTURAL",
                ("cn",), ("statelessSubnet", "description", "statelessEnrollKey",
                          "statelessAdmission", "statelessAdmin")),
    ObjectClass(2, "statelessSiteLink", "two sites and the cost between them", "STRUCTURAL",
                ("cn", "statelessSiteList", "statelessCost"), ("description",)),
    ObjectClass(3, "statelessServer", "one statelessd", "STRUCTURAL",
                ("cn", "statelessSite", "statelessUrl"),
                ("statelessVCenterName", "statelessPriority", "statelessWeight", "description",
                 "statelessLeaseExpiry")),
    ObjectClass(4, "statelessVCenter", "a vCenter and how to reach it", "STRUCTURAL",
                ("cn", "statelessUrl"),
                ("statelessUser", "statelessPassword", "statelessThumbprint", "description")),
    ObjectClass(5, "statelessPolicy", "a named bundle of settings", "STRUCTURAL", ("cn",),
                ("description", *_POLICY_SETTINGS, "statelessSite", "statelessAdmin")),
    ObjectClass(6, "statelessContainer", "datacenter, folder or cluster", "STRUCTURAL",
                ("cn", "statelessKind"), ("statelessBlockInheritance", "description",
                                          "statelessSite", "statelessAdmin",
                                          "statelessVCenterName", "statelessImageName",
                                          "statelessPreviousImage")),
    ObjectClass(7, "statelessPolicyLink", "a policy linked at its parent entry", "STRUCTURAL",
                ("statelessLinkPolicy", "statelessOrder"),
                ("statelessEnforced", "statelessDisabled", "description")),
    ObjectClass(8, "statelessRule", "deploy rule: identity patterns to location, image, policies",
                "STRUCTURAL", ("cn", "statelessOrder"),
                ("statelessMatch", "statelessLocation", "statelessImageName", "statelessPolicyName",
                 "description")),
    ObjectClass(9, "statelessImage", "a boot image", "STRUCTURAL", ("cn",),
                ("statelessVersion", "statelessKernel", "statelessModule", "statelessOptions",
                 "statelessUrl", "description")),
    ObjectClass(10, "statelessIpPool", "an IPv4 range for VMkernel NICs", "STRUCTURAL",
                ("cn", "statelessRangeStart", "statelessRangeEnd", "statelessNetmask"),
                ("statelessGateway", "statelessAllocated", "description")),
    ObjectClass(11, "statelessHost", "one host, keyed by its hardware UUID", "STRUCTURAL",
                ("statelessUuid",),
                ("cn", "statelessLocation", *_IDENTITY, "statelessAnswer", "statelessAllocation",
                 "statelessState", "statelessStateReason", "statelessAppliedDigest",
                 "statelessLastBirth", "statelessOwner", "statelessThumbprint", "description",
                 *_PINNED, "statelessBootImage", "statelessClaim")),
    ObjectClass(12, "statelessInventoryRoot", "marks ou=inventory as the root container",
                "AUXILIARY", (), ("statelessKind", "description", "statelessVCenterName",
                                  "statelessImageName", "statelessPreviousImage")),
    ObjectClass(13, "statelessNonceRecord", "a nonce of a signed birth, kept until it expires",
                "STRUCTURAL", ("statelessNonce", "statelessExpires"), ("statelessSite",)),
    ObjectClass(14, "statelessSecret", "a named secret, sealed (CHAP, SNMP community, password)",
                "STRUCTURAL", ("cn", "statelessSealed"), ("statelessSecretKind", "description")),
)

ATTRIBUTE_NAMES = tuple(a.name for a in ATTRIBUTES)

# The base DIT below the base DN: (ou, extra object class or None).
BASE_OUS: tuple[str, ...] = ("sites", "sitelinks", "servers", "vcenters", "policies", "inventory",
                             "rules", "images", "pools", "hosts", "nonces", "secrets", "groups",
                             "accounts")
# Branches no host configuration is built from (the snapshot skips what is below them): the
# replay store, sealed named secrets, and the accounts and groups the ACLs name.
SECURITY_OUS: tuple[str, ...] = ("nonces", "secrets", "groups", "accounts")
INVENTORY_ROOT_CLASS = "statelessInventoryRoot"


def base_entries(base: str) -> list[tuple[str, dict[str, list[str]]]]:
    """(dn, attributes) of the base DIT, parents first."""
    top = base.split(",", 1)[0].split("=", 1)[1]
    out: list[tuple[str, dict[str, list[str]]]] = [
        (base, {"objectClass": ["top", "organizationalUnit"], "ou": [top]})]
    for ou in BASE_OUS:
        entry = {"objectClass": ["top", "organizationalUnit"], "ou": [ou]}
        if ou == "inventory":
            entry["objectClass"].append(INVENTORY_ROOT_CLASS)
            entry["statelessKind"] = ["root"]
        out.append((f"ou={ou},{base}", entry))
    return out
