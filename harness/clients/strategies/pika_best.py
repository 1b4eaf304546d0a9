"""pika BlockingConnection, best practice: every wait has a deadline, every notice is recorded.

What each defence is for (the matrix column that fails without it; docs/recipes.md has more):

* heartbeat 5 s (pika: detection within 10-20 s): a silent partition or a starved heartbeat is
  noticed within seconds, not after 65-130 s (``partition``, ``heartbeat-starvation``).
* ``blocked_connection_timeout`` 5 s: a publish blocked by a resource alarm raises
  ConnectionBlockedTimeout instead of waiting out the alarm silently; BlockingConnection runs the
  connection.blocked callback only after the publish returns (``memory-alarm``: blocked).
* publisher confirms with a deadline (``confirm_timeout_s``): a confirm that does not come (lost
  by a lossy link, delayed beyond the deadline) is an unknown outcome: ``publish.info`` naming the
  timeout, reconnect, re-send (``packet-loss``, ``latency``: blocked).
* ``mandatory=True``: a message the broker cannot route (the queue was deleted) comes back as
  UnroutableError instead of a confirm for nothing; it is ``publish.fail``, the queue is
  re-declared and the message re-sent (``queue-delete``: lost, "confirmed but unroutable").
* every setup call (channel, qos, declare, consume, confirm.select) under a deadline: a reply
  lost on the way never leaves the process waiting forever (``packet-loss``).
* consumer: manual acks, prefetch, ``start_consuming`` (heartbeats and timers run while it
  waits); a cancelled consumer (basic.cancel: queue deleted) or a channel the broker closed
  (406: consumer timeout) gets a new channel, a re-declare and a re-consume; any connection error
  a reconnect with exponential back-off (``queue-delete``, ``consumer-timeout``,
  ``broker-restart``, ``broker-crash``, ``connection-cut``: stranded / gave up).
* idempotent redelivery: an id already processed is acked again without being processed again
  (a redelivery after a lost ack is normal at-least-once; processing it twice is the bug).
* delivery-tag gap: tags on a channel count up by one; a gap means a delivery was lost in transit
  (the broker holds it unacked for this channel until it closes), so the connection is dropped and
  the broker redelivers (``packet-loss``: stranded).
* quorum queues: an idle check (``idle_check_s``, 5 s; off on classic queues): no delivery for
  that long -> a passive declare; ready messages -> ``consume.cancelled`` naming them; then a
  re-consume on a new channel either way (RabbitMQ 3.10.8 leaves a consumer unserved, with no
  basic.cancel, when a quorum queue is re-declared right after its delete: ``queue-del``).
* cluster failover (``amqp_urls``: one URL per node): pika's own way, a list of connection
  parameters that BlockingConnection tries in order, rotated so each reconnect starts at the
  node after the last one tried (``node-kill``, ``node-cut``: a single-host client waits for its
  node; this one moves on). On one node the list is that node alone: nothing changes.
"""

from __future__ import annotations

from typing import Any

import pika
import pika.exceptions
from pika.adapters.blocking_connection import BlockingChannel
from pika.adapters.utils import connection_workflow

from harness.clients.protocol import ClientContext
from harness.clients.strategies import _pika
from harness.clients.strategies._common import IdleCheck, Nodes, Outbox, body_id, describe, idle_check_s
from harness.clients.strategies._pika import Backoff, deadline

NAME = "pika-best"
LIBRARY = "pika"
DESCRIPTION = ("pika blocking, best practice: heartbeat 5, blocked_connection_timeout, confirms with a deadline, "
               "mandatory + returns, re-declare/re-consume on cancel or channel close, idempotent consumer, "
               "exponential back-off")
PARAMS: dict[str, Any] = {"heartbeat": 5, "blocked_connection_timeout": 5, "confirm_timeout_s": 6.0,
                          "setup_timeout_s": 6.0, "prefetch": 100, "retry_delay_s": 0.5, "max_delay_s": 4.0}

#: how often the consumer looks at ctx.stopping while it consumes (SIGTERM latency)
POLL_S = 0.2
#: errors after which the connection is given up and a new one opened. A handshake that times
#: out (``stack_timeout``: a partition, a starved heartbeat) escapes BlockingConnection as
#: connection_workflow's AMQPConnectorStackTimeout, which is no AMQPError: without it here the
#: client gives up in the middle of a partition
CONNECTION_ERRORS = (pika.exceptions.AMQPError, OSError, connection_workflow.AMQPConnectorException,
                     connection_workflow.AMQPConnectionWorkflowFailed)


class DeliveryGap(pika.exceptions.AMQPConnectionError):
    """A delivery tag was skipped: a delivery was lost between the broker and us."""


def _p(ctx: ClientContext, name: str) -> Any:
    return ctx.cfg.param(name, PARAMS[name])


def _backoff(ctx: ClientContext) -> Backoff:
    return Backoff(float(_p(ctx, "retry_delay_s")), float(_p(ctx, "max_delay_s")))


