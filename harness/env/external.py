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
from typing import Any
from urllib.parse import quote, unquote, urlsplit

import httpx

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
    kind = "external"
    supports_process_faults = False
    supports_ctl = False

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
                               or f"http://{self.host}:15672")
        self.mgmt = Management(self.management_url, self.user, self.password)
        self.boot_s: float | None = 0.0
        #: vhosts of killed earlier runs deleted by start()
        self.reaped: list[str] = []

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
            who = httpx.get(self.management_url.rstrip("/") + "/api/whoami", auth=(self.user, self.password),
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
        return self

    def stop(self) -> None:
        self.mgmt.close()

    def versions(self) -> dict[str, Any]:
        return self.mgmt.versions()

    def _unavailable(self, *_: object, **__: object) -> Any:
        from harness.errors import FaultUnavailable

        raise FaultUnavailable("the external backend cannot control the broker process",
                               "use the local or compose backend for process faults")

    stop_node = start_node = kill_node = pause = resume = _unavailable

    def beam_pid(self) -> int | None:
        return None

    def ctl(self, *args: str, timeout: float = 30.0) -> str:
        return self._unavailable()
