"""One environment per harness session: a broker backend and a Toxiproxy server.

Started once (a broker boot costs seconds), shared by every run of the session; each run gets
its own vhost and its own proxies. ``stop()`` removes everything we started; it runs on normal
exit, on Ctrl-C (KeyboardInterrupt unwinds through the context manager) and on SIGTERM (turned
into SystemExit below). A run killed with SIGKILL is cleaned up by the next one (pid records).

Backends: ``local`` (our own rabbitmq-server node, the default; with ``nodes`` > 1 a local
cluster of our own nodes, harness.env.cluster), ``external`` (a broker the user
runs; no process faults), ``compose`` (docker-compose.yml: broker and a real Toxiproxy in
containers; process faults through the Docker SDK).
"""

from __future__ import annotations

import contextlib
import os
import signal
from pathlib import Path
from types import FrameType
from typing import Any

from harness.env import procs
from harness.env.backend import Backend
from harness.env.local import DEFAULT_BASE_PORT, LocalBroker
from harness.env.toxiproxy import ToxiproxyClient, ToxiproxyServer, find_or_start_server
from harness.errors import ChaosError, HarnessFailure

BACKENDS = ("local", "external", "compose")

#: a run's two proxies listen on base + PROXY_PORT_OFFSET + 2 × slot + (0 publisher, 1 consumer):
#: fixed ports next to the broker's (base .. base + 4), one pair per cell running at once (slot).
#: On a cluster of N nodes a run has one proxy per (role, node): a slot holds 2 × N ports, node k's
#: pair at base + PROXY_PORT_OFFSET + 2N × slot + 2k (k from 0), so one node's numbering is unchanged.
PROXY_PORT_OFFSET = 5


def default_state_dir() -> Path:
    return Path(os.environ.get("RABBIT_CHAOS_STATE", ".rabbit-chaos/state")).resolve()


def default_base_port() -> int:
    return int(os.environ.get("RABBIT_CHAOS_BASE_PORT", DEFAULT_BASE_PORT))


