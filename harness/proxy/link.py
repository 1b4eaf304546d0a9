"""The data path: a connection is two sockets and two links (one per direction).

Hot path: a link with no toxics has ``first is None`` and ``feed`` is one ``transport.write`` of
whatever the read returned (uvloop reads up to 256 KiB at a time); flow control is the
transport's own pause_writing/resume_writing turned into pause/resume_reading of the source.
No per-chunk allocation, timestamp or task.

Toxic path: ``feed`` hands ``(read time, bytes)`` to the first stage; the last stage hands it to
the writer. Bytes inside stages count as ``inflight``; above ``INFLIGHT_HIGH`` the source stops
being read until the chain drains below ``INFLIGHT_LOW``, so memory stays bounded and a slow
toxic pushes back on the sender as a slow network would.

Closing follows Toxiproxy (link.go): when a direction ends (EOF from its source, or a toxic
closed it) its destination socket is closed fully, which ends the other direction too after
that one flushes its own chain. There is no half-close, as in Toxiproxy.

RST versus FIN, as Toxiproxy 2.12 does it: a connection opened while a ``reset_peer`` toxic is on
its proxy (either direction) gets SO_LINGER 0 on both of its sockets when its links start, so
every close of it (the toxic firing, but also a later ordinary close) is an abortive one and the
kernel sends RST. A connection that was already open when the toxic was added keeps the default
linger: the toxic closes it with FIN. reset_peer itself just closes the stream.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import struct
import typing
from typing import TYPE_CHECKING

from harness.proxy.stage import EOF, Item, Stage

if TYPE_CHECKING:
    from harness.proxy.proxy import Proxy
    from harness.proxy.toxic_collection import ToxicSpec

log = logging.getLogger(__name__)

#: Bytes a link may hold inside its toxics before it stops reading its source.
INFLIGHT_HIGH = 8 * 1024 * 1024
INFLIGHT_LOW = 2 * 1024 * 1024
#: Transport write-buffer limits: big enough that bulk transfers are not paused per read.
WRITE_HIGH = 1024 * 1024
WRITE_LOW = 256 * 1024

_LINGER_ZERO = struct.pack("ii", 1, 0)


class _Discard:
    """The sink of a dead link: everything it gets is dropped."""

    __slots__ = ()

    def push(self, item: Item) -> None:
        pass


_DISCARD = _Discard()


class Writer:
    """The end of a link's chain: writes to the destination socket."""

    __slots__ = ("link",)

    def __init__(self, link: Link) -> None:
        self.link = link

    def push(self, item: Item) -> None:
        link = self.link
        data = item[1]
        if isinstance(data, bytes):
            link.inflight -= len(data)
            if not link.dead:
                link.dest.write(data)
            if link.paused and link.inflight < INFLIGHT_LOW:
                link.update_reading()
        else:
            link.end()


