"""The backend contract: what every broker backend (local node, local cluster, compose, external)
offers the harness, as one typed Protocol, and a no-op implementation for unit tests.

Why a Protocol: faults and phases used to probe backends with ``getattr`` ("does this one have
``supports_ctl``?"), so a new backend could silently lack an operation and a fault would then
do nothing. Now a fault asks :attr:`Backend.capabilities` up front (the engine refuses a fault
whose needs are not met, with the reason, before the run starts) and calls typed operations.

Node operations take an optional ``node`` (a name from :meth:`Backend.nodes`); ``None`` means
the first node, so single-node backends and callers that do not care stay simple.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable
from urllib.parse import quote


@dataclass(frozen=True)
class Capabilities:
    """What a backend can do. ``process``: stop/kill/pause/restart nodes; ``ctl``: run
    rabbitmqctl (alarms, close connections, eval); ``nodes``: how many broker nodes it runs."""

    process: bool = False
    ctl: bool = False
    nodes: int = 1


@dataclass(frozen=True)
class NodeInfo:
    """One broker node: its Erlang node name, and the ``host:port`` a proxy forwards to."""

    name: str
    upstream: str


@runtime_checkable
class Backend(Protocol):
    """One broker target for a harness session. Contract:

    * ``start()`` boots (or connects to) the broker and returns only once it answers an AMQP
      handshake; ``stop()`` removes everything this backend created (idempotent, safe after a
      partial start).
    * ``create_vhost``/``delete_vhost`` give each run its own isolated vhost (a run's "reset").
    * node operations (``stop_node``, ``start_node``, ``kill_node``, ``pause``, ``resume``) raise
      :class:`harness.errors.HarnessFailure` when :attr:`capabilities` says they are unavailable.
    """

    kind: str
    user: str
    password: str
    capabilities: Capabilities

    def start(self) -> Backend: ...
    def stop(self) -> None: ...
    def versions(self) -> dict[str, Any]: ...
    def nodes(self) -> list[NodeInfo]: ...
    def amqp_url(self, vhost: str, host: str | None = None, port: int | None = None) -> str: ...
    def create_vhost(self, vhost: str) -> None: ...
    def delete_vhost(self, vhost: str) -> None: ...
    def stop_node(self, node: str | None = None, timeout: float = 60.0) -> float: ...
    def start_node(self, node: str | None = None, timeout: float | None = None) -> float: ...
    def kill_node(self, node: str | None = None) -> None: ...
    def pause(self, node: str | None = None) -> None: ...
    def resume(self, node: str | None = None) -> None: ...
    def ctl(self, *args: str, node: str | None = None, timeout: float = 30.0) -> str: ...


@dataclass
class NullBackend:
    """A backend that does nothing and records every call: for unit tests of faults and phases
    that must not boot a broker. ``capabilities`` is settable so a test can model any backend."""

    kind: str = "null"
    user: str = "guest"
    password: str = "guest"
    capabilities: Capabilities = field(default_factory=lambda: Capabilities(process=True, ctl=True))
    node_names: list[str] = field(default_factory=lambda: ["rabbit@null"])
    calls: list[tuple[str, tuple[Any, ...]]] = field(default_factory=list)
    vhosts: set[str] = field(default_factory=set)

    def _call(self, name: str, *args: Any) -> None:
        self.calls.append((name, args))

    def start(self) -> NullBackend:
        self._call("start")
        return self

    def stop(self) -> None:
        self._call("stop")

    def versions(self) -> dict[str, Any]:
        return {"rabbitmq": None, "erlang": None}

    def nodes(self) -> list[NodeInfo]:
        return [NodeInfo(n, f"127.0.0.1:{5672 + i}") for i, n in enumerate(self.node_names)]

    def amqp_url(self, vhost: str, host: str | None = None, port: int | None = None) -> str:
        return f"amqp://{self.user}:{self.password}@{host or '127.0.0.1'}:{port or 5672}/{quote(vhost, safe='')}"

    def create_vhost(self, vhost: str) -> None:
        self._call("create_vhost", vhost)
        self.vhosts.add(vhost)

    def delete_vhost(self, vhost: str) -> None:
        self._call("delete_vhost", vhost)
        self.vhosts.discard(vhost)

    def stop_node(self, node: str | None = None, timeout: float = 60.0) -> float:
        self._call("stop_node", node)
        return 0.0

    def start_node(self, node: str | None = None, timeout: float | None = None) -> float:
        self._call("start_node", node)
        return 0.0

    def kill_node(self, node: str | None = None) -> None:
        self._call("kill_node", node)

    def pause(self, node: str | None = None) -> None:
        self._call("pause", node)

    def resume(self, node: str | None = None) -> None:
        self._call("resume", node)

    def ctl(self, *args: str, node: str | None = None, timeout: float = 30.0) -> str:
        self._call("ctl", node, *args)
        return ""