def _sigterm_to_exit(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(128 + signum)


def make_broker(backend: str, state_dir: Path, base_port: int, amqp_url: str | None = None,
                management_url: str | None = None, nodes: int = 1) -> Backend:
    from harness.env.cluster import LocalCluster, check_nodes

    if check_nodes(nodes) > 1 and backend != "local":
        raise ChaosError(f"--nodes {nodes} needs the local backend (the {backend} backend runs the broker you give)",
                         "drop --nodes, or use --backend local")
    if backend == "local" and nodes > 1:
        return LocalCluster(state_dir / "cluster", base_port=base_port, nodes=nodes)
    if backend == "local":
        return LocalBroker(state_dir / "broker", base_port=base_port)
    if backend == "external":
        from harness.env.external import ExternalBroker

        return ExternalBroker(amqp_url, management_url)
    if backend == "compose":
        from harness.env.compose import ComposeBroker

        return ComposeBroker()
    raise ChaosError(f"unknown backend {backend!r}", f"choose one of: {', '.join(BACKENDS)}")


class Environment:
    def __init__(self, state_dir: Path | None = None, base_port: int | None = None, backend: str = "local",
                 amqp_url: str | None = None, management_url: str | None = None, nodes: int = 1) -> None:
        self.state_dir = (state_dir or default_state_dir()).resolve()
        self.base_port = base_port or default_base_port()
        self.backend = backend
        #: broker nodes: 1, or a local cluster (harness.env.cluster.LocalCluster) of this many
        self.nodes = nodes
        self.broker: Backend = make_broker(backend, self.state_dir, self.base_port, amqp_url, management_url,
                                           nodes)
        self.proxy_server: ToxiproxyServer | None = None
        self.toxiproxy: ToxiproxyClient | None = None
        self.client_record = procs.PidRecord(self.state_dir / "clients.json")
        #: which pair of proxy ports this process's runs use (:meth:`proxy_listen`); a matrix
        #: running cells side by side gives each running cell its own slot
        self.proxy_slot = 0

    def start(self) -> Environment:
        if signal.getsignal(signal.SIGTERM) in (signal.SIG_DFL, None):
            with contextlib.suppress(ValueError):  # not in the main thread
                signal.signal(signal.SIGTERM, _sigterm_to_exit)
        try:
            self.preflight()
            self.broker.start()
            if self.broker.toxiproxy_url is not None:  # the backend brings its own (compose's container)
                url = os.environ.get("TOXIPROXY_URL", self.broker.toxiproxy_url)
                with _env("TOXIPROXY_URL", url):
                    self.proxy_server = find_or_start_server(self.state_dir / "proxy", port=self.base_port + 4)
            else:
                self.proxy_server = find_or_start_server(self.state_dir / "proxy", port=self.base_port + 4)
            self.toxiproxy = ToxiproxyClient(self.proxy_server.url)
        except BaseException:
            self.stop()
            raise
        return self

    def preflight(self) -> None:
        """Everything that can be checked before a broker boots, so a user's mistake costs no boot:
        the state dir is writable, a killed earlier run's clients, namespaces, broker and proxy
        are reaped, and every port we will listen on is free (named with who holds it)."""
        from harness.env.netns import NetnsRecord
        from harness.env.preflight import probe_writable
        from harness.env.toxiproxy import reap_stale

        probe_writable(self.state_dir, "state dir", "--state-dir")
        self.client_record.reap()  # client processes of a killed earlier run
        NetnsRecord(self.state_dir).reap()  # and its network namespaces (with their iptables rules)
        extra: dict[str, int] = {}
        if self.backend != "compose" and not os.environ.get("TOXIPROXY_URL"):
            reap_stale(self.state_dir / "proxy")
            extra["proxy API"] = self.base_port + 4
        if self.backend != "compose":
            extra.update(self.proxy_ports(self.proxy_slot))
        if self.backend == "local":
            from harness.env.cluster import reap_local

            reap_local(self.state_dir)  # a killed run's node or cluster, whichever shape it ran
            self.broker.preflight(extra)
        elif extra:
            procs.ensure_ports_free(extra)

    def stop(self) -> None:
        try:
            if self.proxy_server is not None:
                self.proxy_server.stop()
                self.proxy_server = None
        finally:
            self.broker.stop()

    def __enter__(self) -> Environment:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # where a run's proxies listen, and how clients reach them
    def proxy_listen(self, index: int, node: int = 0) -> str:
        """The listen address of a run's ``index``-th proxy (0 publisher, 1 consumer) to broker
        node ``node`` (0-based; a cluster has one proxy per role and node).

        A fixed port (:meth:`proxy_ports`), not an ephemeral one (``127.0.0.1:0``): Toxiproxy
        closes a disabled proxy's listener and listens again on enable, and an ephemeral port
        can be handed to any other socket meanwhile (an outgoing connection, another run's new
        proxy). Measured with three cells at once: a connection-cut heal failed with "bind:
        address already in use" and the cell read "not recovered", a false verdict. A port
        below the kernel's ephemeral range (32768+) is never handed out automatically."""
        if self.backend == "compose":
            from harness.env.compose import PROXY_PORTS

            return f"0.0.0.0:{PROXY_PORTS[index]}"
        return f"127.0.0.1:{self._proxy_port(self.proxy_slot, node, index)}"

    def _proxy_port(self, slot: int, node: int, index: int) -> int:
        if not 0 <= node < self.nodes:
            raise HarnessFailure(f"no proxy port for node {node} of {self.nodes}")
        return self.base_port + PROXY_PORT_OFFSET + 2 * self.nodes * slot + 2 * node + index

    def proxy_ports(self, slot: int) -> dict[str, int]:
        """The proxy ports of ``slot`` (two, or two per node of a cluster), named for a
        port-in-use error."""
        out: dict[str, int] = {}
        for node in range(self.nodes):
            at = f" to node {node + 1}" if self.nodes > 1 else ""
            out[f"publisher proxy{at} (slot {slot})"] = self._proxy_port(slot, node, 0)
            out[f"consumer proxy{at} (slot {slot})"] = self._proxy_port(slot, node, 1)
        return out

    def client_port(self, listen: str) -> int:
        """The loopback port a client connects to for a proxy that reports ``listen``."""
        return int(listen.rpartition(":")[2])

    def versions(self) -> dict[str, str | None]:
        v = self.broker.versions()
        v["toxiproxy"] = f"{self.proxy_server.kind} {self.proxy_server.version}" if self.proxy_server else None
        v["backend"] = self.backend
        v["nodes"] = self.nodes
        return v


@contextlib.contextmanager
def _env(key: str, value: str) -> Any:
    old = os.environ.get(key)
    os.environ[key] = value
    try:
        yield
    finally:
        if old is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = old