class Link:
    """One direction of one connection: source socket -> toxics -> destination socket."""

    __slots__ = ("conn", "dead", "dest", "dest_paused", "eof_fed", "first", "holders", "inflight",
                 "now", "paused", "source", "stages", "stream", "writer")

    def __init__(self, conn: Connection, stream: str, source: asyncio.Transport,
                 dest: asyncio.Transport) -> None:
        self.conn = conn
        self.stream = stream
        self.source = source
        self.dest = dest
        self.now = asyncio.get_running_loop().time
        self.writer = Writer(self)
        self.stages: list[Stage] = []
        self.first: Stage | _Discard | None = None  # None: no toxics, the fast path
        self.inflight = 0
        self.paused = False
        self.dest_paused = False
        self.holders: set[Stage] = set()
        self.dead = False
        self.eof_fed = False

    # -- input from the source socket --------------------------------------------------------
    def feed(self, data: bytes) -> None:
        first = self.first
        if first is None:
            self.dest.write(data)
            return
        self.inflight += len(data)
        first.push((self.now(), data))
        if self.inflight > INFLIGHT_HIGH and not self.paused:
            self.update_reading()

    def feed_eof(self) -> None:
        if self.eof_fed:
            return
        self.eof_fed = True
        first = self.first
        (self.writer if first is None else first).push((self.now(), EOF))

    # -- flow control ------------------------------------------------------------------------
    def update_reading(self) -> None:
        """Read the source iff the destination accepts writes, no ``hold`` is active and the
        toxics hold less than the inflight budget."""
        over = self.inflight > (INFLIGHT_LOW if self.paused else INFLIGHT_HIGH)
        want_pause = self.dest_paused or bool(self.holders) or over
        if want_pause == self.paused:
            return
        self.paused = want_pause
        source = self.source
        if source.is_closing():
            return
        if want_pause:
            source.pause_reading()
        else:
            source.resume_reading()

    def discard(self, n: int) -> None:
        """A toxic dropped ``n`` bytes: they no longer count against the budget."""
        if n:
            self.inflight -= n
            if self.paused and self.inflight < INFLIGHT_LOW:
                self.update_reading()

    def add_hold(self, stage: Stage) -> None:
        self.holders.add(stage)
        self.update_reading()

    def release_hold(self, stage: Stage) -> None:
        if stage in self.holders:
            self.holders.discard(stage)
            self.update_reading()

    # -- toxics come and go --------------------------------------------------------------------
    def add_stage(self, spec: ToxicSpec) -> None:
        if self.dead:
            return
        stage = Stage(self, spec, self.writer)
        if self.stages:
            self.stages[-1].next = stage
        else:
            self.first = stage
        self.stages.append(stage)
        stage.start()

    def restart_stage(self, spec: ToxicSpec) -> None:
        for stage in self.stages:
            if stage.spec is spec:
                stage.restart()

    def remove_stage(self, spec: ToxicSpec) -> None:
        idx = next((i for i, st in enumerate(self.stages) if st.spec is spec), None)
        if idx is None:
            return
        stage = self.stages.pop(idx)
        nxt = stage.next
        if idx > 0:
            self.stages[idx - 1].next = nxt
        elif not self.dead:
            self.first = nxt if isinstance(nxt, Stage) else None
        if stage.active and not stage.closed:
            spec.toxic.on_remove(stage)
        stage.detach()  # forwards what it held, in order, to nxt
        self.update_reading()

    # -- the end ------------------------------------------------------------------------------
    def end(self) -> None:
        """EOF reached the writer: close the destination, as Toxiproxy's link does (an abortive
        close, RST, when the connection was opened under a reset_peer toxic: ``linger_zero``)."""
        if self.dead:
            return
        self.kill()
        _close(self.dest)
        # The other direction reads from the socket we just closed: it ends now (after its own
        # toxics flush), as Go's blocked Read returns an error when the conn is closed.
        other = self.conn.other(self)
        if other is not None:
            other.feed_eof()

    def kill(self) -> None:
        """Stop carrying data: later input is dropped; toxics stop."""
        self.dead = True
        self.first = _DISCARD
        self.holders.clear()
        for stage in self.stages:
            stage.cancel()

    def stats(self) -> dict[str, int]:
        return {"stages": len(self.stages), "inflight": self.inflight, "paused": int(self.paused)}


def _close(transport: asyncio.BaseTransport) -> None:
    """Close now: flush what the transport buffered if the peer takes it, else drop it (Go's
    Close never waits on the peer; a held or dead peer must not keep the socket open)."""
    if transport.is_closing():
        return
    transport = typing.cast(asyncio.WriteTransport, transport)
    if transport.get_write_buffer_size() == 0:
        transport.close()
    else:
        transport.close()
        asyncio.get_running_loop().call_later(2.0, transport.abort)


class Side(asyncio.Protocol):
    """Protocol for one socket of a connection: reads feed ``out_link``; the socket is the
    destination of ``in_link``."""

    __slots__ = ("conn", "early", "early_eof", "in_link", "lost", "out_link", "transport")

    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self.transport: asyncio.Transport | None = None
        self.out_link: Link | None = None
        self.in_link: Link | None = None
        self.lost = False
        # What a client sent before the upstream answered. uvloop starts reading after
        # connection_made even if it paused, so the first read can arrive before the links exist.
        self.early: list[bytes] = []
        self.early_eof = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        transport = typing.cast(asyncio.Transport, transport)  # uvloop's are not subclasses
        self.transport = transport
        with contextlib.suppress(OSError, AttributeError):
            sock = transport.get_extra_info("socket")
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        transport.set_write_buffer_limits(high=WRITE_HIGH, low=WRITE_LOW)

    def data_received(self, data: bytes) -> None:
        link = self.out_link
        if link is not None:
            if link.first is None:  # no toxics: the whole hot path is this one write
                link.dest.write(data)
            else:
                link.feed(data)
        else:
            self.early.append(data)
            assert self.transport is not None
            self.transport.pause_reading()

    def eof_received(self) -> bool:
        if self.out_link is not None:
            self.out_link.feed_eof()
        else:
            self.early_eof = True
        return True  # keep the socket open: the other direction may still be writing to it

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True
        if self.out_link is not None:
            self.out_link.feed_eof()
        if self.in_link is not None:
            self.in_link.kill()
        self.conn.side_lost()

    def pause_writing(self) -> None:
        link = self.in_link
        if link is not None:
            link.dest_paused = True
            link.update_reading()

    def resume_writing(self) -> None:
        link = self.in_link
        if link is not None:
            link.dest_paused = False
            link.update_reading()


