"""The external backend: a broker the user already runs (staging, a CI service container).

The user gives an AMQP URL and, optionally, a management URL; credentials come from the URL or
from RABBIT_CHAOS_USER / RABBIT_CHAOS_PASSWORD, and are never logged or written to results
(every URL we print goes through :func:`redact`). The management API must accept the user with
the ``administrator`` tag: each run creates and deletes its own vhost, labelled with its owner
process, and ``start()`` deletes the labelled vhosts of killed earlier runs from this host (see
harness/env/management.py). Faults that need the broker process (restart, crash, pause) are
unavailable here, with that reason.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote, urlsplit

import httpx

from harness.env import procs
from harness.env.backend import Capabilities, NodeInfo, NodeState, check_node
from harness.env.management import Management
from harness.errors import ChaosError, HarnessFailure

log = logging.getLogger(__name__)


def reap_orphans(mgmt: Management) -> list[str]:
    """Delete the vhosts of earlier runs on this host that were killed before they could (their
    owner process is gone; see management.py). Never fails the start: a broker that refuses is
    named in a warning, and the leftovers wait for the next start."""
    try:
        names = mgmt.reap_orphan_vhosts()
    except HarnessFailure as exc:
        log.warning("could not check the broker for vhosts left by killed runs: %s", exc)
        return []
    if names:
        log.warning("deleted %d vhost(s) left by killed rabbit-chaos runs on this host: %s",
                    len(names), ", ".join(names))
    return names


def redact(url: str) -> str:
    """The URL with any password replaced by ***, for messages and logs."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = f"{parts.username}:***@{parts.hostname}" + (f":{parts.port}" if parts.port else "")
    return parts._replace(netloc=netloc).geturl()


