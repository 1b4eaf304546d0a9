"""aioamqp plumbing shared by ``aioamqp-reconnect`` and ``aioamqp-naive``.

aioamqp has no recovery of its own: it reports a dead connection through the ``on_error``
callback and ``protocol.wait_closed()``, and the application must reconnect, reopen the
channel, redeclare the queue and consume again. The two strategies differ only in whether the
application does that (``reconnect=True``) or gives up.

What aioamqp tells the application, and the event each becomes:

* ``on_error`` / ``wait_closed()`` -> ``conn.lost``.
* ``channel.add_cancellation_callback`` (basic.cancel from the broker) -> ``consume.cancelled``.
* a channel the broker closed: pending calls fail with ``ChannelClosed(code, message)`` ->
  ``channel.closed`` with code and text; a consumer, which has no pending call, sees only the
  channel's ``close_event`` (aioamqp keeps no reason) -> ``channel.closed`` without a code.
* connection.blocked: never. aioamqp tells the broker it does not support it (client capability
  ``connection.blocked: false``), so the broker sends nothing and a blocked publish just waits;
  only ``publish_timeout_s`` ends that wait (``publish.info`` naming the timeout).
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import Awaitable, Callable, Mapping
from typing import Any
from urllib.parse import unquote, urlsplit

import aioamqp
import aioamqp.exceptions
import aioamqp.protocol

from harness.clients.protocol import ClientContext
from harness.clients.strategies import _aio
from harness.clients.strategies._common import (
    LossTracker,
    describe,
    queue_arguments,
    record_delivery,
    url_port,
    work_async,
)

#: heartbeat as RabbitMQ proposes (aioamqp's own default is to accept the server's value);
#: confirms and persistence on; publish_timeout_s bounds a confirm that never comes. It is 5 s,
#: not aio-pika's 10: aioamqp hears nothing of connection.blocked, so this deadline is its only
#: notice of a resource alarm and must come inside the checker's default max_block_s (10 s).
AIOAMQP_PARAMS: dict[str, Any] = {"heartbeat": 60, "prefetch": 100, "confirm": True, "persistent": True,
                                  "retry_delay_s": 1.0, "publish_timeout_s": 5.0}

#: what a dead or refused connection raises in aioamqp
CONN_ERRORS = (aioamqp.exceptions.AioamqpException, OSError, asyncio.TimeoutError)


def url_params(url: str) -> dict[str, Any]:
    """``aioamqp.connect`` arguments for an AMQP URL, percent-decoded. aioamqp's own ``from_url``
    passes the path through undecoded, so a vhost with a reserved character (the harness's run
    ids hold "+", sent as "%2B") is refused: 530 NOT_ALLOWED "vhost ...%2B... not found"."""
    u = urlsplit(url)
    if u.scheme not in ("amqp", "amqps"):
        raise ValueError(f"not an AMQP URL: {url!r}")
    out: dict[str, Any] = {"host": u.hostname or "localhost", "port": u.port,
                           "login": unquote(u.username or "guest"), "password": unquote(u.password or "guest"),
                           "virtualhost": unquote(u.path[1:]) if len(u.path) > 1 else "/"}
    if u.scheme == "amqps":
        out["ssl"] = ssl.create_default_context()
    return out


class Session:
    """One aioamqp connection + channel with the queue declared."""

    def __init__(self, ctx: ClientContext, tracker: LossTracker,
                 defaults: Mapping[str, Any] = AIOAMQP_PARAMS, url: str | None = None) -> None:
        self.ctx = ctx
        #: the node this session connects to: another node's URL for a failing-over client,
        #: else the run's ``amqp_url``
        self.url = url or ctx.cfg.amqp_url
        self.tracker = tracker
        #: the calling strategy's PARAMS, for the knobs the user did not set (``heartbeat``)
        self.defaults = defaults
        self.transport: Any = None
        self.protocol: Any = None
        self.channel: Any = None
        #: set by the broker's basic.cancel of our consumer
        self.cancelled = asyncio.Event()

    async def open(self, confirm: bool = False,
                   on_return: Callable[..., Awaitable[None]] | None = None) -> Session:
        """Connect, open the channel (``on_return``: aioamqp's ``return_callback``, awaited for
        each basic.return before the basic.ack of the same message), declare the queue."""
        p = self.ctx.cfg.param
        self.transport, self.protocol = await aioamqp.connect(
            **url_params(self.url), heartbeat=int(p("heartbeat", self.defaults.get("heartbeat", 60))),
            client_properties={"connection_name": self.ctx.cfg.connection_name},
            on_error=self.tracker.lost)
        self.tracker.opened(url_port(self.url))
        self.channel = await self.protocol.channel(return_callback=on_return)
        self.channel.add_cancellation_callback(self._on_cancel)
        await self.channel.queue_declare(self.ctx.cfg.queue, durable=True, arguments=queue_arguments(self.ctx.cfg))
        if confirm:
            await self.channel.confirm_select()
        return self

    async def _on_cancel(self, _channel: Any, consumer_tag: str) -> None:
        self.ctx.consume_cancelled(f"basic.cancel from the broker (consumer {consumer_tag}: queue deleted, "
                                   "or consumer timeout)")
        self.cancelled.set()

    @property
    def connection_open(self) -> bool:
        """The connection is neither closing nor closed. aioamqp sets ``state`` before it fails
        the channels (server close: CLOSING; socket lost: CLOSED), so a channel close seen while
        this is true was the channel's alone."""
        return self.protocol is not None and self.protocol.state == aioamqp.protocol.OPEN

    def notice(self, exc: BaseException) -> None:
        """An error from a channel call: the broker closed the channel (the connection is still
        open) -> ``channel.closed``; otherwise the connection is gone -> ``conn.lost`` (only if
        it had opened: :class:`LossTracker` ignores a refused attempt)."""
        if isinstance(exc, aioamqp.exceptions.ChannelClosed) and self.connection_open:
            self.ctx.channel_closed(exc.message, exc.code)
        else:
            self.tracker.lost(exc)

    async def close(self) -> None:
        self.tracker.closing = True
        if self.protocol is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.protocol.close(), 2.0)
        if self.transport is not None:
            self.transport.close()
        self.tracker.closing = False


