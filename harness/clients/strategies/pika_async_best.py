"""pika SelectConnection (asynchronous), best practice: pika-async's loop with every wait bounded.

Built on :mod:`pika_async` (one IOLoop kept across connections, asynchronous confirms mapped from
delivery tags to ids, re-publish of the unconfirmed after a reconnect); what this strategy adds,
and the matrix column that fails without it (docs/recipes.md has more):

* heartbeat 5 s (pika: detection within 10-20 s): ``partition``, ``heartbeat-starvation``.
* ``blocked_connection_timeout`` 5 s, and no new publishes while the connection is blocked:
  ``memory-alarm`` (the callback tells the app at once; the timeout bounds the wait).
* a confirm deadline: the oldest unconfirmed message older than ``confirm_timeout_s`` aborts the
  connection; every unconfirmed message is ``publish.info`` naming the deadline and re-sent after
  the reconnect (``packet-loss``: a lost basic.ack; ``latency``: confirms beyond max_block_s).
* a setup deadline: channel open, declare, qos, confirm.select and basic.consume must all be
  answered within ``setup_timeout_s`` (``packet-loss``: a lost reply waits forever).
* ``mandatory=True`` + ``add_on_return_callback``: a returned message (the queue was deleted) is
  ``publish.fail`` when its ack comes, the queue is re-declared and the message re-sent
  (``queue-delete``: lost, "confirmed but unroutable").
* a cancelled consumer or a channel the broker closed: a new channel on the same connection,
  re-declare, re-consume (``queue-delete``, ``consumer-timeout``).
* exponential back-off between reconnects; idempotent redelivery (an id already processed is acked
  without processing it again); a delivery-tag gap (a delivery lost in transit) aborts the
  connection so the broker redelivers it (``packet-loss``: stranded).
* quorum queues: an idle check (``idle_check_s``, 5 s; off on classic queues): no delivery for
  that long -> a passive declare; ready messages -> ``consume.cancelled`` naming them; then a
  re-consume on a new channel either way (RabbitMQ 3.10.8 leaves a consumer unserved, with no
  basic.cancel, when a quorum queue is re-declared right after its delete: ``queue-del``).
* cluster failover (``amqp_urls``: one URL per node): SelectConnection takes one parameters
  object, so every connection attempt after the first goes to the next node, round robin
  (``node-kill``, ``node-cut``: a single-host client waits for its node; this one moves on). On
  one node every attempt goes to that node, as before.
"""

from __future__ import annotations

import time
from typing import Any

import pika
import pika.exceptions
from pika.channel import Channel
from pika.spec import Basic

from harness.clients.protocol import ClientContext
from harness.clients.strategies import _pika, pika_async
from harness.clients.strategies._common import IdleCheck, Nodes, body_id, describe, idle_check_s, queue_arguments
from harness.clients.strategies._pika import Backoff, DeadlineExpired, abort

NAME = "pika-async-best"
LIBRARY = "pika"
DESCRIPTION = ("pika SelectConnection, best practice: heartbeat 5, blocked_connection_timeout + pause while "
               "blocked, confirm and setup deadlines, mandatory + returns, new channel on cancel/close, idempotent "
               "consumer, exponential back-off")
#: max_in_flight 100 (pika-async: 1000): every message unconfirmed when a deadline aborts the
#: connection is re-sent, and most of them had reached the broker: 12 s of confirm latency cost
#: ~600 duplicates at 1000, ~100 at 100, with no loss of throughput at 100 msg/s
PARAMS: dict[str, Any] = {**pika_async.PARAMS, "heartbeat": 5, "blocked_connection_timeout": 5,
                          "confirm_timeout_s": 6.0, "setup_timeout_s": 6.0, "retry_delay_s": 0.5,
                          "max_delay_s": 4.0, "max_in_flight": 100}


def _p(ctx: ClientContext, name: str) -> Any:
    return ctx.cfg.param(name, PARAMS[name])


