"""A host's advanced-option catalogue (`OptionManager.supportedOption`), read once per host.

A real ESXi declares about 1,000 options, each with a label, a summary and a typed
`optionType`: decoding that costs far more than reading the host's configuration, so a
client reads it once per host and keeps only the compact `OptionType` values.  Hosts of one
build declare the same catalogue, so identical catalogues are stored once however many
hosts share them.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping
from typing import Any

from pyVmomi import vim

from stateless.errors import VCenterError
from stateless.model.config import HostConfig
from stateless.model.inventory import frozen_map
from stateless.plan import OptionCatalogue, OptionType, UnsupportedOptionError, check_options
from stateless.vcenter.faults import Where
from stateless.vcenter.session import PC, Session

# vim.option.*Option class -> OptionType.kind.
_KINDS: tuple[tuple[type, str], ...] = (
    (vim.option.LongOption, "long"),
    (vim.option.IntOption, "int"),
    (vim.option.FloatOption, "float"),
    (vim.option.BoolOption, "bool"),
    (vim.option.ChoiceOption, "choice"),
    (vim.option.StringOption, "string"),
)


def option_type(definition: Any) -> OptionType:
    """The compact form of one vim.option.OptionDef."""
    declared = definition.optionType
    readonly = bool(getattr(declared, "valueIsReadonly", False))
    kind = next((k for cls, k in _KINDS if isinstance(declared, cls)),
                type(declared).__name__ if declared is not None else "unknown")
    if kind in ("long", "int"):
        return OptionType(definition.key, kind, int(declared.min), int(declared.max),
                          readonly=readonly)
    if kind == "choice":
        choices = tuple(str(c.key) for c in declared.choiceInfo or ())
        return OptionType(definition.key, kind, choices=choices, readonly=readonly)
    if kind == "string":
        return OptionType(definition.key, kind, valid_characters=declared.validCharacters or "",
                          readonly=readonly)
    return OptionType(definition.key, kind, readonly=readonly)


def read_catalogue(session: Session, where: Where, option_manager: Any) -> list[OptionType]:
    """The host's supportedOption in one RetrievePropertiesEx."""
    if option_manager is None:
        raise VCenterError(f"{where.describe('read supported options')}: the host has no "
                           "advanced option manager; is it connected?")
    spec = PC.FilterSpec(objectSet=[PC.ObjectSpec(obj=option_manager, skip=False)],
                         propSet=[PC.PropertySpec(type=vim.option.OptionManager,
                                                  pathSet=["supportedOption"])])
    definitions: list[Any] = []
    for content in session.retrieve(where, "read supported options", [spec]):
        for prop in content.propSet or ():
            definitions += list(prop.val or ())
    return [option_type(d) for d in definitions]


class Catalogues:
    """Catalogues per host (by managed object id), each distinct catalogue stored once."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._hosts: dict[str, OptionCatalogue] = {}
        self._distinct: dict[tuple[OptionType, ...], OptionCatalogue] = {}

    def get(self, moid: str) -> OptionCatalogue | None:
        with self._lock:
            return self._hosts.get(moid)

    def put(self, moid: str, options: Iterable[OptionType]) -> OptionCatalogue:
        key = tuple(sorted(options, key=lambda o: o.key))
        with self._lock:
            catalogue = self._distinct.get(key)
            if catalogue is None:
                catalogue = self._distinct[key] = frozen_map({o.key: o for o in key})
            self._hosts[moid] = catalogue
            return catalogue

    def drop(self, moid: str) -> None:
        """Forget a host (removed, or placed again: it may run another build now)."""
        with self._lock:
            self._hosts.pop(moid, None)

    def __len__(self) -> int:
        with self._lock:
            return len(self._distinct)


def needs_catalogue(desired: HostConfig) -> bool:
    return bool(desired.advanced) or desired.syslog is not None


def checked(desired: HostConfig, catalogue: Mapping[str, OptionType], where: Where) -> HostConfig:
    """`desired` with advanced values in their hosts' types; UnsupportedOptionError otherwise."""
    result, problems = check_options(catalogue, desired)
    if problems:
        raise UnsupportedOptionError(where.describe("check advanced options"), problems)
    return result


__all__ = ["Catalogues", "checked", "needs_catalogue", "option_type", "read_catalogue"]
