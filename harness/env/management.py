"""RabbitMQ management HTTP API: the cheap way to administer the broker (~20 ms a call vs ~1 s
for a CLI call). Credentials live in the httpx client only; nothing here logs them."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import httpx

from harness.errors import HarnessFailure


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
        self._req("PUT", f"/vhosts/{q(vhost)}", json={})
        self._req("PUT", f"/permissions/{q(vhost)}/{q(user)}",
                  json={"configure": ".*", "write": ".*", "read": ".*"})

    def delete_vhost(self, vhost: str) -> None:
        self._req("DELETE", f"/vhosts/{q(vhost)}", ok=(200, 204, 404))

    def vhosts(self) -> list[str]:
        return [v["name"] for v in self._req("GET", "/vhosts")]

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
