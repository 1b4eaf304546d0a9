"""A local RabbitMQ cluster: N of our own nodes (Debian's rabbitmq-server), one epmd of ours.

Each node is a :class:`harness.env.local.LocalBroker` with its own node name
(``rabbit_chaos_<base>_a@localhost`` …), ports, data and log dirs (``<state>/cluster/<letter>``)
and pid record, started with ``own_epmd=False``: the cluster runs ONE epmd on 127.0.0.1
(``<state>/cluster/pids.json``), and every node shares one cookie. Everything binds to loopback,
as the single node does (the distribution port through ``inet_dist_use_interface``).

Port layout (``base`` = ``--base-port``). Node 1 keeps the single node's ports exactly (AMQP
``base``, distribution ``base+1``, management ``base+2``, epmd ``base+3``); ``base+4`` is the proxy
API and ``base+5`` … the run proxies (``Environment.proxy_listen``: 2×N ports a slot, 17 slots at
most, so below ``base+300`` for N ≤ 7). Node k ≥ 2 listens on ``base + 300 + 10×(k-2)`` (AMQP),
``+1`` (distribution), ``+2`` (management): far above every proxy port.

Forming the cluster: peer discovery by the ``classic_config`` backend, all nodes booting at once.
Node 1 is the seed (no peers configured, so it boots as a blank standalone node at once); nodes
2..N list the seed only, and retry discovery (every 0.5 s, up to 4 minutes) until the seed's
database runs, then join it. Listing every node on every node instead races: each waits ~5 s
for a running peer, finds none (they all wait) and boots standalone, giving N one-node clusters.
Booting in parallel costs one boot plus the joins, not N boots (``boot_s`` records it).
``rabbitmqctl join_cluster`` is the fallback if a node still ends up alone.

``cluster_partition_handling = pause_minority``: a node that can reach fewer than half of the
others stops serving (its AMQP listener closes with the clients' connections) and rejoins by
itself once it sees a majority again: the production setting for three nodes.
"""

from __future__ import annotations

import contextlib
import secrets
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from harness.env import procs
from harness.env.backend import Capabilities, NodeInfo, NodeState
from harness.env.local import DEFAULT_BASE_PORT, PASSWORD, USER, LocalBroker, Ports, start_epmd, stop_epmd
from harness.env.management import Management
from harness.errors import ChaosError, HarnessFailure

#: node k >= 2 listens at base + NODE_PORT_OFFSET + NODE_PORT_STRIDE * (k - 2) (+0 AMQP, +1 dist, +2 mgmt)
NODE_PORT_OFFSET = 300
NODE_PORT_STRIDE = 10
#: 2 × 7 proxy ports × 17 slots + 5 < NODE_PORT_OFFSET: more nodes would need another layout
MAX_NODES = 7
LETTERS = "abcdefg"
#: a joining node retries discovery this often (ms) and this many times while the seed boots
DISCOVERY_INTERVAL_MS = 500
DISCOVERY_RETRIES = 480


def node_name(base_port: int, index: int) -> str:
    """The Erlang node name of node ``index`` (0-based) of the cluster at ``base_port``."""
    return f"rabbit_chaos_{base_port}_{LETTERS[index]}@localhost"


def node_ports(base_port: int, index: int) -> Ports:
    """Node ``index``'s ports (0-based; see the module docstring). Every node names the one
    epmd port, ``base+3``."""
    if index == 0:
        return Ports.from_base(base_port)
    first = base_port + NODE_PORT_OFFSET + NODE_PORT_STRIDE * (index - 1)
    return Ports(amqp=first, dist=first + 1, management=first + 2, epmd=base_port + 3)


def check_nodes(nodes: int) -> int:
    """``--nodes`` as given, or a ChaosError naming the range and why."""
    if not 1 <= nodes <= MAX_NODES:
        raise ChaosError(f"--nodes {nodes} is out of range",
                         f"give 1 (one node) to {MAX_NODES} (a local cluster; 3 is the usual production size)")
    return nodes


