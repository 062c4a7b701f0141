"""Every problem of a directory snapshot, in one list (`stateless problems`, the daemon's gauge).

A problem is something an admin must fix in the directory: an entry or value that could not be
read, a policy value the model refuses, a link to a policy that does not exist, a deploy rule
that cannot be matched, an address held by two hosts. What a problem blocks is decided during
resolution; this list only says what is wrong and where.
"""

from __future__ import annotations

from collections.abc import Iterator

from stateless.model.inventory import Link, Problem, Scope, Snapshot
from stateless.policy.addresses import AddressIndex
from stateless.policy.resolve import Resolver
from stateless.rules import RuleError, compile_rules


def problem_order(problem: Problem) -> tuple[str, str, str, str]:
    """The order problems are listed in (by DN, then attribute, value and reason)."""
    return (problem.dn.lower(), problem.attribute, problem.value, problem.reason)


def directory_problems(snapshot: Snapshot) -> list[Problem]:
    """All problems, each once, ordered by DN then attribute."""
    resolver = Resolver(snapshot)
    found: dict[Problem, None] = dict.fromkeys(snapshot.problems)
    for policy in snapshot.policies.values():
        found.update(dict.fromkeys(resolver.policy_problems(policy)))
    index = AddressIndex(snapshot.hosts.values())
    for host in snapshot.hosts.values():
        found.update(dict.fromkeys(host.problems))
        found.update(dict.fromkeys(index.duplicates(host)))
    found.update(dict.fromkeys(_dangling(snapshot)))
    try:
        compile_rules(snapshot.rules)
    except RuleError as err:
        found[Problem(err.rule.dn, "statelessMatch", f"{err.field}={err.pattern}", err.reason)] = None
    return sorted(found, key=problem_order)


def _dangling(snapshot: Snapshot) -> Iterator[Problem]:
    """Links naming a policy that does not exist (an unreadable one is a problem already)."""
    owners: list[tuple[str, str, tuple[Link, ...]]] = [
        (c.path, c.dn, c.links) for c in snapshot.containers.values()]
    owners += [(f"host:{h.uuid}", h.dn, h.links) for h in snapshot.hosts.values()]
    for where, dn, links in owners:
        for link in links:
            if link.policy not in snapshot.policies and (Scope.POLICY, link.policy) not in snapshot.blocking:
                yield Problem(f"statelessLinkPolicy={link.policy},{dn}", "statelessLinkPolicy", link.policy,
                              f"links policy {link.policy!r} at {where}, but no such policy exists: "
                              "create it under ou=policies or remove the link")