async def _publish_all(ctx: ClientContext, reconnect: bool) -> None:
    p = ctx.cfg.param
    confirm = bool(p("confirm", AIOAMQP_PARAMS["confirm"]))
    props = {"delivery_mode": 2} if p("persistent", AIOAMQP_PARAMS["persistent"]) else {}
    timeout = float(p("publish_timeout_s", AIOAMQP_PARAMS["publish_timeout_s"]))
    delay = float(p("retry_delay_s", AIOAMQP_PARAMS["retry_delay_s"]))
    tracker = LossTracker(ctx)
    outbox = _aio.AsyncOutbox(ctx)
    session: Session | None = None
    try:
        while True:
            if session is None:
                opening = Session(ctx, tracker)
                try:
                    session = await opening.open(confirm)
                except CONN_ERRORS as exc:
                    opening.notice(exc)  # e.g. the declare refused (406): channel.closed
                    await opening.close()
                    if not reconnect:
                        raise
                    await asyncio.sleep(delay)
                    if ctx.stopping.is_set():
                        return
                    continue
            if (mid := await outbox.next()) is None:
                return
            ctx.event("publish.invoke", id=mid)
            try:
                await asyncio.wait_for(session.channel.publish(mid.encode(), "", ctx.cfg.queue, properties=props),
                                       timeout)
            except aioamqp.exceptions.PublishFailed as exc:  # basic.nack
                ctx.event("publish.fail", id=mid, error=describe(exc))
                outbox.retry_first(mid)
                continue
            except asyncio.CancelledError:
                if _aio.stopped_by_us(ctx):
                    ctx.event("publish.info", id=mid, error="stopped (SIGTERM) before the broker confirmed")
                    raise
                error: BaseException = ConnectionError("publish cancelled by the library: outcome unknown")
                ctx.event("publish.info", id=mid, error=describe(error))
                tracker.lost(error)
            except TimeoutError:
                ctx.event("publish.info", id=mid, error=f"publish timed out: no confirm within "
                          f"publish_timeout_s={timeout:g} s (outcome unknown)")
                error = TimeoutError(f"no confirm within publish_timeout_s={timeout:g} s")
                tracker.lost(error)
            except CONN_ERRORS as exc:
                ctx.event("publish.info", id=mid, error=describe(exc))
                session.notice(exc)
                error = exc
            else:
                ctx.event("publish.ok", id=mid, confirmed=confirm)
                continue
            if not reconnect:
                raise error
            outbox.retry_first(mid)
            await session.close()
            session = None
            await asyncio.sleep(delay)
    finally:
        if session is not None:
            await session.close()