class _Best(pika_async._Client):
    """What both roles add to pika-async's client: parameters, back-off, the setup deadline, and
    a new channel (not a new connection) after a channel close."""

    def __init__(self, ctx: ClientContext) -> None:
        super().__init__(ctx)
        self.backoff = Backoff(float(_p(ctx, "retry_delay_s")), float(_p(ctx, "max_delay_s")))
        self.setup_timer: Any = None
        self.nodes = Nodes(ctx.cfg)

    # -- connection ------------------------------------------------------------------------
    def connect(self) -> None:
        if self.closing:
            return
        self.was_open = False
        params = _pika.parameters(self.ctx, PARAMS, self.nodes.next_url())
        params.stack_timeout = float(_p(self.ctx, "setup_timeout_s")) * 2  # TCP + AMQP handshake, bounded
        self.conn = pika.SelectConnection(params, on_open_callback=self._on_open,
                                          on_open_error_callback=self._on_open_error,
                                          on_close_callback=self._on_close, custom_ioloop=self.ioloop)

    def _on_open(self, conn: pika.SelectConnection) -> None:
        self.backoff.reset()
        self.arm_setup()
        super()._on_open(conn)

    def retry_delay(self) -> float:
        """The back-off's next delay (reset at each connection.open-ok)."""
        return self.backoff.next()

    def _on_close(self, conn: Any, reason: BaseException) -> None:
        self.disarm_setup()
        if isinstance(reason, pika.exceptions.ConnectionBlockedTimeout):  # name the deadline in what we write
            reason = pika.exceptions.ConnectionBlockedTimeout(
                f"blocked longer than blocked_connection_timeout={_p(self.ctx, 'blocked_connection_timeout')} s")
        super()._on_close(conn, reason)

    # -- setup deadline ----------------------------------------------------------------------
    def arm_setup(self) -> None:
        """From connection.open-ok (or a channel re-open) until the role is ready."""
        self.disarm_setup()
        limit = float(_p(self.ctx, "setup_timeout_s"))
        conn = self.conn

        def expire() -> None:
            self.setup_timer = None
            if conn is not None and conn is self.conn:
                abort(conn, DeadlineExpired(f"channel setup timed out: nothing within {limit:g} s"))

        self.setup_timer = self.ioloop.call_later(limit, expire)

    def disarm_setup(self) -> None:
        if self.setup_timer is not None:
            self.ioloop.remove_timeout(self.setup_timer)
            self.setup_timer = None

    # -- channel closed under us: a new channel, same connection -------------------------------
    def _on_channel_closed(self, channel: Channel, reason: BaseException) -> None:
        if channel is not self.channel:
            return  # an old channel we replaced already
        self.channel = None
        if isinstance(reason, pika.exceptions.ChannelClosedByBroker):
            self.ctx.channel_closed(reason.reply_text, reason.reply_code)
        self.channel_lost(reason)
        conn = self.conn
        if conn is not None and conn.is_open and not self.closing:
            self.arm_setup()
            conn.channel(on_open_callback=self._on_channel)