class FailoverManagement(Management):
    """The management API of whichever node answers: every node serves the whole cluster's API,
    so a call that fails on one node (killed, paused, partitioned away) is retried on the next.
    The node that answered last is tried first next time, so a down node costs one timeout, not
    one per call. Calls time out after ``timeout`` s (a SIGSTOPped node accepts TCP and never
    answers: the default 10 s would make every sample wait that long)."""

    def __init__(self, members: list[Management], timeout: float = 3.0) -> None:
        super().__init__(members[0].base_url, USER, PASSWORD, timeout=timeout)
        self.members = [Management(m.base_url, USER, PASSWORD, timeout=timeout) for m in members]
        self._first = 0
        self._lock = threading.Lock()

    def _order(self) -> list[Management]:
        with self._lock:
            first = self._first
        return self.members[first:] + self.members[:first]

    def _each(self, call: Callable[[Management], Any]) -> Any:
        last: HarnessFailure | None = None
        for m in self._order():
            try:
                out = call(m)
            except HarnessFailure as exc:
                last = exc
                continue
            with self._lock:
                self._first = self.members.index(m)
            return out
        raise last or HarnessFailure("no node's management API answered")

    def _req(self, method: str, path: str, ok: tuple[int, ...] = (200, 201, 204), **kw: Any) -> Any:
        return self._each(lambda m: m._req(method, path, ok, **kw))

    def queue(self, vhost: str, name: str) -> dict[str, Any] | None:
        return self._each(lambda m: m.queue(vhost, name))

    def close(self) -> None:
        for m in self.members:
            m.close()
        super().close()