class ExternalBroker:
    """A broker we only reach over AMQP and the management API (the Backend contract, with
    ``capabilities`` saying so): vhosts per run through the management API, no process control
    and no rabbitmqctl -- those operations raise HarnessFailure naming the reason, and the engine
    refuses faults that need them before a run starts."""

    kind = "external"
    capabilities = Capabilities(process=False, ctl=False, nodes=1)
    toxiproxy_url: str | None = None

    def __init__(self, amqp_url: str | None, management_url: str | None = None) -> None:
        amqp_url = amqp_url or os.environ.get("RABBIT_CHAOS_AMQP_URL")
        if not amqp_url:
            raise ChaosError("the external backend needs an AMQP URL",
                             "pass --amqp-url amqp://user@host:5672/ (or set RABBIT_CHAOS_AMQP_URL) "
                             "and the password in RABBIT_CHAOS_PASSWORD")
        parts = urlsplit(amqp_url)
        if parts.scheme not in ("amqp", "amqps") or not parts.hostname:
            raise ChaosError(f"{redact(amqp_url)} is not an AMQP URL", "use amqp://user:password@host:port/")
        self.host = parts.hostname
        self.amqp_port = parts.port or (5671 if parts.scheme == "amqps" else 5672)
        self.user = unquote(parts.username or os.environ.get("RABBIT_CHAOS_USER", "guest"))
        self.password = unquote(parts.password or os.environ.get("RABBIT_CHAOS_PASSWORD", "guest"))
        self.management_url = (management_url or os.environ.get("RABBIT_CHAOS_MANAGEMENT_URL")
                               or f"http://{self.host}:15672").rstrip("/")  # one spelling: as mgmt.base_url
        self.mgmt = Management(self.management_url, self.user, self.password)
        self.boot_s: float | None = 0.0
        #: vhosts of killed earlier runs deleted by start()
        self.reaped: list[str] = []
        #: the node the management API names (known after start(); a guess from the host before)
        self.node = f"rabbit@{self.host}"

    @property
    def proxy_upstream(self) -> str:
        return f"{self.host}:{self.amqp_port}"

    def amqp_url(self, vhost: str, host: str | None = None, port: int | None = None) -> str:
        return (f"amqp://{quote(self.user, safe='')}:{quote(self.password, safe='')}@{host or self.host}:"
                f"{port or self.amqp_port}/{quote(vhost, safe='')}")

    def start(self) -> ExternalBroker:
        """Check the broker is reachable and the credentials work, with one clear error each."""
        import pika

        shown = redact(self.amqp_url(""))
        try:
            params = pika.URLParameters(self.amqp_url("/"))
            params.connection_attempts = 1
            params.socket_timeout = 5
            pika.BlockingConnection(params).close()
        except (pika.exceptions.ProbableAuthenticationError, pika.exceptions.AuthenticationError):
            raise ChaosError(f"the broker at {shown} refused the credentials for user {self.user!r}",
                             "check the user and RABBIT_CHAOS_PASSWORD") from None
        except pika.exceptions.AMQPError as exc:
            raise ChaosError(f"cannot reach an AMQP broker at {shown} ({type(exc).__name__})",
                             "check the host and port, and that the broker is running") from None
        try:
            who = httpx.get(self.management_url + "/api/whoami", auth=(self.user, self.password),
                            timeout=5)
        except httpx.HTTPError as exc:
            raise ChaosError(f"cannot reach the management API at {self.management_url} ({type(exc).__name__})",
                             "enable rabbitmq_management, or pass --management-url") from None
        if who.status_code == 401:
            raise ChaosError(f"the management API at {self.management_url} refused user {self.user!r}",
                             "check the credentials; the management API uses the same user") from None
        tags = who.json().get("tags", []) if who.status_code == 200 else []
        tags = tags if isinstance(tags, list) else str(tags).split(",")
        if "administrator" not in tags:
            raise ChaosError(f"user {self.user!r} is not an administrator (tags: {tags})",
                             "each run creates its own vhost: give the user the administrator tag")
        self.reaped = reap_orphans(self.mgmt)
        try:
            self.node = str(self.mgmt.overview().get("node") or self.node)
        except HarnessFailure as exc:  # only the node's name is at stake: keep the guess
            log.warning("the management API did not name the broker node: %s", exc)
        return self

    def preflight(self, extra_ports: dict[str, int] | None = None) -> None:
        """Nothing of ours runs on the broker's host; only the harness's own ports must be free."""
        if extra_ports:
            procs.ensure_ports_free(extra_ports)

    def stop(self) -> None:
        self.mgmt.close()

    def versions(self) -> dict[str, Any]:
        return self.mgmt.versions()

    def nodes(self) -> list[NodeInfo]:
        """The one node we know of: the URL's host (a cluster behind a load balancer is one
        address to us; its nodes are not ours to address)."""
        return [NodeInfo(self.node, self.proxy_upstream)]

    def create_vhost(self, vhost: str) -> None:
        """A run's own vhost, labelled with its owner so a killed run's vhost is reaped later."""
        self.mgmt.create_vhost(vhost, self.user)

    def delete_vhost(self, vhost: str) -> None:
        self.mgmt.delete_vhost(vhost)

    def _unavailable(self, op: str, node: str | None, what: str) -> HarnessFailure:
        """The error of an operation this backend cannot do. HarnessFailure, not a user error:
        the engine refuses such faults up front, so reaching here is a harness bug."""
        check_node([self.node], node)
        return HarnessFailure(f"{op}: the external backend has no {what} (the broker is not ours to run); "
                              "use the local or compose backend for faults that need it")

    def stop_node(self, node: str | None = None, timeout: float = 60.0) -> float:
        raise self._unavailable("stop_node", node, "control of the broker process")

    def start_node(self, node: str | None = None, timeout: float | None = None) -> float:
        raise self._unavailable("start_node", node, "control of the broker process")

    def kill_node(self, node: str | None = None) -> None:
        raise self._unavailable("kill_node", node, "control of the broker process")

    def pause(self, node: str | None = None) -> None:
        raise self._unavailable("pause", node, "control of the broker process")

    def resume(self, node: str | None = None) -> None:
        raise self._unavailable("resume", node, "control of the broker process")

    def node_state(self, node: str | None = None) -> NodeState:
        """Unknown: we do not see the process (a broker that stopped answering is the checker's
        finding through the clients, not ours)."""
        check_node([self.node], node)
        return "unknown"

    def ctl(self, *args: str, node: str | None = None, timeout: float = 30.0) -> str:
        raise self._unavailable(f"rabbitmqctl {args[0] if args else ''}".strip(), node, "rabbitmqctl")

    def log_files(self) -> list[Path]:
        return []  # the broker's logs are on its own host
