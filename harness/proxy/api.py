"""Toxiproxy 2.x's HTTP API (routes, status codes and bodies as in its api.go).

Every handler runs in the event loop under one lock and never waits on traffic: adding, changing
or removing a toxic rewires each link synchronously, so the API answers promptly however the
links are doing (no Toxiproxy #159/#558 hangs).

Ours only: ``GET /__debug/stats`` (task, connection and fd counts, for the soak test).
"""

from __future__ import annotations

import asyncio
import json
import os
from typing import Any

from harness.proxy import VERSION, errors
from harness.proxy.errors import ApiError
from harness.proxy.http import Request, Response
from harness.proxy.proxy import Proxy, ProxyCollection


def _error(err: ApiError) -> Response:
    # Go's http.Error: the JSON text plus a newline, sent as text/plain
    body = json.dumps(err.to_json(), separators=(",", ":")) + "\n"
    return Response(err.status, body.encode(), {"Content-Type": "text/plain; charset=utf-8",
                                                "X-Content-Type-Options": "nosniff"})


def _decode(req: Request) -> Any:
    try:
        return json.loads(req.body or b"null") if req.body.strip() else _EMPTY
    except ValueError as exc:
        raise errors.BAD_REQUEST_BODY.joined(str(exc)) from None


_EMPTY = object()  # Go's decoder on an empty body: "EOF"


def _object(req: Request) -> dict[str, Any]:
    body = _decode(req)
    if body is _EMPTY:
        raise errors.BAD_REQUEST_BODY.joined("EOF")
    if not isinstance(body, dict):
        raise errors.BAD_REQUEST_BODY.joined("json: cannot unmarshal into Go value of type toxiproxy.Proxy")
    return body


def _str_field(body: dict[str, Any], key: str, default: str) -> str:
    value = body.get(key, default)
    if value is None:
        return default
    if not isinstance(value, str):
        raise errors.BAD_REQUEST_BODY.joined(
            f"json: cannot unmarshal {type(value).__name__} into Go struct field Proxy.{key} of type string")
    return value


def _bool_field(body: dict[str, Any], key: str, default: bool) -> bool:
    value = body.get(key, default)
    if value is None:
        return default
    if not isinstance(value, bool):
        raise errors.BAD_REQUEST_BODY.joined(
            f"json: cannot unmarshal into Go struct field Proxy.{key} of type bool")
    return value