def _connect(ctx: ClientContext, nodes: Nodes) -> pika.BlockingConnection:
    """A connection with heartbeat 5 s and blocked_connection_timeout 5 s, blocked/unblocked
    recorded (``conn.blocked``: the broker's reason). On a cluster: one parameters object per
    node, starting at the next node (:meth:`Nodes.next_urls`); BlockingConnection tries them in
    order, each within its own ``stack_timeout``, and the rotation continues from the one that
    answered."""
    params = []
    for url in nodes.next_urls():
        p = _pika.parameters(ctx, PARAMS, url)
        p.stack_timeout = float(_p(ctx, "setup_timeout_s")) * 2  # TCP + AMQP handshake, bounded
        params.append(p)
    conn = pika.BlockingConnection(params if nodes.cluster else params[0])
    nodes.use_port(_port(conn))
    _pika.watch_blocked(ctx, conn)
    return conn


def _port(conn: pika.BlockingConnection) -> int | None:
    """The port the connection reached (which node's proxy, on a cluster)."""
    port = getattr(getattr(getattr(conn, "_impl", None), "params", None), "port", None)
    return port if isinstance(port, int) else None


def _reconnect(ctx: ClientContext, backoff: Backoff, setup: Any, nodes: Nodes) -> Any:
    """Open a connection and run ``setup(conn)`` on it, retrying with back-off until it works
    (returns setup's result) or SIGTERM (None). A failed attempt lost nothing: no event."""
    while not ctx.stopping.is_set():
        conn = None
        try:
            conn = _connect(ctx, nodes)
            with deadline(conn, float(_p(ctx, "setup_timeout_s")), "connection setup"):
                result = setup(conn)
        except CONNECTION_ERRORS:
            _pika.close_within(conn)
            if ctx.stopping.wait(backoff.next()):
                return None
            continue
        backoff.reset()
        ctx.event("conn.open", **({"port": port} if (port := _port(conn)) is not None else {}))
        return result
    return None


# ---- publisher ------------------------------------------------------------------------------


def _publishing_channel(ctx: ClientContext, conn: pika.BlockingConnection) -> BlockingChannel:
    channel = conn.channel()
    _pika.declare(channel, ctx.cfg)
    channel.confirm_delivery()
    return channel


def publisher(ctx: ClientContext) -> None:
    """Publish every id until each is confirmed (or SIGTERM). Per message: invoke, publish
    persistent + mandatory under the confirm deadline; ack -> ``publish.ok``; returned ->
    ``publish.fail``, re-declare, re-send; nack -> ``publish.fail``, re-send; anything else ->
    ``publish.info`` (outcome unknown), reconnect with back-off, re-send."""
    outbox = Outbox(ctx)
    backoff = _backoff(ctx)
    nodes = Nodes(ctx.cfg)
    confirm_s = float(_p(ctx, "confirm_timeout_s"))
    conn: pika.BlockingConnection | None = None
    channel: BlockingChannel | None = None
    try:
        while True:
            if conn is None or channel is None:
                opened = _reconnect(ctx, backoff, lambda c: (c, _publishing_channel(ctx, c)), nodes)
                if opened is None:
                    return  # SIGTERM while reconnecting
                conn, channel = opened
            mid = outbox.next()
            if mid is None:
                return
            ctx.event("publish.invoke", id=mid)
            try:
                with deadline(conn, confirm_s, f"confirm (confirm_timeout_s={confirm_s:g})"):
                    channel.basic_publish(exchange="", routing_key=ctx.cfg.queue, body=mid.encode(),
                                          properties=_pika.PERSISTENT, mandatory=True)
                ctx.event("publish.ok", id=mid, confirmed=True)
            except pika.exceptions.UnroutableError:
                # basic.return before the ack: routed nowhere (the queue is gone). Not lost: say
                # so, re-create the queue (durable, as declared everywhere) and send it again.
                ctx.event("publish.fail", id=mid, error="returned by the broker (312 NO_ROUTE: the queue does "
                          "not exist): re-declaring the queue and re-sending")
                outbox.retry_first(mid)
                try:
                    with deadline(conn, float(_p(ctx, "setup_timeout_s")), "queue.declare"):
                        _pika.declare(channel, ctx.cfg)
                except CONNECTION_ERRORS as exc:
                    _pika.notice(ctx, exc, PARAMS)
                    _pika.close_within(conn)
                    conn = channel = None
            except pika.exceptions.NackError as exc:
                ctx.event("publish.fail", id=mid, error=describe(exc))
                outbox.retry_first(mid)
            except CONNECTION_ERRORS as exc:
                ctx.event("publish.info", id=mid, error=_pika.error_text(ctx, exc, PARAMS))
                _pika.notice(ctx, exc, PARAMS)
                outbox.retry_first(mid)
                _pika.close_within(conn)
                conn = channel = None
                if ctx.stopping.wait(backoff.next()):
                    return
            else:
                try:  # connection.blocked/unblocked callbacks run only from process_data_events
                    conn.process_data_events(time_limit=0)
                except CONNECTION_ERRORS as exc:  # lost between two publishes: no message in flight
                    _pika.notice(ctx, exc, PARAMS)
                    _pika.close_within(conn)
                    conn = channel = None
    finally:
        _pika.close_within(conn)


