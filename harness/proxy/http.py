"""A minimal HTTP/1.1 server for the JSON API: request line, headers, Content-Length or chunked
bodies, keep-alive. Hand-written so the proxy needs no web framework; it is not the hot path.

Why not http.server: it is thread-based and blocking, and the API must run in the same event
loop as the links it changes (toxic changes are then atomic with respect to traffic).
"""

from __future__ import annotations

import asyncio
import contextlib
import http
import json
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote, urlsplit

log = logging.getLogger(__name__)

MAX_HEADER_BYTES = 64 * 1024
MAX_BODY_BYTES = 16 * 1024 * 1024


@dataclass
class Request:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes

    def segments(self) -> list[str]:
        """Path split on "/" with each segment percent-decoded (proxy names may need quoting)."""
        return [unquote(s) for s in self.path.strip("/").split("/")] if self.path.strip("/") else []


@dataclass
class Response:
    status: int
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)

    @classmethod
    def json(cls, status: int, obj: Any, content_type: str = "application/json") -> Response:
        return cls(status, json.dumps(obj, separators=(",", ":")).encode(),
                   {"Content-Type": content_type})

    @classmethod
    def text(cls, status: int, text: str) -> Response:
        return cls(status, text.encode(), {"Content-Type": "text/plain; charset=utf-8"})


Handler = Callable[[Request], Awaitable[Response]]


class _BadRequest(Exception):
    pass


async def _read_request(reader: asyncio.StreamReader) -> Request | None:
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except asyncio.IncompleteReadError as exc:
        if exc.partial.strip():
            raise _BadRequest("truncated request") from None
        return None
    except asyncio.LimitOverrunError:
        raise _BadRequest("headers too large") from None
    lines = head.decode("latin-1").split("\r\n")
    try:
        method, target, version = lines[0].split(" ", 2)
    except ValueError:
        raise _BadRequest("malformed request line") from None
    if not version.startswith("HTTP/1."):
        raise _BadRequest("unsupported HTTP version")
    headers: dict[str, str] = {"__version__": version}
    for line in lines[1:]:
        if not line:
            continue
        name, sep, value = line.partition(":")
        if not sep:
            raise _BadRequest("malformed header")
        headers[name.strip().lower()] = value.strip()
    if "chunked" in headers.get("transfer-encoding", "").lower():
        body = await _read_chunked(reader)
    else:
        length = int(headers.get("content-length", "0") or "0")
        if length < 0 or length > MAX_BODY_BYTES:
            raise _BadRequest("bad content-length")
        body = await reader.readexactly(length) if length else b""
    return Request(method.upper(), urlsplit(target).path or "/", headers, body)


async def _read_chunked(reader: asyncio.StreamReader) -> bytes:
    parts: list[bytes] = []
    total = 0
    while True:
        size_line = await reader.readuntil(b"\r\n")
        size = int(size_line.split(b";", 1)[0].strip() or b"0", 16)
        if size == 0:
            while (await reader.readuntil(b"\r\n")) != b"\r\n":  # trailers
                pass
            return b"".join(parts)
        total += size
        if total > MAX_BODY_BYTES:
            raise _BadRequest("body too large")
        parts.append(await reader.readexactly(size))
        await reader.readexactly(2)


def _encode(resp: Response, keep_alive: bool) -> bytes:
    phrase = http.HTTPStatus(resp.status).phrase if resp.status in http.HTTPStatus._value2member_map_ else ""
    head = [f"HTTP/1.1 {resp.status} {phrase}"]
    for k, v in resp.headers.items():
        head.append(f"{k}: {v}")
    if resp.status != 204:
        head.append(f"Content-Length: {len(resp.body)}")
    if not keep_alive:
        head.append("Connection: close")
    return ("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + (resp.body if resp.status != 204 else b"")


async def serve(handler: Handler, host: str, port: int) -> asyncio.AbstractServer:
    """Start serving ``handler`` on host:port; returns the asyncio server."""

    async def on_client(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                try:
                    req = await _read_request(reader)
                except (_BadRequest, ValueError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
                    writer.write(_encode(Response.text(400, "400 Bad Request"), keep_alive=False))
                    await writer.drain()
                    return
                if req is None:
                    return
                version = req.headers.get("__version__", "HTTP/1.1")
                conn_hdr = req.headers.get("connection", "").lower()
                keep_alive = conn_hdr != "close" and (version != "HTTP/1.0" or conn_hdr == "keep-alive")
                try:
                    resp = await handler(req)
                except Exception:
                    log.exception("API handler failed for %s %s", req.method, req.path)
                    resp = Response.json(500, {"error": "internal error", "status": 500})
                writer.write(_encode(resp, keep_alive))
                await writer.drain()
                if not keep_alive:
                    return
        except ConnectionError:
            pass
        finally:
            with contextlib.suppress(Exception):
                writer.close()

    return await asyncio.start_server(on_client, host, port, limit=MAX_HEADER_BYTES, reuse_address=True)
