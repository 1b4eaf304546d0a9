"""aio-pika plumbing shared by ``aio-pika-robust`` and ``aio-pika-plain``: the two differ only
in ``connect_robust`` vs ``connect`` and in what the application does after an error (wait
for the library to restore the connection and re-publish, or give up).
"""

from __future__ import annotations

import asyncio
from typing import Any

import aio_pika
import aio_pika.abc
import aiormq.exceptions

from harness.clients.protocol import ClientContext
from harness.clients.strategies import _aio
from harness.clients.strategies._common import LossTracker, describe, record_delivery, work_async

#: aio-pika's defaults: channels confirm publishes; heartbeat as the broker proposes (60);
#: robust connections retry every 5 s. publish_timeout bounds a publish that hangs while the
#: robust connection is reconnecting (None = aio-pika's default: wait forever).
AIO_PIKA_PARAMS: dict[str, Any] = {"heartbeat": 60, "prefetch": 100, "publisher_confirms": True,
                                   "persistent": True, "publish_timeout_s": 10.0}


async def connect(ctx: ClientContext, robust: bool,
                  tracker: LossTracker) -> aio_pika.abc.AbstractConnection:
    """Connect, and hook the connection's callbacks to ``conn.lost`` / ``conn.open`` (a robust
    connection calls its close callbacks for every failed reconnect attempt too)."""
    kwargs: dict[str, Any] = {"client_properties": {"connection_name": ctx.cfg.connection_name},
                              "heartbeat": int(ctx.cfg.param("heartbeat", AIO_PIKA_PARAMS["heartbeat"]))}
    if robust:
        kwargs["reconnect_interval"] = float(ctx.cfg.param("reconnect_interval_s", 5.0))
        conn: aio_pika.abc.AbstractConnection = await aio_pika.connect_robust(ctx.cfg.amqp_url, **kwargs)
        conn.reconnect_callbacks.add(lambda *_: tracker.opened())  # type: ignore[attr-defined]
    else:
        conn = await aio_pika.connect(ctx.cfg.amqp_url, **kwargs)

    def on_close(_conn: Any, exc: BaseException | None = None) -> None:
        tracker.lost(exc or ConnectionError("closed"))

    conn.close_callbacks.add(on_close)
    tracker.opened()
    return conn


async def close(conn: aio_pika.abc.AbstractConnection, tracker: LossTracker) -> None:
    tracker.closing = True
    if not conn.is_closed:
        await conn.close()


async def _publish_all(ctx: ClientContext, robust: bool) -> None:
    p = ctx.cfg.param
    confirms = bool(p("publisher_confirms", AIO_PIKA_PARAMS["publisher_confirms"]))
    mode = (aio_pika.DeliveryMode.PERSISTENT if p("persistent", AIO_PIKA_PARAMS["persistent"])
            else aio_pika.DeliveryMode.NOT_PERSISTENT)
    timeout = p("publish_timeout_s", AIO_PIKA_PARAMS["publish_timeout_s"])
    delay = float(p("retry_delay_s", 1.0))
    tracker = LossTracker(ctx)
    conn = await connect(ctx, robust, tracker)
    try:
        channel = await conn.channel(publisher_confirms=confirms)
        await channel.declare_queue(ctx.cfg.queue, durable=True)
        outbox = _aio.AsyncOutbox(ctx)
        while (mid := await outbox.next()) is not None:
            ctx.event("publish.invoke", id=mid)
            try:
                await channel.default_exchange.publish(
                    aio_pika.Message(mid.encode(), delivery_mode=mode), routing_key=ctx.cfg.queue,
                    timeout=timeout)
            except aiormq.exceptions.DeliveryError as exc:  # basic.nack
                ctx.event("publish.fail", id=mid, error=describe(exc))
                outbox.retry_first(mid)
            except asyncio.CancelledError:
                ctx.event("publish.info", id=mid, error="cancelled at SIGTERM")
                raise
            except Exception as exc:  # connection/channel gone or publish timed out: unknown
                ctx.event("publish.info", id=mid, error=describe(exc))
                if not robust:
                    raise
                outbox.retry_first(mid)
                # the robust connection restores itself; wait for it rather than spin
                await asyncio.sleep(delay)
                await conn.connected.wait()  # type: ignore[attr-defined]
                await channel.ready()  # type: ignore[attr-defined]  # robust channel restored
            else:
                ctx.event("publish.ok", id=mid, confirmed=confirms)
    finally:
        await close(conn, tracker)


async def _consume(ctx: ClientContext, robust: bool) -> None:
    tracker = LossTracker(ctx)
    conn = await connect(ctx, robust, tracker)
    lost: asyncio.Future[BaseException] = asyncio.get_running_loop().create_future()

    def on_close(_conn: Any, exc: BaseException | None = None) -> None:
        if not lost.done():
            lost.set_result(exc or ConnectionError("closed"))

    if not robust:  # a plain connection's close ends the consumer: the process gives up
        conn.close_callbacks.add(on_close)
    try:
        channel = await conn.channel()
        await channel.set_qos(prefetch_count=int(ctx.cfg.param("prefetch", AIO_PIKA_PARAMS["prefetch"])))
        queue = await channel.declare_queue(ctx.cfg.queue, durable=True)

        async def on_message(message: aio_pika.abc.AbstractIncomingMessage) -> None:
            mid = record_delivery(ctx, message.body, bool(message.redelivered), work=False)
            await work_async(ctx)
            try:
                await message.ack()
            except (aiormq.exceptions.AMQPError, ConnectionError, RuntimeError):
                return  # the ack died with the connection: the broker redelivers
            ctx.event("ack", id=mid)

        await queue.consume(on_message, no_ack=False)
        stop: asyncio.Future[Any] = asyncio.ensure_future(_aio.until_stopping(ctx))
        await asyncio.wait([stop, lost], return_when=asyncio.FIRST_COMPLETED)
        stop.cancel()
        if lost.done() and not ctx.stopping.is_set():
            raise ConnectionError(describe(lost.result()))
    finally:
        await close(conn, tracker)


def publisher(ctx: ClientContext, robust: bool) -> None:
    _aio.run(ctx, lambda: _publish_all(ctx, robust))


def consumer(ctx: ClientContext, robust: bool) -> None:
    _aio.run(ctx, lambda: _consume(ctx, robust))
