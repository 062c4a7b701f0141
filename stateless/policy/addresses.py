"""Which host holds which address, so that a duplicate blocks both holders (pure)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from stateless.model.inventory import HostRecord, Problem


def held_addresses(host: HostRecord) -> dict[str, str]:
    """The addresses a host holds (answered or allocated from a pool), and how."""
    out: dict[str, str] = {}
    for key, value in host.answers.items():
        if key.startswith("vmknic.") and key.endswith(".address") and isinstance(value, str):
            out.setdefault(value, f"answer {key}")
    for allocation in host.allocations:
        out.setdefault(allocation.address, f"allocated from pool {allocation.pool} to "
                                           f"{allocation.item}")
    return out


class AddressIndex:
    """address -> {uuid: how that host holds it}, kept up to date one host at a time."""

    def __init__(self, hosts: Iterable[HostRecord] = ()) -> None:
        self._holders: dict[str, dict[str, str]] = {}
        for host in hosts:
            self._claim(host.uuid, held_addresses(host))

    def _claim(self, uuid: str, held: Mapping[str, str]) -> None:
        for address, how in held.items():
            self._holders.setdefault(address, {})[uuid] = how

    def _unclaim(self, uuid: str, held: Mapping[str, str]) -> None:
        for address in held:
            holders = self._holders.get(address)
            if holders is not None:
                holders.pop(uuid, None)
                if not holders:
                    del self._holders[address]

    def move(self, uuid: str, before: HostRecord | None, after: HostRecord | None) -> set[str]:
        """Replace one host's addresses; returns every host whose duplicates may have changed."""
        old = held_addresses(before) if before is not None else {}
        new = held_addresses(after) if after is not None else {}
        if old == new:
            return set()
        affected = {u for a in old.keys() | new.keys() for u in self._holders.get(a, {})}
        self._unclaim(uuid, old)
        self._claim(uuid, new)
        return affected | {u for a in new for u in self._holders.get(a, {})}

    def duplicates(self, host: HostRecord) -> list[Problem]:
        """An address belongs to one host: a problem for each one `host` shares."""
        problems = []
        for address, how in held_addresses(host).items():
            others = sorted((u, h) for u, h in self._holders.get(address, {}).items() if u != host.uuid)
            if others:
                who = "; ".join(f"host {u} ({h})" for u, h in others)
                problems.append(Problem(
                    dn=host.dn, attribute="statelessAnswer" if how.startswith("answer") else
                    "statelessAllocation", value=address,
                    reason=f"address {address} ({how}) is also held by {who}: an address belongs "
                           "to one host; change one of the answers or remove the duplicate "
                           "allocation, and neither host is applied until then"))
        return problems
