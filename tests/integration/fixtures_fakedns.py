"""Name servers that misbehave on purpose, for the agent's fallback: silent, refusing, counting.

`FakeNameServer` is a UDP socket on 127.0.0.1 that either answers from a small table or reads
and drops every query (a hung server); either way it records each query datagram, so a test can
count lookups per name.  A resolver that retries a silent server sends the query again (with a
new message id), so `mark` (any counter of the test's, such as births so far) is recorded with
each query to tell the agent's rounds apart.  `closed_udp_port()` is a port nothing listens
on, which the kernel answers with ICMP port unreachable (a refused server).
"""

from __future__ import annotations

import select
import socket
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence

import dns.exception
import dns.flags
import dns.message
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.rrset
import pytest

from tests.ports import free_port

Records = Mapping[str, Sequence[tuple[str, str]]]  # name -> [(type, rdata text)]


def closed_udp_port() -> int:
    """A loopback UDP port with nothing bound to it."""
    return free_port(kind=socket.SOCK_DGRAM)


class FakeNameServer:
    """Answers `records` (NXDOMAIN for other names), or with `silent` answers nothing at all."""

    def __init__(self, records: Records | None = None, *, silent: bool = False,
                 mark: Callable[[], int] = lambda: 0) -> None:
        self.records = {name.lower(): list(rrs) for name, rrs in (records or {}).items()}
        self.silent = silent
        self.mark = mark
        self.queries: list[tuple[str, str, int]] = []  # name, type, mark; one per datagram
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.port = int(self.sock.getsockname()[1])
        self._stop = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def asked(self) -> list[tuple[str, str]]:
        """(name, type) of each query datagram, in order."""
        return [(name, rdtype) for name, rdtype, _ in self.queries]

    def _serve(self) -> None:
        while not self._stop.is_set():
            ready, _, _ = select.select([self.sock], [], [], 0.05)
            if not ready:
                continue
            wire, peer = self.sock.recvfrom(65535)
            try:
                query = dns.message.from_wire(wire)
            except dns.exception.DNSException:
                continue
            question = query.question[0]
            self.queries.append((question.name.to_text().lower(),
                                 dns.rdatatype.to_text(question.rdtype), self.mark()))
            if not self.silent:
                self.sock.sendto(self._answer(query).to_wire(), peer)

    def _answer(self, query: dns.message.Message) -> dns.message.Message:
        response = dns.message.make_response(query)
        response.flags |= dns.flags.AA
        question = query.question[0]
        name = question.name.to_text().lower()
        if name not in self.records:
            response.set_rcode(dns.rcode.NXDOMAIN)
            return response
        wanted = dns.rdatatype.to_text(question.rdtype)
        texts = [text for rdtype, text in self.records[name] if rdtype == wanted]
        if texts:
            response.answer.append(dns.rrset.from_text_list(question.name, 60, dns.rdataclass.IN,
                                                            wanted, texts))
        return response

    def close(self) -> None:
        self._stop.set()
        self.thread.join(5)
        self.sock.close()


@pytest.fixture
def fake_name_servers() -> Iterator[list[FakeNameServer]]:
    """Servers a test starts with `fake_name_servers.append(FakeNameServer(...))`; closed after."""
    made: list[FakeNameServer] = []
    yield made
    for server in made:
        server.close()