class Api:
    """Routes requests to the proxy collection."""

    def __init__(self, collection: ProxyCollection | None = None) -> None:
        self.collection = collection or ProxyCollection()
        self._lock = asyncio.Lock()

    async def handle(self, req: Request) -> Response:
        if req.headers.get("user-agent", "").startswith("Mozilla/"):
            return Response.text(403, "User agent not allowed\n")
        route = self._route(req)
        if route is None:
            return Response.text(404, "404 page not found\n")
        if isinstance(route, Response):
            return route
        func, args = route
        async with self._lock:
            try:
                return await func(req, *args)
            except ApiError as err:
                return _error(err)

    def _route(self, req: Request) -> Any:
        seg, m = req.segments(), req.method
        table: dict[tuple[str, ...], Any] = {}
        if seg == ["version"]:
            table = {("GET",): self.version}
        elif seg == ["reset"]:
            table = {("POST",): self.reset}
        elif seg == ["populate"]:
            table = {("POST",): self.populate}
        elif seg == ["proxies"]:
            table = {("GET",): self.proxy_index, ("POST",): self.proxy_create}
        elif len(seg) == 2 and seg[0] == "proxies":
            table = {("GET",): self.proxy_show, ("POST", "PATCH"): self.proxy_update,
                     ("DELETE",): self.proxy_delete}
        elif len(seg) == 3 and seg[0] == "proxies" and seg[2] == "toxics":
            table = {("GET",): self.toxic_index, ("POST",): self.toxic_create}
        elif len(seg) == 4 and seg[0] == "proxies" and seg[2] == "toxics":
            table = {("GET",): self.toxic_show, ("POST", "PATCH"): self.toxic_update,
                     ("DELETE",): self.toxic_delete}
        elif seg == ["__debug", "stats"]:
            table = {("GET",): self.debug_stats}
        if not table:
            return None
        for methods, func in table.items():
            if m in methods:
                return func, (seg[1::2] if seg[0] == "proxies" else [])  # proxy, toxic names
        return Response(405)

    # -- handlers --------------------------------------------------------------------------
    async def version(self, req: Request) -> Response:
        body = json.dumps({"version": VERSION}) + "\n"
        return Response(200, body.encode(), {"Content-Type": "application/json;charset=utf-8"})

    async def reset(self, req: Request) -> Response:
        for proxy in list(self.collection.proxies.values()):
            await proxy.start()
            proxy.toxics.reset()
        return Response(204)

    async def proxy_index(self, req: Request) -> Response:
        return Response.json(200, {n: p.to_json() for n, p in self.collection.proxies.items()})

    async def proxy_create(self, req: Request) -> Response:
        body = _object(req)
        name = _str_field(body, "name", "")
        upstream = _str_field(body, "upstream", "")
        listen = _str_field(body, "listen", "")
        enabled = _bool_field(body, "enabled", True)
        if not name:
            raise errors.MISSING_FIELD.joined("name")
        if not upstream:
            raise errors.MISSING_FIELD.joined("upstream")
        proxy = Proxy(name, listen, upstream)
        await self.collection.add(proxy, enabled)
        return Response.json(201, proxy.to_json())

    async def populate(self, req: Request) -> Response:
        body = _decode(req)
        if body is _EMPTY or not isinstance(body, list):
            err = errors.BAD_REQUEST_BODY.joined(
                "EOF" if body is _EMPTY else "json: cannot unmarshal object into Go value of type []struct")
            return Response.json(err.status, {**err.to_json(), "proxies": None})
        for i, item in enumerate(body, 1):
            if not isinstance(item, dict):
                err = errors.BAD_REQUEST_BODY.joined("json: cannot unmarshal into Go struct")
                return Response.json(err.status, {**err.to_json(), "proxies": None})
            for key in ("name", "upstream"):
                if not isinstance(item.get(key), str) or not item[key]:
                    err = errors.MISSING_FIELD.joined(f"{key} at proxy {i}")
                    return Response.json(err.status, {**err.to_json(), "proxies": None})
        done: list[Proxy] = []
        for item in body:
            proxy = Proxy(item["name"], item.get("listen") or "", item["upstream"])
            enabled = item.get("enabled")
            try:
                done.append(await self.collection.add_or_replace(proxy, enabled is not False))
            except ApiError as err:
                return Response.json(err.status, {**err.to_json(),
                                                  "proxies": [p.to_json() for p in done]})
        return Response.json(201, {"proxies": [p.to_json() for p in done]})

    async def proxy_show(self, req: Request, name: str) -> Response:
        return Response.json(200, self.collection.get(name).to_json())

    async def proxy_update(self, req: Request, name: str) -> Response:
        proxy = self.collection.get(name)
        body = _object(req)
        await proxy.update(_str_field(body, "listen", proxy.listen),
                           _str_field(body, "upstream", proxy.upstream),
                           _bool_field(body, "enabled", proxy.enabled))
        return Response.json(200, proxy.to_json())

    async def proxy_delete(self, req: Request, name: str) -> Response:
        self.collection.remove(name)
        return Response(204)

    async def toxic_index(self, req: Request, name: str) -> Response:
        return Response.json(200, self.collection.get(name).toxics.to_json())

    async def toxic_create(self, req: Request, name: str) -> Response:
        proxy = self.collection.get(name)
        body = _decode(req)
        if body is _EMPTY:
            raise errors.BAD_REQUEST_BODY.joined("EOF")
        return Response.json(200, proxy.toxics.add(body).to_json())

    async def toxic_show(self, req: Request, name: str, toxic: str) -> Response:
        spec = self.collection.get(name).toxics.find(toxic)
        if spec is None:
            raise errors.TOXIC_NOT_FOUND
        return Response.json(200, spec.to_json())

    async def toxic_update(self, req: Request, name: str, toxic: str) -> Response:
        toxics = self.collection.get(name).toxics
        if toxics.find(toxic) is None:
            raise errors.TOXIC_NOT_FOUND
        body = _decode(req)
        if body is _EMPTY:
            raise errors.BAD_REQUEST_BODY.joined("EOF")
        return Response.json(200, toxics.update(toxic, body).to_json())

    async def toxic_delete(self, req: Request, name: str, toxic: str) -> Response:
        self.collection.get(name).toxics.remove(toxic)
        return Response(204)

    async def debug_stats(self, req: Request) -> Response:
        """Ours, not Toxiproxy's: counts that must return to baseline after a soak."""
        proxies = self.collection.proxies.values()
        conns = [c for p in proxies for c in p.connections]
        try:
            fds = len(os.listdir("/proc/self/fd"))
        except OSError:
            fds = -1
        return Response.json(200, {
            "ours": True,
            "tasks": len(asyncio.all_tasks()),
            "proxies": len(self.collection.proxies),
            "connections": len(conns),
            "links": sum(len(p.toxics.links[s]) for p in proxies for s in ("upstream", "downstream")),
            "stages": sum(len(link.stages) for c in conns for link in c.links()),
            "inflight_bytes": sum(link.inflight for c in conns for link in c.links()),
            "fds": fds,
        })
