"""The backend contract: what every broker backend (local node, local cluster, compose, external)
offers the harness, as one typed Protocol, and a no-op implementation for unit tests.

Why a Protocol: faults and phases used to probe backends with ``getattr`` ("does this one have
``supports_ctl``?"), so a new backend could silently lack an operation and a fault would then
do nothing. Now a fault declares its ``needs``, the engine checks them against
:attr:`Backend.capabilities` before the run starts (refusing with the reason, see
:meth:`Capabilities.lacks`), and the fault then calls typed operations.

Node operations take an optional ``node`` (a name from :meth:`Backend.nodes`); ``None`` means
the first node, so single-node backends and callers that do not care stay simple. A name the
backend does not run is a caller's bug: :class:`HarnessFailure`, never "act on some node".

Adding a backend (docs/backends.md): implement every member below, say honestly what
:class:`Capabilities` it gives (an operation it cannot do raises HarnessFailure naming why), and
add the class to tests/unit/test_backend_contract.py, which checks it against this Protocol.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Protocol, runtime_checkable
from urllib.parse import quote

from harness.env.management import Management
from harness.errors import HarnessFailure

#: what a backend can say about one node's broker process: "unknown" only where it has no view
#: of the process (``capabilities.process`` false: an external broker)
NodeState = Literal["running", "paused", "down", "unknown"]

#: the fault needs (``Fault.needs``) that a backend grants or not; others (proxy, kernel, admin)
#: are met by the harness itself, or by every backend (admin: the management API)
BACKEND_NEEDS = frozenset({"process", "ctl", "cluster"})


@dataclass(frozen=True)
class Capabilities:
    """What a backend can do. ``process``: stop/kill/pause/restart nodes; ``ctl``: run
    rabbitmqctl (alarms, close connections, eval); ``nodes``: how many broker nodes it runs."""

    process: bool = False
    ctl: bool = False
    nodes: int = 1

    def gives(self, need: str) -> bool:
        """Is ``need`` (a ``Fault.needs`` entry) met? ``cluster`` means at least two nodes; a
        need that is not the backend's to grant (:data:`BACKEND_NEEDS`) is always met here."""
        if need == "process":
            return self.process
        if need == "ctl":
            return self.ctl
        if need == "cluster":
            return self.nodes >= 2
        return True

    def lacks(self, needs: frozenset[str] | set[str]) -> list[str]:
        """The backend needs in ``needs`` this backend does not meet, sorted (stable messages)."""
        return sorted(n for n in needs if n in BACKEND_NEEDS and not self.gives(n))


@dataclass(frozen=True)
class NodeInfo:
    """One broker node: its Erlang node name, and the ``host:port`` a proxy forwards to."""

    name: str
    upstream: str


@runtime_checkable
class Backend(Protocol):
    """One broker target for a harness session. Contract:

    * ``preflight(extra_ports)`` checks, before anything boots, all that can fail cheaply (binary
      installed, ports free -- its own and ``extra_ports``, the harness's proxies); idempotent.
    * ``start()`` boots (or connects to) the broker and returns only once it answers an AMQP
      handshake; ``stop()`` removes everything this backend created (idempotent, safe after a
      partial start). ``boot_s`` is how long ``start`` took (None before it finished).
    * ``create_vhost``/``delete_vhost`` give each run its own isolated vhost (a run's "reset");
      ``mgmt`` is the management HTTP API of the broker (every backend has one: admin faults,
      queue statistics and the conformance watcher use it).
    * ``nodes()`` lists the nodes, first node first; ``amqp_url`` builds a client URL (through a
      proxy when ``host``/``port`` are given).
    * node operations (``stop_node``, ``start_node``, ``kill_node``, ``pause``, ``resume``) raise
      :class:`harness.errors.HarnessFailure` when ``capabilities.process`` is false; ``ctl``
      likewise when ``capabilities.ctl`` is false. ``start_node`` returns once the node answers
      an AMQP handshake. ``node_state`` tells a fault whether its effect is there (observed).
    * ``log_files()`` are the broker's log files on this machine, for joining broker logs with the
      history; empty where the logs are not ours to read (a container, a remote broker).
    * ``toxiproxy_url`` is a Toxiproxy the backend brings along (compose's container), or None:
      then the harness finds or starts its own.
    """

    kind: str
    user: str
    password: str
    capabilities: Capabilities
    mgmt: Management
    boot_s: float | None
    toxiproxy_url: str | None

    def preflight(self, extra_ports: dict[str, int] | None = None) -> None: ...
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
    def node_state(self, node: str | None = None) -> NodeState: ...
    def ctl(self, *args: str, node: str | None = None, timeout: float = 30.0) -> str: ...
    def log_files(self) -> list[Path]: ...


def pid_state(pid: int | None) -> NodeState:
    """A local broker process's state from the kernel's view: "down" when there is no pid or the
    process is gone (or a zombie), "paused" when stopped by SIGSTOP (``/proc/<pid>/stat`` state
    T), else "running". Shared by the backends whose nodes are our own processes."""
    if pid is None:
        return "down"
    try:
        with open(f"/proc/{pid}/stat") as fh:
            state = fh.read().rpartition(")")[2].split()[0]
    except (OSError, IndexError):
        with contextlib.suppress(OSError):
            os.kill(pid, 0)
            return "running"  # alive but unreadable (another user's /proc): not stopped as far as we know
        return "down"
    if state in ("Z", "X", "x"):
        return "down"
    return "paused" if state in ("T", "t") else "running"


