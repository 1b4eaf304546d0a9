"""aio-pika, best practice: the recipe in docs/recipes.md ("aio-pika"), as a strategy.

What it adds to ``aio-pika-robust`` (``connect_robust``, confirms, persistent, re-publish after an
error), each against a column of the default matrix that fails without it:

* **a short heartbeat** (5 s: aiormq closes a silent connection 18-20 s later, instead of
  183-213 s at RabbitMQ's 60 s): partition, heartbeat-starvation;
* **a confirm deadline** (``confirm_timeout_s``): a confirm that never comes (dropped by
  packet-loss, held by a partition or a memory alarm, delayed beyond it by latency) is
  ``publish.info`` naming the deadline, and the message is re-sent: packet-loss, latency,
  memory-alarm (blocked);
* **mandatory + on_return_raises**: a message the broker cannot route (its queue was deleted)
  raises ``PublishError`` instead of coming back as a silent "confirmed": ``publish.fail`` and a
  re-send once the queue is back: queue-delete ("confirmed but unroutable" loss);
* **connection.blocked** recorded from aiormq's log (``conn.blocked``/``conn.unblocked``), the
  publish deadline bounds the wait: memory-alarm;
* **re-send with backoff** after every error, only once the robust connection has reconnected
  and restored the channel (``channel.ready()``), never a tight loop: broker-restart,
  broker-crash, connection-cut;
* consumer: **manual acks, prefetch**, the robust channel restores itself after a broker channel
  close (consumer-timeout's 406) and re-declares + re-consumes after a ``basic.cancel``
  (queue-delete; aio-pika 10.2's robust channel does both), **idempotent** handling of
  redeliveries (an id already processed is acked without doing its work again);
* **a delivery-tag gap check**: packet-loss can drop a whole delivery; the broker then holds it
  unacked until the channel closes (stranded), so a skipped tag drops the connection and the
  broker redelivers: packet-loss;
* **a handshake deadline** (``connect_timeout_s``) on every robust reconnect: packet-loss;
* quorum queues: **an idle check** (``idle_check_s``, 5 s; off on classic queues): no delivery
  for that long -> a passive declare; ready messages -> ``consume.cancelled`` naming them; then
  a re-consume on a new channel either way (RabbitMQ 3.10.8 leaves a consumer unserved, with no
  basic.cancel, when a quorum queue is re-declared right after its delete): queue-del;
* **cluster failover** (``amqp_urls``: one URL per node): ``connect_robust`` takes one URL, so
  the application rotates: a robust connection that closes is pointed at the next node before it
  reconnects (``_aio_pika.connect``), and every fresh connection (the restore deadline's) starts
  at the next node: node-kill, node-cut (a single-host client waits for its node). On one node
  every connection goes to it, as before.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import aio_pika
import aio_pika.abc
import aio_pika.exceptions
import aiormq.exceptions

from harness.clients.protocol import ClientContext
from harness.clients.strategies import _aio, _aio_pika
from harness.clients.strategies._common import (
    IdleCheck,
    LossTracker,
    Nodes,
    describe,
    idle_check_s,
    queue_arguments,
    record_delivery,
    work_async,
)

NAME = "aio-pika-best"
LIBRARY = "aio-pika"
DESCRIPTION = ("aio-pika best practice: connect_robust, heartbeat 5 s, confirms with a deadline, mandatory + "
               "returns raise, re-send with backoff after reconnect, idempotent consumer")
PARAMS: dict[str, Any] = {
    "heartbeat": 5,              # aiormq detects a silent peer in 3(hb+1)..3(hb+1)+hb//2 s: 18-20 s
    "prefetch": 100,             # bounded in-flight deliveries per consumer
    "confirm_timeout_s": 5.0,    # no confirm within this -> publish.info, re-send (inside max_block_s 10)
    "reconnect_interval_s": 2.0,  # connect_robust's retry interval (fixed in aio-pika)
    "connect_timeout_s": 5.0,    # a handshake whose frames were lost (packet-loss) is retried, not awaited
    "restore_deadline_s": 15.0,  # connection + channel not back within this -> a fresh connect_robust
    "retry_delay_s": 0.5,        # first re-send back-off, doubled per consecutive failure ...
    "max_retry_delay_s": 5.0,    # ... up to this
}


def _param(ctx: ClientContext, name: str) -> Any:
    return ctx.cfg.param(name, PARAMS[name])


class Backoff:
    """Exponential back-off between re-sends: ``retry_delay_s`` doubling to ``max_retry_delay_s``,
    reset by a success. A fixed short delay would hammer a broker that is still booting."""

    def __init__(self, ctx: ClientContext) -> None:
        self.first = float(_param(ctx, "retry_delay_s"))
        self.cap = float(_param(ctx, "max_retry_delay_s"))
        self.next = self.first

    def reset(self) -> None:
        self.next = self.first

    def take(self) -> float:
        delay, self.next = self.next, min(self.cap, self.next * 2)
        return delay


async def _publish_all(ctx: ClientContext) -> None:
    timeout = float(_param(ctx, "confirm_timeout_s"))
    deadline = float(_param(ctx, "restore_deadline_s"))
    tracker = LossTracker(ctx)
    nodes = Nodes(ctx.cfg)
    conn, channel, watch = await _open_publisher(ctx, tracker, nodes)
    try:
        outbox = _aio.AsyncOutbox(ctx)
        backoff = Backoff(ctx)
        while (mid := await outbox.next()) is not None:
            message = aio_pika.Message(mid.encode(), delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
                                       message_id=mid)
            ctx.event("publish.invoke", id=mid)
            try:
                await channel.default_exchange.publish(message, routing_key=ctx.cfg.queue,
                                                       mandatory=True, timeout=timeout)
            except aio_pika.exceptions.PublishError as exc:  # basic.return: routed nowhere
                frame = getattr(exc, "frame", None)  # the basic.return: reply code and text
                ctx.event("publish.fail", id=mid, error=(
                    f"returned by the broker: {getattr(frame, 'reply_code', '?')} "
                    f"{getattr(frame, 'reply_text', '?')} (mandatory: no queue to route to)"))
            except aiormq.exceptions.DeliveryError as exc:  # basic.nack
                ctx.event("publish.fail", id=mid, error=f"nacked by the broker: {describe(exc)}")
            except asyncio.CancelledError:
                if _aio.stopped_by_us(ctx):
                    ctx.event("publish.info", id=mid, error="stopped (SIGTERM) before the broker confirmed")
                    raise
                # aio-pika cancels a pending confirm when the connection dies under it
                ctx.event("publish.info", id=mid, error="confirm cancelled by aio-pika (the connection "
                          "closed under it): outcome unknown")
            except TimeoutError:
                ctx.event("publish.info", id=mid, error=f"publish timed out: no confirm within "
                          f"confirm_timeout_s={timeout:g} s (outcome unknown)")
            except Exception as exc:  # noqa: BLE001 - connection or channel gone (aiormq, aio-pika and OS errors alike): outcome unknown
                ctx.event("publish.info", id=mid, error=describe(exc))
                watch.report(exc)
            else:
                ctx.event("publish.ok", id=mid, confirmed=True)
                backoff.reset()
                continue
            # every failure: re-send this id first, after a back-off, on a restored channel
            outbox.retry_first(mid)
            if not await _aio.unless_stopping(ctx, asyncio.sleep(backoff.take())):
                return
            try:
                if not await _aio.unless_stopping(ctx, asyncio.wait_for(_restored(conn, channel), deadline)):
                    return
            except TimeoutError:
                # aio-pika's own restore is stuck (its RPCs have no deadline): a fresh connection
                tracker.lost(ConnectionError(f"the robust connection did not restore its channel within "
                                             f"restore_deadline_s={deadline:g} s: starting over"))
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(_aio_pika.close(conn, tracker), 3.0)
                tracker.closing = False
                opened = await _reopen(ctx, tracker, backoff, nodes)
                if opened is None:
                    return
                conn, channel, watch = opened
    finally:
        await _aio_pika.close(conn, tracker)


async def _open_publisher(ctx: ClientContext, tracker: LossTracker, nodes: Nodes
                          ) -> tuple[aio_pika.abc.AbstractConnection, aio_pika.abc.AbstractChannel, Any]:
    conn = await _aio_pika.connect(ctx, True, tracker, PARAMS, nodes)
    # on_return_raises: a mandatory message the broker returns (no queue bound) raises
    # PublishError; without it aio-pika hands the returned message back as the publish result
    channel = await conn.channel(publisher_confirms=True, on_return_raises=True)
    watch = await _aio_pika.watch_channel(ctx, channel)
    await channel.declare_queue(ctx.cfg.queue, durable=True, arguments=queue_arguments(ctx.cfg))
    return conn, channel, watch


async def _reopen(ctx: ClientContext, tracker: LossTracker, backoff: Backoff, nodes: Nodes
                  ) -> tuple[aio_pika.abc.AbstractConnection, aio_pika.abc.AbstractChannel, Any] | None:
    """A fresh robust connection + channel (on a cluster: at the next node), retried with
    back-off; None at SIGTERM."""
    while not ctx.stopping.is_set():
        try:
            return await asyncio.wait_for(_open_publisher(ctx, tracker, nodes),
                                          2 * float(_param(ctx, "connect_timeout_s")))
        except (aiormq.exceptions.AMQPError, ConnectionError, OSError, TimeoutError,
                aio_pika.exceptions.ChannelInvalidStateError):
            pass
        if not await _aio.unless_stopping(ctx, asyncio.sleep(backoff.take())):
            return None
    return None


async def _restored(conn: aio_pika.abc.AbstractConnection, channel: aio_pika.abc.AbstractChannel) -> None:
    """The robust connection is connected and has restored the channel (after ``connected`` the
    channel may still be reopening: publishing then raises, aio-pika#636)."""
    await conn.connected.wait()  # type: ignore[attr-defined]
    await channel.ready()  # type: ignore[attr-defined]


async def _consume(ctx: ClientContext) -> None:
    """The robust connection recovers by itself in the common case; this loop is the backstop.
    A connection dropped while aio-pika was still restoring the channel after the previous drop
    (two delivery-tag gaps 20 ms apart under packet-loss) left the robust channel dead for good:
    "RobustChannel._on_close error: ChannelInvalidStateError: No active transport", no reconnect,
    0 consumers for the rest of the run (stranded). So a gap, or a connection/channel not back
    within ``restore_deadline_s``, closes the whole robust connection and starts over."""
    tracker = LossTracker(ctx)
    backoff = Backoff(ctx)
    processed: set[str] = set()  # ids whose work is done (a real application: a unique key in its store)
    deadline = float(_param(ctx, "restore_deadline_s"))
    nodes = Nodes(ctx.cfg)
    idle = IdleCheck(idle_check_s(ctx.cfg))
    while not ctx.stopping.is_set():
        restart = Restart()
        conn: aio_pika.abc.AbstractConnection | None = None
        try:
            conn = await _aio_pika.connect(ctx, True, tracker, PARAMS, nodes)
            # pkt-loss can drop an RPC's reply (basic.qos, queue.declare): no wait here is unbounded
            why: str | None = IDLE
            while why is IDLE:  # an idle check: a new channel on the same connection
                channel = await asyncio.wait_for(_subscribe(ctx, conn, processed, restart, idle),
                                                 float(_param(ctx, "connect_timeout_s")))
                backoff.reset()
                why = await _supervise(ctx, conn, channel, restart, deadline, idle)
                if why is IDLE:
                    with contextlib.suppress(Exception):
                        await asyncio.wait_for(channel.close(), 2.0)  # returns what the broker held for it
            if why is None:
                return  # SIGTERM
            tracker.lost(ConnectionError(why))
        except (aiormq.exceptions.AMQPError, ConnectionError, OSError, TimeoutError,
                aio_pika.exceptions.ChannelInvalidStateError) as exc:
            tracker.lost(exc)
        except asyncio.CancelledError:
            if _aio.stopped_by_us(ctx):
                raise
            # aio-pika cancels a pending RPC when the connection dies under it: start over
            tracker.lost(ConnectionError("a setup call was cancelled by aio-pika (the connection closed under it)"))
        finally:
            if conn is not None:
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(_aio_pika.close(conn, tracker), 3.0)
                tracker.closing = False
        if not await _aio.unless_stopping(ctx, asyncio.sleep(backoff.take())):
            return


async def _ready(channel: aio_pika.abc.AbstractChannel) -> bool:
    """The robust channel has finished restoring itself (its restore RPCs have no deadline of
    their own: one whose reply was lost would leave it "connected" but never consuming)."""
    try:
        await asyncio.wait_for(channel.ready(), 0.5)  # type: ignore[attr-defined]
    except (TimeoutError, aiormq.exceptions.AMQPError, aio_pika.exceptions.ChannelInvalidStateError, RuntimeError):
        return False
    return True


class Restart(asyncio.Event):
    """Set when the consumer must start over on a fresh connection; ``why`` goes into conn.lost."""

    why = "restart"


async def _subscribe(ctx: ClientContext, conn: aio_pika.abc.AbstractConnection, processed: set[str],
                     restart: Restart, idle: IdleCheck) -> aio_pika.abc.AbstractChannel:
    """Channel, prefetch, queue, consumer with manual acks; a delivery-tag gap sets ``restart``."""
    channel = await conn.channel()
    await _aio_pika.watch_channel(ctx, channel)
    await channel.set_qos(prefetch_count=int(_param(ctx, "prefetch")))
    queue = await channel.declare_queue(ctx.cfg.queue, durable=True, arguments=queue_arguments(ctx.cfg))
    tags = _aio.DeliveryTags()

    async def on_message(message: aio_pika.abc.AbstractIncomingMessage) -> None:
        idle.touch()
        # pkt-loss: a skipped delivery tag -> start over on a new connection; the broker
        # redelivers what this channel held (and the work is not redone)
        try:
            gap = tags.check(message.channel, int(message.delivery_tag or 0))
        except aio_pika.exceptions.ChannelInvalidStateError:
            return  # its channel is gone already: the broker redelivers
        if gap is not None:
            if gap and not restart.is_set():
                restart.why = gap
                restart.set()
            return
        mid = record_delivery(ctx, message.body, bool(message.redelivered), work=False)
        if mid not in processed:  # a redelivery of work already done is only acked again
            await work_async(ctx)
            processed.add(mid)
        try:
            await message.ack()
        except (aiormq.exceptions.AMQPError, ConnectionError, RuntimeError):
            return  # the ack died with the channel: the broker redelivers, and we skip the work
        ctx.event("ack", id=mid)

    await queue.consume(on_message, no_ack=False)
    idle.touch()
    return channel


#: what :func:`_supervise` returns after an idle check (:class:`IdleCheck`): consume again on a
#: new channel of the same connection
IDLE = "idle: consume again on a new channel"


async def _ready_count(ctx: ClientContext, conn: aio_pika.abc.AbstractConnection) -> int | None:
    """The queue's ready count (a passive declare on a channel of its own); None when the queue
    is missing (its 404 closes only that channel)."""
    check = await conn.channel()
    try:
        queue = await check.declare_queue(ctx.cfg.queue, passive=True)
        return int(queue.declaration_result.message_count or 0)
    except aiormq.exceptions.ChannelNotFoundEntity:
        return None
    finally:
        with contextlib.suppress(Exception):
            await check.close()


async def _supervise(ctx: ClientContext, conn: aio_pika.abc.AbstractConnection,
                     channel: aio_pika.abc.AbstractChannel, restart: Restart, deadline: float,
                     idle: IdleCheck) -> str | None:
    """Wait for SIGTERM (None) or a reason to start over: a delivery-tag gap, the robust
    connection not connected with its channel open for ``deadline`` seconds in a row, or (quorum
    queues) no delivery for ``idle_check_s`` while the queue holds ready messages (:data:`IDLE`,
    recorded here as ``consume.cancelled``)."""
    down_since: float | None = None
    loop = asyncio.get_running_loop()
    while not ctx.stopping.is_set():
        if restart.is_set():
            return restart.why
        healthy = conn.connected.is_set() and not channel.is_closed and await _ready(channel)  # type: ignore[attr-defined]
        now = loop.time()
        if healthy:
            down_since = None
            if idle.due():
                why = idle.verdict(await asyncio.wait_for(_ready_count(ctx, conn),
                                                          float(_param(ctx, "connect_timeout_s"))))
                if why:
                    ctx.consume_cancelled(why)
                return IDLE  # either way: consume again on a new channel (IdleCheck says why)
        elif down_since is None:
            down_since = now
        elif now - down_since > deadline:
            return (f"the robust connection did not restore its channel within restore_deadline_s={deadline:g} s: "
                    "starting over")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(restart.wait(), _aio.POLL_S * 5)
    return None


def publisher(ctx: ClientContext) -> None:
    """Publish every id, confirmed and routed; re-send after any doubt."""
    _aio.run(ctx, lambda: _publish_all(ctx))


def consumer(ctx: ClientContext) -> None:
    """Consume with manual acks until SIGTERM; the robust channel re-consumes after any loss."""
    _aio.run(ctx, lambda: _consume(ctx))
