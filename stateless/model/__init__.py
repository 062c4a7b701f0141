"""Immutable value types shared by every part; nothing here does I/O."""

from stateless.model.effective import EffectiveConfig, EffectiveSetting, Overridden, Removal
from stateless.model.identity import RULE_FIELDS, HostIdentity
from stateless.model.inventory import (
    Allocation,
    Container,
    ContainerKind,
    HostRecord,
    HostState,
    Image,
    IpPool,
    Link,
    Policy,
    Problem,
    Rule,
    Server,
    Site,
    SiteLink,
    Snapshot,
    VCenter,
)
from stateless.model.security import AdmissionMode, EnrollKey, PinnedIdentity
from stateless.model.settings import SettingValue, coerce, parse_key

__all__ = [
    "RULE_FIELDS",
    "AdmissionMode",
    "Allocation",
    "Container",
    "ContainerKind",
    "EffectiveConfig",
    "EffectiveSetting",
    "EnrollKey",
    "HostIdentity",
    "HostRecord",
    "HostState",
    "Image",
    "IpPool",
    "Link",
    "Overridden",
    "PinnedIdentity",
    "Policy",
    "Problem",
    "Removal",
    "Rule",
    "Server",
    "SettingValue",
    "Site",
    "SiteLink",
    "Snapshot",
    "VCenter",
    "coerce",
    "parse_key",
]