class ClientSide(Side):
    """The accepted socket: creates its Connection and dials the upstream."""

    __slots__ = ("proxy",)

    def __init__(self, proxy: Proxy) -> None:
        super().__init__(Connection(proxy))
        self.proxy = proxy

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        self.conn.client = self
        self.conn.start()


class Connection:
    """A client socket, its upstream socket, and the two links between them."""

    def __init__(self, proxy: Proxy) -> None:
        self.proxy = proxy
        self.client: Side | None = None
        self.upstream = Side(self)
        self.up: Link | None = None  # client -> upstream
        self.down: Link | None = None  # upstream -> client
        self._dial: asyncio.Task[None] | None = None
        self.closing = False
        self.finished = False

    def start(self) -> None:
        self.proxy.connections.add(self)
        self._dial = asyncio.get_running_loop().create_task(self._connect())

    async def _connect(self) -> None:
        loop = asyncio.get_running_loop()
        host, port = self.proxy.upstream_addr()
        try:
            await loop.create_connection(lambda: self.upstream, host, port)
        except (OSError, ValueError) as exc:
            self._dial = None
            log.warning("proxy %s: unable to open connection to upstream %s: %s",
                        self.proxy.name, self.proxy.upstream, exc)
            self.close()
            return
        self._dial = None
        client, upstream = self.client, self.upstream
        assert client is not None and client.transport is not None and upstream.transport is not None
        if client.lost or self.closing:
            self.close()
            return
        self.up = Link(self, "upstream", client.transport, upstream.transport)
        self.down = Link(self, "downstream", upstream.transport, client.transport)
        client.out_link = upstream.in_link = self.up
        upstream.out_link = client.in_link = self.down
        toxics = self.proxy.toxics
        if any(spec.type == "reset_peer" for chain in toxics.chains.values() for spec in chain):
            self.linger_zero()  # Toxiproxy's link.Start: SetLinger(0) on source and dest
        toxics.attach(self.up)
        toxics.attach(self.down)
        # Either side may have sent data, EOF or closed while the upstream dial completed (its
        # callbacks run before this coroutine resumes): replay that into the new links, or an
        # upstream that closes at once would leave the client hanging open.
        for side, link in ((client, self.up), (upstream, self.down)):
            if side.early:
                link.paused = True  # data_received paused it
                for data in side.early:
                    link.feed(data)
                side.early.clear()
            if side.early_eof or side.lost:
                link.feed_eof()
            link.update_reading()

    def other(self, link: Link) -> Link | None:
        return self.down if link is self.up else self.up

    def links(self) -> list[Link]:
        return [link for link in (self.up, self.down) if link is not None]

    def linger_zero(self) -> None:
        """SO_LINGER 0 on both sockets: from now on closing either sends RST, not FIN. Set when the
        connection opens under a reset_peer toxic, never later (Toxiproxy 2.12 link.go)."""
        for side in (self.client, self.upstream):
            t = side.transport if side is not None else None
            if t is None:
                continue
            with contextlib.suppress(OSError, AttributeError):
                t.get_extra_info("socket").setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _LINGER_ZERO)

    def close(self) -> None:
        """Close both sockets now (proxy disabled or deleted, or upstream unreachable). A dial
        in progress is left to finish and then closes what it opened."""
        self.closing = True
        for link in self.links():
            link.kill()
        for side in (self.client, self.upstream):
            if side is not None and side.transport is not None:
                _close(side.transport)
        self.side_lost()

    def side_lost(self) -> None:
        if self.finished or self._dial is not None:
            return
        client_gone = self.client is None or self.client.lost
        upstream_gone = self.upstream.transport is None or self.upstream.lost
        if not (client_gone and upstream_gone):
            return
        self.finished = True
        toxics = self.proxy.toxics
        for link in self.links():
            link.kill()
            toxics.detach(link)
        self.proxy.connections.discard(self)