class Publisher(_Best, pika_async.Publisher):
    def __init__(self, ctx: ClientContext) -> None:
        super().__init__(ctx)
        self.max_in_flight = int(_p(ctx, "max_in_flight"))
        self.confirm_s = float(_p(ctx, "confirm_timeout_s"))
        self.sent_at: dict[int, float] = {}  # delivery tag -> when it was published
        self.returned: set[str] = set()  # ids the broker returned (basic.return precedes their ack)
        self.blocked = False

    def _on_open(self, conn: pika.SelectConnection) -> None:
        self.blocked = False
        conn.add_on_connection_blocked_callback(lambda _c, _f: setattr(self, "blocked", True))
        conn.add_on_connection_unblocked_callback(lambda _c, _f: self.unblocked())
        super()._on_open(conn)

    def unblocked(self) -> None:
        self.blocked = False
        self.schedule_pump(0)

    def ready(self, channel: Channel) -> None:
        self.sent_at.clear()
        self.returned.clear()
        channel.add_on_return_callback(lambda _ch, _method, _props, body: self.returned.add(body_id(body)))
        super().ready(channel)

    def _pump(self) -> None:
        self.disarm_setup()  # confirm.select answered: the channel is ready
        if self.blocked:  # the broker would not read it: wait for connection.unblocked (or the timeout)
            self.pump_timer = None
            return
        super()._pump()

    def publish(self, channel: Channel, mid: str) -> None:
        self.ctx.event("publish.invoke", id=mid)
        try:
            channel.basic_publish(exchange="", routing_key=self.ctx.cfg.queue, body=mid.encode(),
                                  properties=_pika.PERSISTENT, mandatory=True)
        except (pika.exceptions.AMQPError, OSError) as exc:
            self.ctx.event("publish.info", id=mid, error=describe(exc))
            self.outbox.retry_first(mid)
            return
        self.in_flight[self.next_tag] = mid
        self.sent_at[self.next_tag] = time.monotonic()
        self.next_tag += 1

    def _on_confirm(self, frame: Any) -> None:
        """Ack -> ``publish.ok``, unless the broker returned it first (-> ``publish.fail``,
        re-declare, re-send); nack -> ``publish.fail``, re-send."""
        method = frame.method
        tags = sorted(t for t in self.in_flight if t <= method.delivery_tag) if method.multiple \
            else [method.delivery_tag]
        again: list[str] = []
        for t in tags:
            mid = self.in_flight.pop(t, None)
            self.sent_at.pop(t, None)
            if mid is None:
                continue
            if not isinstance(method, Basic.Ack):
                self.ctx.event("publish.fail", id=mid, error="nacked by the broker")
                again.append(mid)
            elif mid in self.returned:
                self.returned.discard(mid)
                self.ctx.event("publish.fail", id=mid, error="returned by the broker (312 NO_ROUTE: the queue does "
                               "not exist): re-declaring the queue and re-sending")
                again.append(mid)
            else:
                self.ctx.event("publish.ok", id=mid, confirmed=True)
        if again:
            self.outbox.retry_first(*again)
            channel = self.channel
            if channel is not None and channel.is_open and not self.closing:
                channel.queue_declare(queue=self.ctx.cfg.queue, durable=True, arguments=queue_arguments(self.ctx.cfg))
        if not self.closing:
            self.schedule_pump(0)
        self.maybe_done()

    def _poll(self) -> None:
        """Also the confirm deadline: the oldest unconfirmed message waited too long -> abort."""
        conn = self.conn
        if self.in_flight and conn is not None and conn.is_open and not self.closing:
            oldest = self.sent_at.get(min(self.in_flight), time.monotonic())
            if time.monotonic() - oldest > self.confirm_s:
                abort(conn, DeadlineExpired(f"confirm (confirm_timeout_s={self.confirm_s:g}) timed out: "
                                            f"nothing within {self.confirm_s:g} s (outcome unknown)"))
        super()._poll()


