"""RabbitMQ management HTTP API: the cheap way to administer the broker (~20 ms a call vs ~1 s
for a CLI call). Credentials live in the httpx client only; nothing here logs them.

Every vhost the harness creates is labelled with its owner (DESIGN "Habits" 11: leftovers are
found by a label, not by memory): its description reads ``rabbit-chaos owner=<host>:<pid>
proc_start=<ticks> started=<UTC time>`` and it carries the tag ``rabbit-chaos``. A run killed with
SIGKILL cannot delete its vhost (a durable queue with persistent messages, on a user's broker);
the next harness start on the same host deletes the labelled vhosts whose owner process is gone
(:meth:`Management.reap_orphan_vhosts`). A vhost without our label, or one owned by a live
process or by another host, is never touched.
"""

from __future__ import annotations

import os
import re
import socket
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

import httpx

from harness.env import procs
from harness.errors import HarnessFailure

#: the tag and description prefix of every vhost the harness creates
LABEL = "rabbit-chaos"
#: run vhosts are named ``rc-<run_id>`` (harness/engine.py); reaping also requires the name
VHOST_PREFIX = "rc-"
_OWNER = re.compile(rf"^{LABEL} owner=(?P<host>[^\s:]+):(?P<pid>\d+) proc_start=(?P<start>\d+)")


def proc_start(pid: int) -> int | None:
    """The process's start time in clock ticks since boot (/proc/<pid>/stat field 22): with the
    pid it names one process for the life of the machine (pids are recycled, start times are not)."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return int(fh.read().rsplit(")", 1)[1].split()[19])
    except (OSError, ValueError, IndexError):
        return None


@dataclass(frozen=True)
class Owner:
    host: str
    pid: int
    start: int

    @classmethod
    def me(cls) -> Owner:
        pid = os.getpid()
        return cls(socket.gethostname(), pid, proc_start(pid) or 0)

    @classmethod
    def parse(cls, description: Any) -> Owner | None:
        m = _OWNER.match(description) if isinstance(description, str) else None
        return cls(m["host"], int(m["pid"]), int(m["start"])) if m else None

    def label(self) -> str:
        started = datetime.now(UTC).isoformat(timespec="seconds")
        return f"{LABEL} owner={self.host}:{self.pid} proc_start={self.start} started={started}"

    def gone(self) -> bool:
        """True only when this host can prove the owner dead: same host, and its pid is not
        running or now names a process started at another time."""
        if self.host != socket.gethostname():
            return False
        return not procs.alive(self.pid) or proc_start(self.pid) != self.start


def q(name: str) -> str:
    return quote(name, safe="")


class Management:
    def __init__(self, base_url: str, user: str, password: str, timeout: float = 10.0) -> None:
        self.base_url = base_url.rstrip("/")
        self._http = httpx.Client(base_url=self.base_url, auth=(user, password), timeout=timeout)

    def close(self) -> None:
        self._http.close()

    def _req(self, method: str, path: str, ok: tuple[int, ...] = (200, 201, 204), **kw: Any) -> Any:
        try:
            r = self._http.request(method, "/api" + path, **kw)
        except httpx.HTTPError as exc:
            raise HarnessFailure(f"management API {method} {path} failed: {exc}") from exc
        if r.status_code not in ok:
            raise HarnessFailure(f"management API {method} {path} answered {r.status_code}: {r.text[:200]}")
        return r.json() if r.content and r.headers.get("content-type", "").startswith("application/json") else None

    def overview(self) -> dict[str, Any]:
        return self._req("GET", "/overview")

    def versions(self) -> dict[str, Any]:
        """Broker and Erlang versions for results.json (None each when the API does not answer)."""
        try:
            ov = self.overview()
        except (HarnessFailure, RuntimeError):  # RuntimeError: the client was already closed
            return {"broker": None, "erlang": None}
        return {"broker": ov.get("rabbitmq_version"), "erlang": ov.get("erlang_version")}

    def create_vhost(self, vhost: str, user: str) -> None:
        """Create ``vhost`` labelled with this process as its owner, and give ``user`` all rights."""
        self._req("PUT", f"/vhosts/{q(vhost)}", json={"description": Owner.me().label(), "tags": LABEL})
        self._req("PUT", f"/permissions/{q(vhost)}/{q(user)}",
                  json={"configure": ".*", "write": ".*", "read": ".*"})

    def delete_vhost(self, vhost: str) -> None:
        self._req("DELETE", f"/vhosts/{q(vhost)}", ok=(200, 204, 404))

    def vhosts(self) -> list[str]:
        return [v["name"] for v in self._req("GET", "/vhosts")]

    def orphan_vhosts(self) -> list[str]:
        """Vhosts we created (name ``rc-…`` and our owner label) whose owner is provably gone."""
        out = []
        for v in self._req("GET", "/vhosts") or []:
            name = v.get("name", "") if isinstance(v, dict) else ""
            owner = Owner.parse(v.get("description")) if name.startswith(VHOST_PREFIX) else None
            if owner is not None and owner.gone():
                out.append(name)
        return out

    def reap_orphan_vhosts(self) -> list[str]:
        """Delete :meth:`orphan_vhosts` (with their queues and messages); returns their names."""
        names = self.orphan_vhosts()
        for name in names:
            self.delete_vhost(name)
        return names

    def queue(self, vhost: str, name: str) -> dict[str, Any] | None:
        """Queue stats, or None when it does not exist. Counters are sampled (~5 s) by the
        broker; ``messages_ready`` from this endpoint lags, so callers that need the truth
        drain the queue rather than trusting a zero here."""
        try:
            r = self._http.get(f"/api/queues/{q(vhost)}/{q(name)}")
        except httpx.HTTPError as exc:
            raise HarnessFailure(f"management API GET queue failed: {exc}") from exc
        if r.status_code == 404:
            return None
        if r.status_code != 200:
            raise HarnessFailure(f"management API GET queue answered {r.status_code}")
        return r.json()

    def connections(self, vhost: str | None = None) -> list[dict[str, Any]]:
        path = f"/vhosts/{q(vhost)}/connections" if vhost else "/connections"
        return self._req("GET", path)

    def close_connection(self, name: str, reason: str = "closed by rabbit-chaos") -> None:
        self._req("DELETE", f"/connections/{q(name)}", ok=(200, 204, 404),
                  headers={"X-Reason": reason})

    def delete_queue(self, vhost: str, name: str) -> None:
        self._req("DELETE", f"/queues/{q(vhost)}/{q(name)}", ok=(200, 204, 404))
