"""Discovery records against a real BIND named, and the twisted.names zone on a loopback port."""

from __future__ import annotations

import base64
import itertools
import threading
from collections.abc import Iterator

import dns.flags
import dns.message
import dns.query
import dns.rcode
import dns.rdatatype
import dns.resolver
import dns.update
import pytest
from twisted.internet.selectreactor import SelectReactor

from stateless.dns.errors import DiscoveryError
from stateless.dns.lookup import find_servers, resolver_for
from stateless.dns.register import Registrar
from stateless.dns.tsig import TsigKey
from stateless.dns.zone import ServerZone, listen
from stateless.model.inventory import Server
from tests.integration.fixtures_dns import Named
from tests.ports import free_port

_counter = itertools.count()


@pytest.fixture
def domain(named: Named) -> str:
    """A fresh subdomain of the test zone per test, so tests never see each other's records."""
    return f"d{next(_counter)}.{named.zone}"


def _registrar(named: Named, server: Server, domain: str, **kwargs: object) -> Registrar:
    return Registrar(server, domain, nameserver=named.host, port=named.port, key=named.key,
                     zone=named.zone, a_records=True, **kwargs)  # type: ignore[arg-type]


def _query(named: Named, name: str, rdtype: str) -> list[str]:
    response = dns.query.udp(dns.message.make_query(name, rdtype), named.host, port=named.port,
                             timeout=2)
    return sorted(rdata.to_text() for rrset in response.answer for rdata in rrset)


def _ttls(named: Named, name: str, rdtype: str) -> list[int]:
    response = dns.query.udp(dns.message.make_query(name, rdtype), named.host, port=named.port,
                             timeout=2)
    return [rrset.ttl for rrset in response.answer]


def test_register_makes_domain_site_and_address_records(named: Named, domain: str) -> None:
    server = Server("s1", "paris", "http://127.0.0.1:8080/", priority=10, weight=60)
    _registrar(named, server, domain).register()
    assert _query(named, f"_stateless._tcp.{domain}.", "SRV") == [f"10 60 8080 s1.{domain}."]
    assert _query(named, f"_stateless._tcp.paris._sites.{domain}.", "SRV") == [
        f"10 60 8080 s1.{domain}."]
    assert _query(named, f"s1.{domain}.", "A") == ["127.0.0.1"]


def test_refresh_is_idempotent_and_applies_a_new_ttl(named: Named, domain: str) -> None:
    server = Server("s1", "paris", "http://s1.example.test:8080/")
    _registrar(named, server, domain, ttl=120).register()
    _registrar(named, server, domain, ttl=120).refresh()
    _registrar(named, server, domain, ttl=90).refresh()
    assert _query(named, f"_stateless._tcp.{domain}.", "SRV") == ["0 100 8080 s1.example.test."]
    assert _ttls(named, f"_stateless._tcp.{domain}.", "SRV") == [90]


def test_unregister_removes_only_this_servers_records(named: Named, domain: str) -> None:
    one = _registrar(named, Server("s1", "paris", "http://127.0.0.1:8001/"), domain)
    two = _registrar(named, Server("s2", "paris", "http://127.0.0.1:8002/"), domain)
    one.register()
    two.register()
    assert len(_query(named, f"_stateless._tcp.{domain}.", "SRV")) == 2
    one.unregister()
    assert _query(named, f"_stateless._tcp.{domain}.", "SRV") == [f"0 100 8002 s2.{domain}."]
    assert _query(named, f"_stateless._tcp.paris._sites.{domain}.", "SRV") == [
        f"0 100 8002 s2.{domain}."]
    assert _query(named, f"s1.{domain}.", "A") == []
    one.unregister()  # removing what is gone is not an error (a second clean stop)


def test_unsigned_update_is_refused(named: Named, domain: str) -> None:
    update = dns.update.UpdateMessage(named.zone)
    update.add(f"_stateless._tcp.{domain}.", 60, "SRV", "0 0 80 evil.example.test.")
    response = dns.query.tcp(update, named.host, port=named.port, timeout=3)
    assert response.rcode() == dns.rcode.REFUSED
    assert _query(named, f"_stateless._tcp.{domain}.", "SRV") == []


def test_wrong_secret_is_rejected_with_a_clear_error(named: Named, domain: str) -> None:
    wrong = TsigKey(named.keyname, base64.b64encode(b"x" * 32).decode())
    registrar = Registrar(Server("s1", "paris", "http://127.0.0.1:8080/"), domain,
                          nameserver=named.host, port=named.port, key=wrong, zone=named.zone)
    with pytest.raises(DiscoveryError) as caught:
        registrar.register()
    text = str(caught.value)
    assert f"TSIG key {named.keyname} was rejected" in text
    assert f"{named.host}:{named.port}" in text and "key file" in text
    assert _query(named, f"_stateless._tcp.{domain}.", "SRV") == []


def test_unknown_key_name_is_rejected(named: Named, domain: str) -> None:
    stranger = TsigKey("no-such-key", named.key.secret)
    registrar = Registrar(Server("s1", "paris", "http://127.0.0.1:8080/"), domain,
                          nameserver=named.host, port=named.port, key=stranger, zone=named.zone)
    with pytest.raises(DiscoveryError, match="no-such-key"):
        registrar.register()


