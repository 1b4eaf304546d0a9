"""The compose backend: RabbitMQ and a real Toxiproxy started by ``docker compose up`` from the
top-level docker-compose.yml; process faults through the Docker SDK (stop/start, kill, pause).

The harness does not run ``docker compose`` itself (the SDK has no compose): the user brings the
services up, and ``start()`` checks that both containers are running and healthy, with one clear
error otherwise. Clients reach the broker through Toxiproxy proxies that listen inside the
toxiproxy container on the published range 25670-25679 and forward to ``rabbitmq:5672``.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from harness.env import procs
from harness.env.backend import Capabilities, NodeInfo, NodeState, check_node
from harness.env.management import Management
from harness.errors import ChaosError, HarnessFailure

BROKER_CONTAINER = "rabbit-chaos-rabbitmq"
PROXY_CONTAINER = "rabbit-chaos-toxiproxy"
PROXY_PORTS = range(25670, 25680)
TOXIPROXY_URL = "http://127.0.0.1:8474"
#: the broker's Erlang node name: RabbitMQ's default ``rabbit@<hostname>``, with the hostname
#: docker-compose.yml gives the container
NODE = "rabbit@rabbit-chaos"
#: Docker's container status -> the node's state (created, restarting, exited, dead: down)
_STATES: dict[str, NodeState] = {"running": "running", "paused": "paused"}


def docker_client() -> Any:
    """The Docker SDK client, or one clear error when the SDK is not installed (it is the
    ``compose`` extra, needed by this backend only) or no engine answers."""
    try:
        import docker
    except ImportError:
        raise ChaosError("the compose backend needs the Docker SDK for Python, which is not installed",
                         "pip install 'rabbit-chaos[compose]' (or use --backend local)") from None
    try:
        client = docker.from_env(timeout=10)
        client.ping()
        return client
    except Exception as exc:  # noqa: BLE001 - DockerException, missing socket, permission: all "no engine"
        raise ChaosError(f"no Docker engine is reachable ({type(exc).__name__}: {str(exc)[:120]})",
                         "start Docker (or set DOCKER_HOST), then `docker compose up -d --wait`; "
                         "without Docker use --backend local") from None


class ComposeBroker:
    """The Backend contract over the compose services: one node (the ``rabbitmq`` container),
    process faults as Docker stop/start/kill/pause calls, rabbitmqctl through ``docker exec``,
    and the Toxiproxy container as the proxy server (``toxiproxy_url``)."""

    kind = "compose"
    capabilities = Capabilities(process=True, ctl=True, nodes=1)
    host = "127.0.0.1"
    amqp_port = 5672
    proxy_upstream = "rabbitmq:5672"
    toxiproxy_url: str | None = TOXIPROXY_URL

    def __init__(self, client: Any | None = None, user: str = "guest", password: str = "guest",
                 boot_timeout: float = 120.0) -> None:
        self._client = client
        self.user, self.password = user, password
        self.boot_timeout = boot_timeout
        self.mgmt = Management("http://127.0.0.1:15672", user, password)
        self.boot_s: float | None = 0.0
        self.reaped: list[str] = []  # vhosts of killed earlier runs deleted by start()
        self._paused = False

    @property
    def docker(self) -> Any:
        if self._client is None:
            self._client = docker_client()
        return self._client

    def _container(self, name: str) -> Any:
        client = self.docker  # "no Docker engine" is its own error, raised before any lookup
        try:
            return client.containers.get(name)
        except Exception as exc:  # noqa: BLE001 - docker.errors.NotFound and friends
            raise ChaosError(f"container {name} is not there ({type(exc).__name__})",
                             "run `docker compose up -d --wait` in the project directory first") from None

    def preflight(self, extra_ports: dict[str, int] | None = None) -> None:
        """The containers are the user's (checked by start()); only our own ports must be free."""
        if extra_ports:
            procs.ensure_ports_free(extra_ports)

    def start(self) -> ComposeBroker:
        for name in (BROKER_CONTAINER, PROXY_CONTAINER):
            c = self._container(name)
            c.reload()
            if c.status != "running":
                raise ChaosError(f"container {name} is {c.status}, not running",
                                 "run `docker compose up -d --wait` first")
        self.wait_ready(self.boot_timeout)
        from harness.env.external import reap_orphans

        self.reaped = reap_orphans(self.mgmt)  # the container outlives runs: so do killed runs' vhosts
        return self

    def stop(self) -> None:
        """We did not start the containers, so we leave them running (healed: never paused)."""
        if self._paused:
            self.resume()
        self.mgmt.close()

    def wait_ready(self, timeout: float) -> None:
        import pika

        params = pika.ConnectionParameters(host=self.host, port=self.amqp_port, connection_attempts=1,
                                           socket_timeout=2,
                                           credentials=pika.PlainCredentials(self.user, self.password))
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                pika.BlockingConnection(params).close()
                return
            except pika.exceptions.AMQPError:
                time.sleep(0.5)
        raise HarnessFailure(f"the compose broker did not answer an AMQP handshake within {timeout:.0f}s")

    def amqp_url(self, vhost: str, host: str | None = None, port: int | None = None) -> str:
        from urllib.parse import quote

        return (f"amqp://{self.user}:{self.password}@{host or self.host}:{port or self.amqp_port}/"
                f"{quote(vhost, safe='')}")

    def nodes(self) -> list[NodeInfo]:
        """One node; its upstream is the name Toxiproxy resolves inside the compose network."""
        return [NodeInfo(NODE, self.proxy_upstream)]

    def create_vhost(self, vhost: str) -> None:
        """A run's own vhost, labelled with its owner: the container outlives runs, so a killed
        run's vhost is reaped by the next start."""
        self.mgmt.create_vhost(vhost, self.user)

    def delete_vhost(self, vhost: str) -> None:
        self.mgmt.delete_vhost(vhost)

    # process faults through the Docker API
    def stop_node(self, node: str | None = None, timeout: float = 60.0) -> float:
        check_node([NODE], node)
        t0 = time.monotonic()
        self._container(BROKER_CONTAINER).stop(timeout=int(timeout))
        return time.monotonic() - t0

    def start_node(self, node: str | None = None, timeout: float | None = None) -> float:
        check_node([NODE], node)
        t0 = time.monotonic()
        self._container(BROKER_CONTAINER).start()
        self.wait_ready(timeout or self.boot_timeout)
        return time.monotonic() - t0

    def kill_node(self, node: str | None = None) -> None:
        check_node([NODE], node)
        self._container(BROKER_CONTAINER).kill(signal="SIGKILL")

    def pause(self, node: str | None = None) -> None:
        check_node([NODE], node)
        self._container(BROKER_CONTAINER).pause()
        self._paused = True

    def resume(self, node: str | None = None) -> None:
        check_node([NODE], node)
        c = self._container(BROKER_CONTAINER)
        c.reload()
        if c.status == "paused":
            c.unpause()
        self._paused = False

    def node_state(self, node: str | None = None) -> NodeState:
        """The container's status as Docker reports it (paused is the cgroup freezer: the
        container's processes are stopped, as SIGSTOP stops a local node)."""
        check_node([NODE], node)
        c = self._container(BROKER_CONTAINER)
        c.reload()
        return _STATES.get(c.status, "down")

    def ctl(self, *args: str, node: str | None = None, timeout: float = 30.0) -> str:
        check_node([NODE], node)
        code, out = self._container(BROKER_CONTAINER).exec_run(["rabbitmqctl", *args])
        text = out.decode(errors="replace") if isinstance(out, bytes) else str(out)
        if code != 0:
            raise HarnessFailure(f"rabbitmqctl {args[0] if args else ''} failed in the container: {text[:300]}")
        return text

    def versions(self) -> dict[str, Any]:
        return self.mgmt.versions()

    def log_files(self) -> list[Path]:
        return []  # the broker logs inside its container (``docker logs``), not to our files
