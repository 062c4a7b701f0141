"""A real TLS server on 127.0.0.1 for the security tests: answers each connection with one
line, `hello <client common name or ->`, and records what happened."""

from __future__ import annotations

import socket
import ssl
import threading
from collections.abc import Iterator
from contextlib import contextmanager, suppress

import attrs

from stateless.security.pki import client_name


@attrs.define
class TlsServer:
    port: int
    errors: list[str] = attrs.field(factory=list)
    clients: list[str | None] = attrs.field(factory=list)

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}"


def _serve(listener: socket.socket, context: ssl.SSLContext, server: TlsServer,
           stop: threading.Event) -> None:
    while not stop.is_set():
        try:
            conn, _ = listener.accept()
        except OSError:
            return
        with conn:
            conn.settimeout(10)
            try:
                with context.wrap_socket(conn, server_side=True) as tls:
                    name = client_name(tls.getpeercert())
                    server.clients.append(name)
                    request = tls.recv(4096)
                    if request.startswith(b"GET "):
                        body = f'{{"hello": "{name or "-"}"}}'.encode()
                        tls.sendall(b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n"
                                    b"content-length: " + str(len(body)).encode()
                                    + b"\r\nconnection: close\r\n\r\n" + body)
                    else:
                        tls.sendall(f"hello {name or '-'}\n".encode())
            except (ssl.SSLError, OSError) as exc:
                server.errors.append(str(exc))


@contextmanager
def tls_server(context: ssl.SSLContext) -> Iterator[TlsServer]:
    """Serve on a free loopback port until the block ends."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    listener.settimeout(0.2)
    server = TlsServer(listener.getsockname()[1])
    stop = threading.Event()

    def loop() -> None:
        while not stop.is_set():
            with suppress(TimeoutError):
                _serve(listener, context, server, stop)

    thread = threading.Thread(target=loop, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        stop.set()
        thread.join(5)
        listener.close()


def ask(port: int, context: ssl.SSLContext, server_hostname: str = "localhost") -> str:
    """One connection: the server's line."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as raw, \
            context.wrap_socket(raw, server_hostname=server_hostname) as tls:
        tls.sendall(b"hi\n")
        return tls.recv(4096).decode().strip()