async def _consume(ctx: ClientContext, reconnect: bool) -> None:
    prefetch = int(ctx.cfg.param("prefetch", AIOAMQP_PARAMS["prefetch"]))
    delay = float(ctx.cfg.param("retry_delay_s", AIOAMQP_PARAMS["retry_delay_s"]))
    tracker = LossTracker(ctx)

    async def on_message(channel: Any, body: bytes, envelope: Any, _props: Any) -> None:
        mid = record_delivery(ctx, body, bool(envelope.is_redeliver), work=False)
        await work_async(ctx)
        try:
            await channel.basic_client_ack(envelope.delivery_tag)
        except CONN_ERRORS:
            return  # the ack died with the connection: the broker redelivers
        ctx.event("ack", id=mid)

    while not ctx.stopping.is_set():
        session = Session(ctx, tracker)
        try:
            await session.open()
            await session.channel.basic_qos(prefetch_count=prefetch)
            await session.channel.basic_consume(on_message, queue_name=ctx.cfg.queue, no_ack=False)
            if await _watch(ctx, session, reconnect):
                return
        except (*CONN_ERRORS, ConnectionError) as exc:
            session.notice(exc)
            if not reconnect:
                raise
        finally:
            await session.close()
        await asyncio.sleep(delay)


async def _watch(ctx: ClientContext, session: Session, reconnect: bool) -> bool:
    """Wait for SIGTERM (returns True) or the connection's end (raises ConnectionError). A
    channel the broker closed or a consumer it cancelled is recorded; the reconnecting strategy
    then starts over on a fresh connection (returns False), the naive one keeps waiting."""
    stop = asyncio.ensure_future(_aio.until_stopping(ctx))
    closed = asyncio.ensure_future(session.protocol.wait_closed())
    channel_closed = asyncio.ensure_future(session.channel.close_event.wait())
    cancelled = asyncio.ensure_future(session.cancelled.wait())
    waits = {stop, closed, channel_closed, cancelled}
    try:
        while True:
            await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
            if ctx.stopping.is_set():
                return True
            if closed.done():
                raise ConnectionError("connection closed (wait_closed returned)")
            if channel_closed.done() and channel_closed in waits:
                waits.discard(channel_closed)
                if session.connection_open:
                    ctx.channel_closed("channel closed by the broker (aioamqp keeps no reason)")
                    if reconnect:
                        return False
            if cancelled.done() and cancelled in waits:
                waits.discard(cancelled)
                if reconnect:
                    return False
    finally:
        for fut in (stop, closed, channel_closed, cancelled):
            fut.cancel()


#: public name of :func:`_watch` for strategies that write their own loops (aioamqp-best)
watch = _watch


def publisher(ctx: ClientContext, reconnect: bool) -> None:
    _aio.run(ctx, lambda: _publish_all(ctx, reconnect))


def consumer(ctx: ClientContext, reconnect: bool) -> None:
    _aio.run(ctx, lambda: _consume(ctx, reconnect))