class LocalCluster:
    """N local nodes clustered (see the module docstring). Implements
    :class:`harness.env.backend.Backend`; node operations take a node name from :meth:`nodes`
    (``None``: node 1, the node clients connect to first)."""

    kind = "local-cluster"
    host = "127.0.0.1"
    toxiproxy_url: str | None = None  # no Toxiproxy of its own: the harness finds or starts one

    def __init__(self, state_dir: Path, base_port: int = DEFAULT_BASE_PORT, nodes: int = 3,
                 boot_timeout: float = 240.0) -> None:
        if check_nodes(nodes) < 2:
            raise ChaosError("a cluster needs at least 2 nodes", "use --nodes 3, or LocalBroker for one node")
        self.state_dir = Path(state_dir).resolve()
        self.base_port = base_port
        self.user, self.password = USER, PASSWORD
        self.capabilities = Capabilities(process=True, ctl=True, nodes=nodes)
        self.record = procs.PidRecord(self.state_dir / "pids.json")  # the cluster's epmd
        self.cookie = secrets.token_hex(20)
        seed = node_name(base_port, 0)
        self.members = [
            LocalBroker(self.state_dir / LETTERS[i], base_port, node_name(base_port, i), boot_timeout,
                        ports=node_ports(base_port, i), own_epmd=False, cookie=self.cookie,
                        extra_conf=self._conf(seed, i))
            for i in range(nodes)
        ]
        self.ports = self.members[0].ports
        self.mgmt: Management = FailoverManagement([m.mgmt for m in self.members])
        self._epmd: Any = None
        self.boot_s: float | None = None
        #: how the cluster formed: "classic_config" or "join_cluster" (the fallback) per node
        self.formed_by: dict[str, str] = {}

    @staticmethod
    def _conf(seed: str, index: int) -> str:
        conf = "cluster_partition_handling = pause_minority\n"
        if index:
            conf += ("cluster_formation.peer_discovery_backend = classic_config\n"
                     f"cluster_formation.classic_config.nodes.1 = {seed}\n"
                     f"cluster_formation.discovery_retry_limit = {DISCOVERY_RETRIES}\n"
                     f"cluster_formation.discovery_retry_interval = {DISCOVERY_INTERVAL_MS}\n")
        return conf

    # ---- the Backend contract: lifecycle ------------------------------------------------
    @property
    def amqp_port(self) -> int:
        return self.ports.amqp

    @property
    def proxy_upstream(self) -> str:
        return self.members[0].proxy_upstream

    @property
    def log_dir(self) -> Path:
        return self.state_dir

    def preflight(self, extra_ports: dict[str, int] | None = None) -> None:
        """Before any boot: a killed earlier run's epmd and nodes reaped, every port free (all
        nodes', the epmd's and ``extra_ports``), the binary there. Idempotent."""
        self.state_dir.mkdir(parents=True, exist_ok=True)
        reaped = self.record.reap()
        for i, m in enumerate(self.members):
            m.preflight(extra_ports if i == 0 else None)
        procs.ensure_ports_free({"epmd": self.ports.epmd}, settle_s=10.0 if reaped else 0.0)

    def start(self) -> LocalCluster:
        """Boot every node at once (the seed standalone, the others joining it by classic-config
        peer discovery), then wait until the management API lists every node running. Each node's
        own readiness is an AMQP handshake (LocalBroker.start_node). A cluster that does not form
        is a ChaosError naming the node and its log."""
        self.preflight()
        for m in self.members:
            m.cancel.clear()
            m.prepare()
        t0 = time.monotonic()
        try:
            self._epmd = start_epmd(self.ports.epmd, self.record, self.members[0].env())
            self._in_parallel(lambda m: m.start_node())
            self._ensure_formed()
        except HarnessFailure as exc:
            self.stop()
            raise ChaosError(f"the cluster did not boot: {exc}",
                             f"fix what its logs say (under {self.state_dir}/*/log), or run one node "
                             "(--nodes 1)") from None
        self.boot_s = time.monotonic() - t0
        return self

    def _in_parallel(self, act: Callable[[LocalBroker], Any]) -> None:
        """``act`` on every node in its own thread; the first failure is raised once all ended."""
        errors: list[BaseException] = []

        def one(m: LocalBroker) -> None:
            try:
                act(m)
            except BaseException as exc:  # noqa: BLE001 - re-raised below, in the caller's thread
                errors.append(exc)

        threads = [threading.Thread(target=one, args=(m,), name=f"node-{m.node}", daemon=True)
                   for m in self.members]
        for t in threads:
            t.start()
        try:
            for t in threads:
                t.join()
        except BaseException:  # Ctrl-C / SIGTERM while nodes boot: they stop waiting, then stop() finds them all
            for m in self.members:
                m.cancel.set()
            for t in threads:
                t.join(timeout=30)
            raise
        if errors:
            raise errors[0]

    def running_nodes(self) -> list[str]:
        """The node names the cluster itself reports running (management API ``/nodes``)."""
        return sorted(str(n["name"]) for n in self.mgmt._req("GET", "/nodes") or [] if n.get("running"))

    def cluster_members(self, node: str | None = None) -> list[str]:
        """The cluster's member nodes as ``node`` sees them (its ``rabbit_nodes:all()``): a node
        that booted alone lists only itself."""
        out = self.ctl("eval", "rabbit_nodes:all().", node=node)
        return sorted(n.strip().strip("'") for n in out.strip().strip("[]").split(",") if n.strip())

    def _ensure_formed(self, timeout: float = 30.0) -> None:
        """Every node in one cluster: classic-config discovery should have done it; a node that
        still lists only itself is joined with stop_app / join_cluster / start_app."""
        seed = self.members[0].node
        want = sorted(m.node for m in self.members)
        for m in self.members[1:]:
            if seed in self.cluster_members(m.node):
                self.formed_by[m.node] = "classic_config"
                continue
            m.ctl("stop_app")
            m.ctl("join_cluster", seed, timeout=60)
            m.ctl("start_app", timeout=120)
            self.formed_by[m.node] = "join_cluster"
        deadline = time.monotonic() + timeout
        seen: list[str] = []
        while time.monotonic() < deadline:
            with contextlib.suppress(HarnessFailure):
                seen = self.running_nodes()
                if seen == want:
                    return
            time.sleep(0.25)
        raise HarnessFailure(f"the cluster lists {seen or 'no node'} running, want {want}")

    def stop(self) -> None:
        """Stop every node (at once) and the epmd; idempotent, safe after a partial start. The
        data is thrown away at the next start, so the nodes need not leave the cluster first."""
        try:
            self._in_parallel(lambda m: m.stop())
        finally:
            stop_epmd(self._epmd, self.record)
            self._epmd = None
            self.record.reap()
            self.mgmt.close()

    def __enter__(self) -> LocalCluster:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ---- the Backend contract: nodes ---------------------------------------------------
    def nodes(self) -> list[NodeInfo]:
        return [NodeInfo(m.node, m.proxy_upstream) for m in self.members]

    def member(self, node: str | None = None) -> LocalBroker:
        """The node named ``node`` (None: node 1); an unknown name is a caller's bug."""
        if node is None:
            return self.members[0]
        for m in self.members:
            if m.node == node:
                return m
        raise HarnessFailure(f"no node {node!r} in this cluster ({', '.join(m.node for m in self.members)})")

    def stop_node(self, node: str | None = None, timeout: float = 60.0) -> float:
        return self.member(node).stop_node(timeout=timeout)

    def start_node(self, node: str | None = None, timeout: float | None = None) -> float:
        return self.member(node).start_node(timeout=timeout)

    def kill_node(self, node: str | None = None) -> None:
        self.member(node).kill_node()

    def pause(self, node: str | None = None) -> None:
        self.member(node).pause()

    def resume(self, node: str | None = None) -> None:
        self.member(node).resume()

    def node_state(self, node: str | None = None) -> NodeState:
        """The kernel's view of that node's beam.smp: running, paused (SIGSTOP) or down. A node
        that pause_minority paused is "running" here (its VM runs; its rabbit app does not)."""
        return self.member(node).node_state()

    def log_files(self) -> list[Path]:
        return [f for m in self.members for f in m.log_files()]

    def beam_pid(self, node: str | None = None) -> int | None:
        return self.member(node).beam_pid()

    def ctl(self, *args: str, node: str | None = None, timeout: float = 30.0) -> str:
        return self.member(node).ctl(*args, timeout=timeout)

    # ---- the Backend contract: runs -----------------------------------------------------
    def create_vhost(self, vhost: str) -> None:
        """Created once for the cluster (vhosts are cluster-wide), through whichever node's API
        answers; the vhost's processes start on every running node before the call returns."""
        self.mgmt.create_vhost(vhost, self.user)

    def delete_vhost(self, vhost: str) -> None:
        self.mgmt.delete_vhost(vhost)

    def versions(self) -> dict[str, Any]:
        return {**self.mgmt.versions(), "nodes": len(self.members)}

    def amqp_url(self, vhost: str, host: str | None = None, port: int | None = None) -> str:
        return self.members[0].amqp_url(vhost, host=host, port=port)

    def log_tail(self, n: int = 15) -> str:
        return "\n".join(f"[{m.node}]\n{m.log_tail(n)}" for m in self.members)


def reap_local(state_dir: Path) -> list[str]:
    """Reap what a killed earlier run left under ``state_dir``, whichever shape it ran (one node in
    ``broker/``, a cluster in ``cluster/``): the next run may choose the other shape and the same
    ports. Raises ChaosError when a live harness still owns the state dir."""
    reaped: list[str] = []
    for record in [state_dir / "broker" / "pids.json", state_dir / "cluster" / "pids.json",
                   *sorted((state_dir / "cluster").glob("*/pids.json"))]:
        if record.exists():
            reaped += procs.PidRecord(record).reap()
    return reaped