def test_unreachable_name_server_says_where(named: Named, domain: str) -> None:
    port = free_port()
    registrar = Registrar(Server("s1", "paris", "http://127.0.0.1:8080/"), domain,
                          nameserver="127.0.0.1", port=port, key=named.key, zone=named.zone,
                          timeout=1.0)
    with pytest.raises(DiscoveryError, match=f"127.0.0.1:{port}"):
        registrar.register()


def test_record_outside_the_zone_is_refused_before_sending(named: Named) -> None:
    with pytest.raises(DiscoveryError, match="outside zone"):
        Registrar(Server("s1", "paris", "http://127.0.0.1:8080/"), "other.test",
                  nameserver=named.host, port=named.port, key=named.key, zone=named.zone)


def test_find_servers_puts_the_site_first(named: Named, domain: str) -> None:
    servers = [Server("p1", "paris", "http://127.0.0.1:8001/", priority=0),
               Server("l1", "lyon", "http://127.0.0.1:8002/", priority=0),
               Server("l2", "lyon", "http://127.0.0.1:8003/", priority=5)]
    for server in servers:
        _registrar(named, server, domain).register()
    resolver = resolver_for([named.host], port=named.port)
    for _ in range(20):  # weighted order is random within a priority; the site rule is not
        found = find_servers(domain, "lyon", resolver=resolver)
        assert [t.url for t in found[:2]] == [f"http://l1.{domain}:8002", f"http://l2.{domain}:8003"]
        assert found[2].url == f"http://p1.{domain}:8001"
        assert {t.address for t in found} == {"127.0.0.1"}
    assert find_servers(f"empty.{domain}", "lyon", resolver=resolver) == []


def test_find_servers_raises_when_no_name_server_answers() -> None:
    resolver = resolver_for(["127.0.0.1"], port=free_port(), timeout=0.5)
    with pytest.raises(DiscoveryError, match=r"SRV lookup for domain example\.test"):
        find_servers("example.test", resolver=resolver)


# -- the twisted.names zone ---------------------------------------------------------------------

@pytest.fixture
def served_zone() -> Iterator[tuple[ServerZone, int]]:
    """A zone on a private reactor running in a thread (the global reactor stays untouched)."""
    reactor = SelectReactor()
    zone = ServerZone("zone.test", [Server("p1", "paris", "http://127.0.0.1:8001/"),
                                    Server("l1", "lyon", "http://l1.zone.test:8002/", priority=3)],
                      addresses={"l1.zone.test": "127.0.0.2"})
    port = free_port()
    ready = threading.Event()
    listening: list[object] = []

    def start() -> None:
        try:
            listening.extend(listen(zone, reactor, port))
        finally:
            ready.set()

    reactor.callWhenRunning(start)
    thread = threading.Thread(target=reactor.run, kwargs={"installSignalHandlers": False},
                              daemon=True)
    thread.start()
    assert ready.wait(10) and len(listening) == 2
    try:
        yield zone, port
    finally:
        reactor.callFromThread(reactor.stop)
        thread.join(10)
        assert not thread.is_alive()


def _zone_query(port: int, name: str, rdtype: str, tcp: bool = False) -> dns.message.Message:
    query = dns.message.make_query(name, rdtype)
    send = dns.query.tcp if tcp else dns.query.udp
    return send(query, "127.0.0.1", port=port, timeout=2)


def test_twisted_zone_answers_srv_with_addresses(served_zone: tuple[ServerZone, int]) -> None:
    _zone, port = served_zone
    for tcp in (False, True):
        response = _zone_query(port, "_stateless._tcp.zone.test.", "SRV", tcp=tcp)
        assert response.flags & dns.flags.AA
        assert sorted(r.to_text() for r in response.answer[0]) == [
            "0 100 8001 p1.zone.test.", "3 100 8002 l1.zone.test."]
        additional = {rr.name.to_text(): rr[0].to_text() for rr in response.additional}
        assert additional == {"p1.zone.test.": "127.0.0.1", "l1.zone.test.": "127.0.0.2"}
    site = _zone_query(port, "_stateless._tcp.lyon._sites.zone.test.", "SRV")
    assert [r.to_text() for r in site.answer[0]] == ["3 100 8002 l1.zone.test."]
    assert _zone_query(port, "nothing.zone.test.", "SRV").rcode() == dns.rcode.NXDOMAIN
    ns = _zone_query(port, "zone.test.", "NS")
    assert [r.to_text() for r in ns.answer[0]] == ["ns.zone.test."]


def test_twisted_zone_update_is_seen_by_lookup(served_zone: tuple[ServerZone, int]) -> None:
    zone, port = served_zone
    resolver = resolver_for(["127.0.0.1"], port=port)
    before = _zone_query(port, "zone.test.", "SOA").answer[0][0].serial
    found = find_servers("zone.test", "lyon", resolver=resolver)
    assert [t.url for t in found] == ["http://l1.zone.test:8002", "http://p1.zone.test:8001"]
    zone.update([Server("p2", "paris", "http://127.0.0.3:9000/")])
    assert _zone_query(port, "zone.test.", "SOA").answer[0][0].serial == before + 1
    found = find_servers("zone.test", "lyon", resolver=resolver)
    assert [(t.url, t.address) for t in found] == [("http://p2.zone.test:9000", "127.0.0.3")]
