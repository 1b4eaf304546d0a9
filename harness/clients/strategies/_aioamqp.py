"""aioamqp plumbing shared by ``aioamqp-reconnect`` and ``aioamqp-naive``.

aioamqp has no recovery of its own: it reports a dead connection through the ``on_error``
callback and ``protocol.wait_closed()``, and the application must reconnect, reopen the
channel, redeclare the queue and consume again. The two strategies differ only in whether the
application does that (``reconnect=True``) or gives up.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import aioamqp
import aioamqp.exceptions

from harness.clients.protocol import ClientContext
from harness.clients.strategies import _aio
from harness.clients.strategies._common import LossTracker, describe, record_delivery, work_async

#: heartbeat as RabbitMQ proposes (aioamqp's own default is to accept the server's value);
#: confirms and persistence on; publish_timeout_s bounds a confirm that never comes.
AIOAMQP_PARAMS: dict[str, Any] = {"heartbeat": 60, "prefetch": 100, "confirm": True, "persistent": True,
                                  "retry_delay_s": 1.0, "publish_timeout_s": 10.0}

#: what a dead or refused connection raises in aioamqp
CONN_ERRORS = (aioamqp.exceptions.AioamqpException, OSError, asyncio.TimeoutError)


class Session:
    """One aioamqp connection + channel with the queue declared."""

    def __init__(self, ctx: ClientContext, tracker: LossTracker) -> None:
        self.ctx = ctx
        self.tracker = tracker
        self.transport: Any = None
        self.protocol: Any = None
        self.channel: Any = None

    async def open(self, confirm: bool = False) -> Session:
        p = self.ctx.cfg.param
        self.transport, self.protocol = await aioamqp.from_url(
            self.ctx.cfg.amqp_url, heartbeat=int(p("heartbeat", AIOAMQP_PARAMS["heartbeat"])),
            client_properties={"connection_name": self.ctx.cfg.connection_name},
            on_error=self.tracker.lost)
        self.tracker.opened()
        self.channel = await self.protocol.channel()
        await self.channel.queue_declare(self.ctx.cfg.queue, durable=True)
        if confirm:
            await self.channel.confirm_select()
        return self

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
                try:
                    session = await Session(ctx, tracker).open(confirm)
                except CONN_ERRORS:
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
            except asyncio.CancelledError:
                ctx.event("publish.info", id=mid, error="cancelled at SIGTERM")
                raise
            except CONN_ERRORS as exc:
                ctx.event("publish.info", id=mid, error=describe(exc))
                tracker.lost(exc)
                if not reconnect:
                    raise
                outbox.retry_first(mid)
                await session.close()
                session = None
                await asyncio.sleep(delay)
            else:
                ctx.event("publish.ok", id=mid, confirmed=confirm)
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
            stop = asyncio.ensure_future(_aio.until_stopping(ctx))
            closed = asyncio.ensure_future(session.protocol.wait_closed())
            await asyncio.wait([stop, closed], return_when=asyncio.FIRST_COMPLETED)
            stop.cancel()
            closed.cancel()
            if ctx.stopping.is_set():
                return
            raise ConnectionError("connection closed (wait_closed returned)")
        except (*CONN_ERRORS, ConnectionError) as exc:
            tracker.lost(exc)
            if not reconnect:
                raise
        finally:
            await session.close()
        await asyncio.sleep(delay)


def publisher(ctx: ClientContext, reconnect: bool) -> None:
    _aio.run(ctx, lambda: _publish_all(ctx, reconnect))


def consumer(ctx: ClientContext, reconnect: bool) -> None:
    _aio.run(ctx, lambda: _consume(ctx, reconnect))
