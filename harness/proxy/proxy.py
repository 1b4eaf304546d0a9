"""Proxies: a listening socket, an upstream address, live connections and a toxic collection.

Semantics from Toxiproxy's proxy.go / proxy_collection.go: ``listen`` with port 0 picks a free
port and reports the real one; ``enabled: false`` stops listening and closes every connection;
enabling again listens on the same address; changing listen or upstream restarts the proxy.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from typing import Any

from harness.proxy import errors
from harness.proxy.link import ClientSide, Connection
from harness.proxy.toxic_collection import ToxicCollection

log = logging.getLogger(__name__)


def split_hostport(addr: str) -> tuple[str, int]:
    """"host:port" or "[v6]:port" -> (host, port); an empty host means every interface."""
    host, sep, port = addr.rpartition(":")
    if not sep:
        raise errors.internal(f"listen tcp {addr}: address {addr}: missing port in address")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    try:
        return host, int(port or "0")
    except ValueError:
        raise errors.internal(f"listen tcp {addr}: unknown port {port!r}") from None


def format_hostport(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def resolve_listen(addr: str) -> str:
    """Normalise a listen address as Go's ResolveTCPAddr(...).String() does (used to decide if
    an update changes the address)."""
    host, port = split_hostport(addr)
    if not host:
        return f":{port}"
    try:
        info = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise errors.internal(f"listen tcp {addr}: {exc}") from None
    info.sort(key=lambda i: i[0] != socket.AF_INET)  # prefer IPv4 as Go does for "localhost"
    return format_hostport(str(info[0][4][0]), port)


def _bind(addr: str) -> socket.socket:
    host, port = split_hostport(addr)
    if host:
        try:
            info = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except socket.gaierror as exc:
            raise errors.internal(f"listen tcp {addr}: {exc}") from None
        info.sort(key=lambda i: i[0] != socket.AF_INET)
        family, sockaddr = info[0][0], info[0][4]
    elif socket.has_ipv6:
        family, sockaddr = socket.AF_INET6, ("::", port)
    else:
        family, sockaddr = socket.AF_INET, ("0.0.0.0", port)
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if family == socket.AF_INET6 and not host:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        sock.bind(sockaddr)
        sock.listen(1024)
        sock.setblocking(False)
    except OSError as exc:
        sock.close()
        raise errors.internal(f"listen tcp {addr}: bind: {exc.strerror or exc}") from None
    return sock


class Proxy:
    """One proxy: listens on ``listen`` and forwards each connection to ``upstream``."""

    def __init__(self, name: str, listen: str, upstream: str) -> None:
        self.name = name
        self.listen = listen
        self.upstream = upstream
        self.enabled = False
        self.toxics = ToxicCollection()
        self.connections: set[Connection] = set()
        self._server: asyncio.AbstractServer | None = None

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "listen": self.listen, "upstream": self.upstream,
                "enabled": self.enabled, "toxics": self.toxics.to_json()}

    def upstream_addr(self) -> tuple[str, int]:
        return split_hostport(self.upstream)

    async def start(self) -> None:
        """Listen (again). Raises ApiError 500 if the address cannot be bound."""
        if self.enabled:
            return
        sock = _bind(self.listen)
        self._server = await asyncio.get_running_loop().create_server(
            lambda: ClientSide(self), sock=sock, backlog=1024)
        host, port = sock.getsockname()[:2]
        self.listen = format_hostport(host, port)
        self.enabled = True
        log.info("proxy %s listening on %s -> %s", self.name, self.listen, self.upstream)

    def stop(self) -> None:
        """Stop listening and close every connection (Toxiproxy's stop)."""
        if not self.enabled:
            return
        self.enabled = False
        if self._server is not None:
            self._server.close()
            self._server = None
        for conn in list(self.connections):
            conn.close()
        log.info("proxy %s stopped", self.name)

    async def update(self, listen: str, upstream: str, enabled: bool) -> None:
        """PATCH /proxies/{name}: a new address restarts; then enabled is applied."""
        if resolve_listen(listen) != self.listen or upstream != self.upstream:
            self.stop()
            self.listen, self.upstream = listen, upstream
        if enabled and not self.enabled:
            await self.start()
        elif not enabled:
            self.stop()


class ProxyCollection:
    """Every proxy by name; guards duplicate names (Toxiproxy's ProxyCollection)."""

    def __init__(self) -> None:
        self.proxies: dict[str, Proxy] = {}

    def get(self, name: str) -> Proxy:
        proxy = self.proxies.get(name)
        if proxy is None:
            raise errors.PROXY_NOT_FOUND
        return proxy

    async def add(self, proxy: Proxy, start: bool) -> None:
        if proxy.name in self.proxies:
            raise errors.PROXY_EXISTS
        if start:
            await proxy.start()
        self.proxies[proxy.name] = proxy

    async def add_or_replace(self, proxy: Proxy, start: bool) -> Proxy:
        existing = self.proxies.get(proxy.name)
        if existing is not None:
            if (resolve_listen(proxy.listen) == existing.listen
                    and proxy.upstream == existing.upstream):
                return existing
            existing.stop()
        if start:
            await proxy.start()
        self.proxies[proxy.name] = proxy
        return proxy

    def remove(self, name: str) -> None:
        self.get(name).stop()
        del self.proxies[name]

    def clear(self) -> None:
        for name in list(self.proxies):
            self.remove(name)