def check_node(names: list[str], node: str | None) -> str:
    """The node a call acts on: ``node`` when the backend runs it, the first for None. Any other
    name is a caller's bug, refused rather than silently acting on another node."""
    if node is None:
        return names[0]
    if node not in names:
        raise HarnessFailure(f"this backend runs {', '.join(names)}, not {node!r}")
    return node


class NullManagement(Management):
    """A management API with no broker behind it (for :class:`NullBackend`): records each call and
    answers like an empty broker, so code under test that lists or deletes finds nothing, and
    never a network error. Tests that need connections or queues give their own fake."""

    def __init__(self) -> None:
        super().__init__("http://null.invalid", "guest", "guest")  # builds a client, connects nowhere
        self.calls: list[tuple[str, str]] = []

    def _req(self, method: str, path: str, ok: tuple[int, ...] = (200, 201, 204), **kw: Any) -> Any:
        self.calls.append((method, path))
        if method != "GET":
            return None
        return {} if path == "/overview" else []

    def queue(self, vhost: str, name: str) -> dict[str, Any] | None:
        self.calls.append(("GET", f"/queues/{vhost}/{name}"))
        return None


@dataclass
class NullBackend:
    """A backend that does nothing and records every call: for unit tests of faults and phases
    that must not boot a broker. ``capabilities`` is settable so a test can model any backend;
    node operations honour it (HarnessFailure when ``process``/``ctl`` is off, as the contract
    says) and move each node between running, paused and down, so faults observe their effect."""

    kind: str = "null"
    user: str = "guest"
    password: str = "guest"
    capabilities: Capabilities = field(default_factory=lambda: Capabilities(process=True, ctl=True))
    node_names: list[str] = field(default_factory=lambda: ["rabbit@null"])
    calls: list[tuple[str, tuple[Any, ...]]] = field(default_factory=list)
    vhosts: set[str] = field(default_factory=set)
    states: dict[str, NodeState] = field(default_factory=dict)
    mgmt: Management = field(default_factory=NullManagement)
    boot_s: float | None = None
    toxiproxy_url: str | None = None
    #: what :meth:`ctl` answers (tests of ctl-driven faults set it)
    ctl_out: str = ""

    def _call(self, name: str, *args: Any) -> None:
        self.calls.append((name, args))

    def _node_op(self, name: str, node: str | None, what: str = "process") -> str:
        self._call(name, node)
        if not self.capabilities.gives(what):
            raise HarnessFailure(f"{name}: the {self.kind} backend has no {what} control (capabilities)")
        return check_node(self.node_names, node)

    def preflight(self, extra_ports: dict[str, int] | None = None) -> None:
        self._call("preflight", dict(extra_ports or {}))

    def start(self) -> NullBackend:
        self._call("start")
        self.boot_s = 0.0
        return self

    def stop(self) -> None:
        self._call("stop")

    def versions(self) -> dict[str, Any]:
        return {"broker": None, "erlang": None}

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
        self.states[self._node_op("stop_node", node)] = "down"
        return 0.0

    def start_node(self, node: str | None = None, timeout: float | None = None) -> float:
        self.states[self._node_op("start_node", node)] = "running"
        return 0.0

    def kill_node(self, node: str | None = None) -> None:
        self.states[self._node_op("kill_node", node)] = "down"

    def pause(self, node: str | None = None) -> None:
        name = self._node_op("pause", node)
        if self.node_state(name) == "down":
            raise HarnessFailure(f"cannot pause {name}: it is not running")
        self.states[name] = "paused"

    def resume(self, node: str | None = None) -> None:
        name = self._node_op("resume", node)
        if self.node_state(name) == "paused":
            self.states[name] = "running"

    def node_state(self, node: str | None = None) -> NodeState:
        if not self.capabilities.process:
            return "unknown"
        return self.states.get(check_node(self.node_names, node), "running")

    def ctl(self, *args: str, node: str | None = None, timeout: float = 30.0) -> str:
        self._call("ctl", node, *args)
        if not self.capabilities.ctl:
            raise HarnessFailure(f"ctl: the {self.kind} backend has no rabbitmqctl (capabilities)")
        check_node(self.node_names, node)
        return self.ctl_out

    def log_files(self) -> list[Path]:
        return []


if TYPE_CHECKING:  # mypy checks every backend class against the contract here, at no runtime cost
    from harness.env.cluster import LocalCluster
    from harness.env.compose import ComposeBroker
    from harness.env.external import ExternalBroker
    from harness.env.local import LocalBroker

    def _every_backend_is_a_backend(local: LocalBroker, cluster: LocalCluster, external: ExternalBroker,
                                    compose: ComposeBroker, null: NullBackend) -> list[Backend]:
        return [local, cluster, external, compose, null]