class Consumer(_Best, pika_async.Consumer):
    def __init__(self, ctx: ClientContext) -> None:
        super().__init__(ctx)
        #: ids whose work is done: a redelivery of one is acked without doing it again. (A real
        #: application keeps this where its results are, e.g. a unique key in its database.)
        self.processed: set[str] = set()
        self.next_tag = 1  # the delivery tag expected next on the current channel
        self.idle = IdleCheck(idle_check_s(ctx.cfg))
        self.checking: object | None = None  # the idle check in progress (a token), if any

    def ready(self, channel: Channel) -> None:
        """Queue declared: prefetch, then consume with manual acks; ready at consume-ok."""
        self.next_tag = 1
        self.idle.touch()

        def consume(_frame: Any) -> None:
            channel.add_on_cancel_callback(self._on_cancel)
            channel.basic_consume(queue=self.ctx.cfg.queue, on_message_callback=self._on_message, auto_ack=False,
                                  callback=lambda _f: self.disarm_setup())

        channel.basic_qos(prefetch_count=int(_p(self.ctx, "prefetch")), callback=consume)

    def _on_message(self, channel: Channel, method: Any, _props: Any, body: bytes) -> None:
        self.idle.touch()
        if method.delivery_tag != self.next_tag:
            if self.conn is not None:
                abort(self.conn, pika.exceptions.AMQPConnectionError(
                    f"delivery tag {method.delivery_tag} after {self.next_tag - 1}: a delivery was lost in transit; "
                    "reconnecting so the broker redelivers it"))
            return
        self.next_tag += 1
        mid = body_id(body)
        self.ctx.event("deliver", id=mid, redelivered=bool(method.redelivered))
        ack = self._acker(channel, method.delivery_tag, mid)
        if mid in self.processed or self.ctx.cfg.work_s <= 0:
            self.processed.add(mid)
            ack()
            return

        def done() -> None:  # the work, simulated on the loop's timer: heartbeats keep flowing
            self.processed.add(mid)
            ack()

        self.ioloop.call_later(self.ctx.cfg.work_s, done)

    def _poll(self) -> None:
        """Also the idle check (quorum queues): no delivery for ``idle_check_s`` -> ask the broker
        for the ready count on a channel of its own, under the setup deadline."""
        channel, conn = self.channel, self.conn
        if (self.checking is None and self.idle.due() and channel is not None and channel.is_open
                and conn is not None and conn.is_open and not self.closing):
            self.check_idle(conn, channel)
        super()._poll()

    def check_idle(self, conn: pika.SelectConnection, consuming: Channel) -> None:
        token = self.checking = object()
        limit = float(_p(self.ctx, "setup_timeout_s"))

        def expire() -> None:
            if self.checking is token and conn is self.conn:
                abort(conn, DeadlineExpired(f"idle check (passive queue.declare) timed out: nothing within "
                                            f"{limit:g} s"))

        timer = self.ioloop.call_later(limit, expire)

        def done(ready: int | None) -> None:
            if self.checking is not token:
                return
            self.ioloop.remove_timeout(timer)
            self.checking = None
            why = self.idle.verdict(ready)
            if self.channel is consuming:  # either way: consume again on a new channel (IdleCheck says why)
                if why:
                    self.ctx.consume_cancelled(why)
                self.reconsume()

        def opened(check: Channel) -> None:
            check.add_on_close_callback(lambda _c, _r: done(None))  # 404: the queue is gone; or a loss

            def declared(frame: Any) -> None:
                done(int(frame.method.message_count))
                check.close()

            check.queue_declare(queue=self.ctx.cfg.queue, passive=True, callback=declared)

        conn.channel(on_open_callback=opened)

    def _on_cancel(self, frame: Any) -> None:
        """basic.cancel (the queue was deleted): record it, re-declare and re-consume."""
        self.ctx.consume_cancelled(_pika.cancel_reason(frame))
        self.reconsume()

    def reconsume(self) -> None:
        """Re-declare and re-consume on a new channel; the old one is closed once the deliveries
        in hand are acked."""
        old, conn = self.channel, self.conn
        if old is None or conn is None or not conn.is_open or self.closing:
            return
        self.channel = None  # its close, later, is no news
        self.arm_setup()
        conn.channel(on_open_callback=self._on_channel)

        def close_old() -> None:  # after the work in hand is acked, so no delivery stays held
            if old.is_open:
                old.close()

        self.ioloop.call_later(self.ctx.cfg.work_s + 0.5, close_old)


def publisher(ctx: ClientContext) -> None:
    """Publish every id with asynchronous confirms until each is confirmed (or SIGTERM)."""
    Publisher(ctx).run()


def consumer(ctx: ClientContext) -> None:
    """Consume with manual acks until SIGTERM, never giving up."""
    Consumer(ctx).run()
