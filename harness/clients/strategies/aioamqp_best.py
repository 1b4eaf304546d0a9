"""aioamqp, best practice: the recipe in docs/recipes.md ("aioamqp"), as a strategy.

aioamqp has no recovery and hears no ``connection.blocked`` (it announces the capability as
unsupported), so the application does everything, each part against a column of the default
matrix that fails without it:

* **a short heartbeat** (5 s: aioamqp closes a silent connection 7.5-10 s later): partition,
  heartbeat-starvation;
* **a confirm deadline** (``confirm_timeout_s``, 5 s): the only notice aioamqp can give of a
  memory alarm, and the end of a confirm lost to packet-loss or held by a partition or latency:
  ``publish.info`` naming it, then a fresh connection and a re-send: memory-alarm (blocked),
  packet-loss, latency, partition;
* **mandatory + a return callback**: the broker sends basic.return before the basic.ack of an
  unroutable message (its queue was deleted); the callback marks the id, and an ack for a marked
  id is ``publish.fail`` and a re-send instead of a silent "confirmed": queue-delete;
* **reconnect with exponential backoff** (``retry_delay_s`` doubling to ``max_retry_delay_s``),
  re-open the channel, re-declare the queue, ``confirm_select`` again, re-send what had no
  confirm: broker-restart, broker-crash, connection-cut;
* consumer: **manual acks, prefetch**; after a ``basic.cancel`` (queue deleted) or a channel the
  broker closed (consumer-timeout's 406) it starts over on a fresh connection, which re-declares
  the queue and consumes again: queue-delete, consumer-timeout; **idempotent** handling of
  redeliveries (an id already processed is acked without doing its work again); a
  **delivery-tag gap** (a delivery packet-loss dropped whole, held unacked by the broker) drops
  the connection so the broker redelivers: packet-loss;
* **deadlines on setup** (``setup_timeout_s``: connect, channel, declare, consume): aioamqp waits
  forever for a reply a lossy link dropped: packet-loss;
* the URL is percent-decoded before connecting (``_aioamqp.url_params``): aioamqp's ``from_url``
  sends a vhost such as "a%2Bb" undecoded and the broker refuses it;
* quorum queues: **an idle check** (``idle_check_s``, 5 s; off on classic queues): no delivery
  for that long -> a passive declare; ready messages -> ``consume.cancelled`` naming them; then
  it starts over either way, as after a basic.cancel (RabbitMQ 3.10.8 leaves a consumer
  unserved, with no basic.cancel, when a quorum queue is re-declared right after its delete):
  queue-del;
* **cluster failover** (``amqp_urls``: one URL per node): aioamqp connects to one host, so every
  connection after the first goes to the next node, round robin: node-kill, node-cut (a
  single-host client waits for its node). On one node every connection goes to it, as before.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable
from typing import Any, TypeVar

import aioamqp.exceptions

from harness.clients.protocol import ClientContext
from harness.clients.strategies import _aio, _aioamqp
from harness.clients.strategies._aioamqp import CONN_ERRORS, Session
from harness.clients.strategies._common import (
    IdleCheck,
    LossTracker,
    Nodes,
    body_id,
    describe,
    idle_check_s,
    record_delivery,
    work_async,
)

T = TypeVar("T")

NAME = "aioamqp-best"
LIBRARY = "aioamqp"
DESCRIPTION = ("aioamqp best practice: heartbeat 5 s, confirms with a deadline, mandatory + return callback, "
               "reconnect with backoff, re-consume after cancel, idempotent consumer")
PARAMS: dict[str, Any] = {
    "heartbeat": 5,              # aioamqp closes a silent connection 1.5-2 heartbeats later: 7.5-10 s
    "prefetch": 100,             # bounded in-flight deliveries per consumer
    "confirm_timeout_s": 5.0,    # no confirm within this -> publish.info, reconnect, re-send
    "setup_timeout_s": 5.0,      # connect + channel + declare + consume: a lost handshake frame is retried
    "retry_delay_s": 0.5,        # first reconnect back-off, doubled per consecutive failure ...
    "max_retry_delay_s": 5.0,    # ... up to this
}


def _param(ctx: ClientContext, name: str) -> Any:
    return ctx.cfg.param(name, PARAMS[name])


class Backoff:
    """Exponential back-off between reconnects: ``retry_delay_s`` doubling to ``max_retry_delay_s``,
    reset once work flows again. A fixed short delay hammers a broker that is still booting."""

    def __init__(self, ctx: ClientContext) -> None:
        self.ctx = ctx
        self.first = float(_param(ctx, "retry_delay_s"))
        self.cap = float(_param(ctx, "max_retry_delay_s"))
        self.next = self.first

    def reset(self) -> None:
        self.next = self.first

    async def wait(self) -> bool:
        """Sleep the next back-off; False when SIGTERM came meanwhile."""
        delay, self.next = self.next, min(self.cap, self.next * 2)
        return await _aio.unless_stopping(self.ctx, asyncio.sleep(delay))


async def _publish_all(ctx: ClientContext) -> None:
    timeout = float(_param(ctx, "confirm_timeout_s"))
    setup = float(_param(ctx, "setup_timeout_s"))
    tracker = LossTracker(ctx)
    outbox = _aio.AsyncOutbox(ctx)
    backoff = Backoff(ctx)
    nodes = Nodes(ctx.cfg)
    returned: dict[str, str] = {}  # id -> the broker's reason, filled by basic.return

    async def on_return(_channel: Any, body: bytes, envelope: Any, _props: Any) -> None:
        # RabbitMQ sends basic.return before the basic.ack of the same message, and aioamqp awaits
        # this callback before it reads the ack: the mark is there when the publish returns
        returned[body_id(body)] = f"{envelope.reply_code} {envelope.reply_text}"

    session: Session | None = None
    try:
        while True:
            if session is None:  # (re)connect: channel, queue, confirm_select, return callback
                opening = Session(ctx, tracker, PARAMS, nodes.next_url())
                try:
                    session = await _within(opening.open(confirm=True, on_return=on_return), setup, "connect")
                except CONN_ERRORS as exc:
                    opening.notice(exc)
                    await opening.close()
                    if not await backoff.wait():
                        return
                    continue
            if (mid := await outbox.next()) is None:
                return
            ctx.event("publish.invoke", id=mid)
            returned.pop(mid, None)
            try:
                await asyncio.wait_for(session.channel.publish(
                    mid.encode(), "", ctx.cfg.queue, properties={"delivery_mode": 2, "message_id": mid},
                    mandatory=True), timeout)
            except aioamqp.exceptions.PublishFailed as exc:  # basic.nack
                ctx.event("publish.fail", id=mid, error=f"nacked by the broker: {describe(exc)}")
                outbox.retry_first(mid)
                if not await backoff.wait():
                    return
                continue
            except asyncio.CancelledError:
                if _aio.stopped_by_us(ctx):
                    ctx.event("publish.info", id=mid, error="stopped (SIGTERM) before the broker confirmed")
                    raise
                ctx.event("publish.info", id=mid, error="publish cancelled by the library: outcome unknown")
                tracker.lost(ConnectionError("publish cancelled by the library"))
            except TimeoutError:
                # aioamqp's only word on a blocked or silent connection: give up on this one
                ctx.event("publish.info", id=mid, error=f"publish timed out: no confirm within "
                          f"confirm_timeout_s={timeout:g} s (outcome unknown)")
                tracker.lost(TimeoutError(f"no confirm within confirm_timeout_s={timeout:g} s: reconnecting"))
            except CONN_ERRORS as exc:  # connection or channel gone: outcome unknown
                ctx.event("publish.info", id=mid, error=describe(exc))
                session.notice(exc)
            else:
                if mid in returned:  # acked, but routed nowhere: not a success
                    ctx.event("publish.fail", id=mid, error=f"returned by the broker: {returned.pop(mid)} "
                              "(mandatory: no queue to route to)")
                    outbox.retry_first(mid)
                    if not await backoff.wait():
                        return
                    continue
                ctx.event("publish.ok", id=mid, confirmed=True)
                backoff.reset()
                continue
            # the connection is dead or in doubt: a fresh one, then re-send this id first
            outbox.retry_first(mid)
            await session.close()
            session = None
            if not await backoff.wait():
                return
    finally:
        if session is not None:
            await session.close()


async def _consume(ctx: ClientContext) -> None:
    prefetch = int(_param(ctx, "prefetch"))
    setup = float(_param(ctx, "setup_timeout_s"))
    tracker = LossTracker(ctx)
    backoff = Backoff(ctx)
    nodes = Nodes(ctx.cfg)
    idle = IdleCheck(idle_check_s(ctx.cfg))
    processed: set[str] = set()  # ids whose work is done (a real application: a unique key in its store)

    tags = _aio.DeliveryTags()
    session: Session | None = None

    async def on_message(channel: Any, body: bytes, envelope: Any, _props: Any) -> None:
        # pkt-loss: a skipped delivery tag -> drop the connection; the broker redelivers what it
        # held (the work is not redone), and the loop below reconnects
        gap = tags.check(channel, int(envelope.delivery_tag))
        if gap is not None:
            if gap and session is not None:
                tracker.lost(ConnectionError(gap))
                session.transport.close()
            return
        idle.touch()
        mid = record_delivery(ctx, body, bool(envelope.is_redeliver), work=False)
        if mid not in processed:  # a redelivery of work already done is only acked again
            await work_async(ctx)
            processed.add(mid)
        try:
            await channel.basic_client_ack(envelope.delivery_tag)
        except CONN_ERRORS:
            return  # the ack died with the connection: the broker redelivers, and we skip the work
        backoff.reset()
        ctx.event("ack", id=mid)

    while not ctx.stopping.is_set():
        session = Session(ctx, tracker, PARAMS, nodes.next_url())
        checker: asyncio.Task[None] | None = None
        try:
            await _within(_subscribe(ctx, session, on_message, prefetch), setup, "connect + consume")
            idle.touch()
            if idle.seconds is not None:  # quorum queues: is the broker still serving us?
                checker = asyncio.ensure_future(_idle_watch(ctx, session, idle, setup))
            # until SIGTERM (True), or a cancel / channel close / idle verdict (False): start over
            if await _aioamqp.watch(ctx, session, reconnect=True):
                return
        except (*CONN_ERRORS, ConnectionError) as exc:
            session.notice(exc)
        finally:
            if checker is not None:
                checker.cancel()
            await session.close()
        if not await backoff.wait():
            return


async def _idle_watch(ctx: ClientContext, session: Session, idle: IdleCheck, setup: float) -> None:
    """The idle check (:class:`IdleCheck`), beside the consumer: no delivery for ``idle_check_s``
    -> the queue's ready count (a passive declare on a channel of its own, under the setup
    deadline); messages ready -> ``consume.cancelled`` and the consumer starts over (through
    ``session.cancelled``, as a basic.cancel would). A check that outlives its deadline drops the
    connection, which the consumer loop then replaces."""
    while not ctx.stopping.is_set():
        if not await _aio.unless_stopping(ctx, asyncio.sleep(_aio.POLL_S * 5)):
            return
        if not idle.due():
            continue
        try:
            ready = await _within(_ready_count(ctx, session), setup, "idle check (passive queue.declare)")
        except CONN_ERRORS as exc:
            session.tracker.lost(exc)
            session.transport.close()
            return
        why = idle.verdict(ready)
        if why:
            ctx.consume_cancelled(why)
        session.cancelled.set()  # either way: start over, as after a basic.cancel (IdleCheck says why)
        return


async def _ready_count(ctx: ClientContext, session: Session) -> int | None:
    """The queue's ready count; None when the queue is missing (its 404 closes only that channel)."""
    check = await session.protocol.channel()
    try:
        ok = await check.queue_declare(ctx.cfg.queue, passive=True)
        return int(ok["message_count"])
    except aioamqp.exceptions.ChannelClosed:
        return None
    finally:
        if check.is_open:
            with contextlib.suppress(*CONN_ERRORS):
                await check.close()


async def _within(aw: Awaitable[T], seconds: float, what: str) -> T:
    """``aw`` with a deadline: aioamqp's connect and RPCs wait forever for a reply that a lossy or
    silent link dropped; the TimeoutError names the deadline for ``conn.lost``."""
    try:
        return await asyncio.wait_for(aw, seconds)
    except TimeoutError:
        raise TimeoutError(f"{what} took longer than setup_timeout_s={seconds:g} s") from None


async def _subscribe(ctx: ClientContext, session: Session, on_message: Any, prefetch: int) -> None:
    """Connect, declare the queue (after a queue delete, this brings it back), set the prefetch,
    consume with manual acks."""
    await session.open()
    await session.channel.basic_qos(prefetch_count=prefetch)
    await session.channel.basic_consume(on_message, queue_name=ctx.cfg.queue, no_ack=False)


def publisher(ctx: ClientContext) -> None:
    """Publish every id, confirmed and routed; reconnect and re-send after any doubt."""
    _aio.run(ctx, lambda: _publish_all(ctx))


def consumer(ctx: ClientContext) -> None:
    """Consume with manual acks until SIGTERM; reconnect, re-declare, re-consume after any loss."""
    _aio.run(ctx, lambda: _consume(ctx))
