"""Upstream servers and socket helpers for the proxy conformance suite (127.0.0.1 only).

Blocking sockets in threads: the suite observes the proxy from the outside, as a client would,
and every read has a timeout so a broken proxy fails a test instead of hanging it.
"""

from __future__ import annotations

import contextlib
import errno
import random
import select
import socket
import threading
import time
from collections.abc import Callable

IO_TIMEOUT = 10.0


class Upstream:
    """A threaded TCP server on 127.0.0.1 running ``handler(conn)`` for each connection."""

    def __init__(self, handler: Callable[[socket.socket], None]) -> None:
        self.handler = handler
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(128)
        self.port = self.sock.getsockname()[1]
        self.addr = f"127.0.0.1:{self.port}"
        self._conns: set[socket.socket] = set()
        self._lock = threading.Lock()
        self._closed = False
        threading.Thread(target=self._accept, daemon=True, name=f"upstream-{self.port}").start()

    def _accept(self) -> None:
        while not self._closed:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with self._lock:
                self._conns.add(conn)
            threading.Thread(target=self._run, args=(conn,), daemon=True).start()

    def _run(self, conn: socket.socket) -> None:
        try:
            self.handler(conn)
        except OSError:
            pass
        finally:
            with self._lock:
                self._conns.discard(conn)
            conn.close()

    def close(self) -> None:
        self._closed = True
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_RDWR)
        self.sock.close()
        with self._lock:
            conns = list(self._conns)
        for c in conns:
            with contextlib.suppress(OSError):
                c.shutdown(socket.SHUT_RDWR)


def echo_handler(conn: socket.socket) -> None:
    while data := conn.recv(256 * 1024):
        conn.sendall(data)


def close_handler(conn: socket.socket) -> None:
    """Closes as soon as it accepts (to observe how the close reaches the client)."""
    conn.shutdown(socket.SHUT_RDWR)


def connect(port: int, timeout: float = IO_TIMEOUT) -> socket.socket:
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return s


def recv_exact(sock: socket.socket, n: int) -> bytes:
    buf = bytearray()
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            raise EOFError(f"EOF after {len(buf)} of {n} bytes")
        buf += chunk
    return bytes(buf)


def round_trip(sock: socket.socket, payload: bytes = b"ping") -> float:
    """Seconds for ``payload`` to come back from an echo upstream."""
    t0 = time.monotonic()
    sock.sendall(payload)
    assert recv_exact(sock, len(payload)) == payload
    return time.monotonic() - t0


def readable_within(sock: socket.socket, seconds: float) -> bool:
    r, _, _ = select.select([sock], [], [], seconds)
    return bool(r)


def read_until_closed(sock: socket.socket, timeout: float = IO_TIMEOUT) -> tuple[bytes, str]:
    """Read to the end; returns (data, "eof" | "reset")."""
    sock.settimeout(timeout)
    buf = bytearray()
    try:
        while chunk := sock.recv(65536):
            buf += chunk
    except ConnectionResetError:
        return bytes(buf), "reset"
    return bytes(buf), "eof"


def closed_how(sock: socket.socket, timeout: float = IO_TIMEOUT) -> str:
    """"eof" or "reset", discarding any data still arriving."""
    return read_until_closed(sock, timeout)[1]


def fill_until_blocked(sock: socket.socket, quiet: float = 0.3, limit: int = 256 * 1024 * 1024) -> bytes:
    """Send a known pattern without blocking until the socket stays unwritable for ``quiet``
    seconds (the path is not draining: kernel buffers are full). Returns what was sent."""
    rng = random.Random(7)
    block = rng.randbytes(64 * 1024)
    sent = bytearray()
    sock.setblocking(False)
    try:
        while len(sent) < limit:
            _, w, _ = select.select([], [sock], [], quiet)
            if not w:
                return bytes(sent)
            try:
                n = sock.send(block)
            except BlockingIOError:
                continue
            except OSError as exc:
                if exc.errno == errno.EAGAIN:
                    continue
                raise
            sent += block[:n]
    finally:
        sock.setblocking(True)
        sock.settimeout(IO_TIMEOUT)
    raise AssertionError(f"sent {limit} bytes without ever blocking")


class Collector(threading.Thread):
    """Reads a socket until it has ``n`` bytes (or EOF/timeout) in the background."""

    def __init__(self, sock: socket.socket, n: int) -> None:
        super().__init__(daemon=True)
        self.sock, self.n = sock, n
        self.buf = bytearray()
        self.error: OSError | None = None
        self.start()

    def run(self) -> None:
        try:
            while len(self.buf) < self.n:
                chunk = self.sock.recv(min(1 << 20, self.n - len(self.buf)))
                if not chunk:
                    return
                self.buf += chunk
        except OSError as exc:  # reported by the test
            self.error = exc

    def result(self, timeout: float = 30) -> bytes:
        self.join(timeout)
        assert not self.is_alive(), f"collector still waiting after {timeout}s with {len(self.buf)} bytes"
        if self.error is not None:
            raise self.error
        return bytes(self.buf)