# ---- consumer -------------------------------------------------------------------------------


class _Consumer:
    """Manual acks, idempotent by id, one channel at a time, re-consumed after a cancel or a
    channel close, reconnected after a connection error."""

    def __init__(self, ctx: ClientContext) -> None:
        self.ctx = ctx
        #: ids whose work is done: a redelivery of one is acked without doing it again. (A real
        #: application keeps this where its results are, e.g. a unique key in its database.)
        self.processed: set[str] = set()
        self.next_tag = 1  # the delivery tag expected next on the current channel
        self.idle = IdleCheck(idle_check_s(ctx.cfg))

    def run(self) -> None:
        backoff = _backoff(self.ctx)
        nodes = Nodes(self.ctx.cfg)
        while not self.ctx.stopping.is_set():
            conn = _reconnect(self.ctx, backoff, lambda c: c, nodes)
            if conn is None:
                return
            try:
                while not self.ctx.stopping.is_set():
                    self.consume_once(conn)  # returns after a cancel or a channel close: go again
            except CONNECTION_ERRORS as exc:
                if not self.ctx.stopping.is_set():
                    _pika.notice(self.ctx, exc, PARAMS)  # a channel error on a setup call: start afresh too
            finally:
                _pika.close_within(conn)
            if self.ctx.stopping.wait(backoff.next()):
                return

    def consume_once(self, conn: pika.BlockingConnection) -> None:
        """A fresh channel: prefetch, declare, consume; pump until SIGTERM, a cancel or a close."""
        with deadline(conn, float(_p(self.ctx, "setup_timeout_s")), "consumer setup"):
            channel = conn.channel()
            channel.add_on_cancel_callback(lambda frame: self.ctx.consume_cancelled(_pika.cancel_reason(frame)))
            channel.basic_qos(prefetch_count=int(_p(self.ctx, "prefetch")))
            _pika.declare(channel, self.ctx.cfg)
            self.next_tag = 1
            channel.basic_consume(queue=self.ctx.cfg.queue, on_message_callback=self.on_message, auto_ack=False)

        idle_stop: list[bool] = []

        def poll() -> None:  # timers run inside start_consuming: SIGTERM stops it within POLL_S
            if self.ctx.stopping.is_set():
                channel.stop_consuming()
            elif self.idle.due():  # quorum queues: is the broker still serving us? (asked below)
                idle_stop.append(True)
                channel.stop_consuming()
            elif channel.is_open:
                conn.call_later(POLL_S, poll)

        self.idle.touch()
        conn.call_later(POLL_S, poll)
        try:
            channel.start_consuming()  # returns on stop_consuming or when the broker cancelled us
        except pika.exceptions.ChannelClosedByBroker as exc:  # e.g. 406 consumer ack timeout
            self.ctx.channel_closed(exc.reply_text, exc.reply_code)
            return
        if idle_stop and not self.ctx.stopping.is_set():
            # stop_consuming cancelled our consumer: ask the broker, then consume on a new channel
            why = self.idle.verdict(self.ready(conn))
            if why:
                self.ctx.consume_cancelled(why)
        if channel.is_open:
            with deadline(conn, 2.0, "channel.close"):
                channel.close()

    def ready(self, conn: pika.BlockingConnection) -> int | None:
        """The queue's ready count (a passive declare on a channel of its own, under the setup
        deadline); None when the queue is missing (its 404 closes only that channel)."""
        with deadline(conn, float(_p(self.ctx, "setup_timeout_s")), "idle check (passive queue.declare)"):
            check = conn.channel()
            try:
                return int(check.queue_declare(queue=self.ctx.cfg.queue, passive=True).method.message_count)
            except pika.exceptions.ChannelClosedByBroker:
                return None
            finally:
                if check.is_open:
                    check.close()

    def on_message(self, channel: BlockingChannel, method: Any, _props: Any, body: bytes) -> None:
        self.idle.touch()
        if method.delivery_tag != self.next_tag:
            raise DeliveryGap(f"delivery tag {method.delivery_tag} after {self.next_tag - 1}: a delivery was lost "
                              "in transit; reconnecting so the broker redelivers it")
        self.next_tag += 1
        mid = body_id(body)
        self.ctx.event("deliver", id=mid, redelivered=bool(method.redelivered))
        if mid not in self.processed:
            if self.ctx.cfg.work_s > 0:
                channel.connection.sleep(self.ctx.cfg.work_s)  # the work; heartbeats keep flowing
            self.processed.add(mid)
        if not channel.is_open:
            # the broker closed the channel while we worked (406: consumer ack timeout): the ack
            # cannot go, the broker redelivers the message, and start_consuming raises the
            # close, so it is recorded as channel.closed and consumed again on a new channel
            return
        channel.basic_ack(delivery_tag=method.delivery_tag)
        self.ctx.event("ack", id=mid)


def consumer(ctx: ClientContext) -> None:
    """Consume with manual acks until SIGTERM; never gives up."""
    _Consumer(ctx).run()
