"""kombu (py-amqp), best practice: every wait has a deadline, every notice is recorded.

What each defence is for (the matrix column that fails without it; docs/recipes.md has more):

* heartbeat 5 s, and ``heartbeat_check()`` on every turn of the drain loop and before every
  publish: py-amqp sends and checks heartbeats only when the application calls it, so a silent
  partition is noticed after 10 s instead of never (``partition``, ``heartbeat-starvation``).
* a real deadline on every wait (:class:`Watchdog`): py-amqp's ``confirm_timeout`` is an *idle*
  timeout (it restarts at every frame, and the broker's heartbeats arrive every 2.5 s), so a
  confirm lost on the way, or a declare-ok that never comes, waits forever. Past the deadline the
  watchdog shuts the socket down, the wait raises, the message is ``publish.info`` naming the
  deadline, and it is re-sent on a new connection (``packet-loss``, ``latency``: blocked).
* ``on_blocked`` / ``on_unblocked`` (py-amqp, through ``transport_options``): the alarm is told at
  once, while the confirm waits (``memory-alarm``: blocked).
* ``mandatory=True`` with ``on_return``: a message published while its queue does not exist comes
  back (basic.return before the ack) instead of being confirmed into nothing: ``publish.fail``,
  re-declare, re-send (``queue-delete``: lost, "confirmed but unroutable").
* consumer: manual acks, prefetch, a cancelled consumer (basic.cancel: queue deleted) or a
  channel the broker closed (406: consumer timeout) -> a new channel, re-declare, re-consume; a
  connection error -> ``clone()`` + ``ensure_connection`` with back-off (``queue-delete``,
  ``consumer-timeout``, ``broker-restart``, ``broker-crash``, ``connection-cut``).
* idempotent redelivery: an id already processed is acked again without being processed again.
* delivery-tag gap: a skipped tag means a delivery was lost in transit and sits unacked on the
  broker for this channel: drop the connection so the broker redelivers it (``packet-loss``).
* quorum queues: an idle check (``idle_check_s``, 5 s; off on classic queues): no delivery for
  that long -> a passive declare; ready messages -> ``consume.cancelled`` naming them; then a
  re-consume on a new channel either way (RabbitMQ 3.10.8 leaves a consumer unserved, with no
  basic.cancel, when a quorum queue is re-declared right after its delete: ``queue-del``).
* cluster failover (``amqp_urls``: one URL per node): kombu's own, ``alternates`` with the
  round-robin ``failover_strategy`` (``ensure_connection`` moves to the next node after each
  refused attempt), and a lost connection is replaced by one that starts at the next node, not
  by ``clone()``, which starts again at the node that just failed (``node-kill``, ``node-cut``).
  On one node: ``clone()``, as before.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Iterator
from typing import Any

import amqp.exceptions
import kombu
from kombu import Connection, Consumer, Producer

from harness.clients.protocol import ClientContext
from harness.clients.strategies import _kombu
from harness.clients.strategies._common import (
    IdleCheck,
    LossTracker,
    Nodes,
    Outbox,
    body_id,
    describe,
    idle_check_s,
)

NAME = "kombu-best"
LIBRARY = "kombu"
DESCRIPTION = ("kombu, best practice: heartbeat 5 + heartbeat_check, confirms with a real deadline (watchdog), "
               "mandatory + on_return, on_blocked, re-declare/re-consume on cancel or channel close, idempotent "
               "consumer, ensure_connection back-off")
PARAMS: dict[str, Any] = {"heartbeat": 5, "confirm_publish": True, "confirm_timeout_s": 6.0, "setup_timeout_s": 6.0,
                          "prefetch": 100, "drain_timeout_s": 0.5, "max_retries": None, "interval_start": 0.5,
                          "interval_step": 1.0, "interval_max": 4.0}


class DeadlineExpired(amqp.exceptions.RecoverableConnectionError):
    """A wait of ours outlived its deadline; the watchdog shut the connection's socket down."""


class DeliveryGap(amqp.exceptions.RecoverableConnectionError):
    """A delivery tag was skipped: a delivery was lost between the broker and us."""


class Watchdog:
    """A deadline for any blocking call on a py-amqp connection. py-amqp's own timeouts are idle
    timeouts (any frame, a heartbeat included, restarts them), so the watchdog, a timer thread,
    shuts the socket down when the deadline passes: the blocked read returns at once with an
    error, and the caller treats it as a lost connection. ``expired`` names the deadline."""

    def __init__(self) -> None:
        self.expired: str | None = None

    @contextlib.contextmanager
    def deadline(self, conn: Connection, seconds: float, what: str) -> Iterator[None]:
        sock = conn.connection.sock
        self.expired = None

        def fire() -> None:
            self.expired = f"{what} timed out: nothing within {seconds:g} s (outcome unknown)"
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

        timer = threading.Timer(seconds, fire)
        timer.daemon = True
        timer.start()
        try:
            yield
        finally:
            timer.cancel()

    def explain(self, exc: BaseException) -> str:
        """The error text: the deadline that ran out, else the library's error."""
        return f"{self.expired} [{describe(exc)}]" if self.expired else describe(exc)

    def cause(self, exc: BaseException) -> BaseException:
        """What ended the connection: the deadline that ran out, else the library's error."""
        return DeadlineExpired(self.expired) if self.expired else exc


def _p(ctx: ClientContext, name: str) -> Any:
    return ctx.cfg.param(name, PARAMS[name])


def _connect(ctx: ClientContext, conn: Connection, tracker: LossTracker) -> None:
    """``ensure_connection`` with the back-off policy; SIGTERM leaves it (``_kombu.Stopped``)."""
    stop = _kombu.check_stopping(ctx)
    policy = {k: _p(ctx, k) for k in ("max_retries", "interval_start", "interval_step", "interval_max")}
    conn.ensure_connection(errback=lambda _exc, _interval: stop(), callback=stop, **policy)
    tracker.opened(conn.port if isinstance(conn.port, int) else None)


def _drop(ctx: ClientContext, conn: Connection, nodes: Nodes) -> Connection:
    """Forget a broken connection without any I/O (a close handshake could wait forever on a
    blocked or silent broker) and return a fresh one with the same settings: on one node its
    ``clone()``; on a cluster a connection that starts at the node after the one that failed
    (kombu may have switched nodes itself: the rotation continues from the one it was on)."""
    with contextlib.suppress(Exception):
        conn.collect()
    if not nodes.cluster:
        return conn.clone()
    nodes.use_port(conn.port if isinstance(conn.port, int) else None)
    return _kombu.connection(ctx, PARAMS, nodes.next_urls())


def _close(conn: Connection, dog: Watchdog) -> None:
    """Close politely, but within 2 s."""
    with contextlib.suppress(Exception):
        if conn.connected:
            with dog.deadline(conn, 2.0, "connection.close"):
                conn.release()
            return
    with contextlib.suppress(Exception):
        conn.collect()


# ---- publisher ------------------------------------------------------------------------------


def publisher(ctx: ClientContext) -> None:
    """Publish every id until each is confirmed (or SIGTERM): persistent, mandatory, under the
    confirm deadline; returned -> ``publish.fail``, re-declare, re-send; nacked ->
    ``publish.fail``, re-send; any error -> ``publish.info``, new connection, re-send."""
    outbox = Outbox(ctx)
    tracker = LossTracker(ctx)
    dog = Watchdog()
    confirm_s, setup_s = float(_p(ctx, "confirm_timeout_s")), float(_p(ctx, "setup_timeout_s"))
    returned: list[str] = []  # basic.return of the message in flight (py-amqp calls on_return before the ack)
    queue = _kombu.queue(ctx)
    nodes = Nodes(ctx.cfg)
    conn = _kombu.connection(ctx, PARAMS, nodes.next_urls())
    producer: Producer | None = None
    errors = (*conn.connection_errors, *conn.channel_errors, OSError)

    def on_return(exc: BaseException, _exchange: str, _routing_key: str, _message: Any) -> None:
        returned.append(describe(exc))

    try:
        while True:
            if producer is None:
                try:
                    _connect(ctx, conn, tracker)
                    with dog.deadline(conn, setup_s, "publisher setup"):
                        channel = conn.channel()
                        queue(channel).declare()
                        producer = Producer(channel, on_return=on_return)
                except errors as exc:
                    tracker.lost(exc)
                    conn = _drop(ctx, conn, nodes)
                    continue
            mid = outbox.next()
            if mid is None:
                return
            returned.clear()
            ctx.event("publish.invoke", id=mid)
            try:
                with dog.deadline(conn, confirm_s, f"confirm (confirm_timeout_s={confirm_s:g})"):
                    conn.heartbeat_check()  # py-amqp sends heartbeats only when asked to
                    producer.publish(mid.encode(), routing_key=ctx.cfg.queue, delivery_mode=2, mandatory=True,
                                     content_type="application/octet-stream", content_encoding="binary")
            except amqp.exceptions.MessageNacked as exc:
                ctx.event("publish.fail", id=mid, error=describe(exc))
                outbox.retry_first(mid)
                continue
            except errors as exc:
                ctx.event("publish.info", id=mid, error=dog.explain(exc))
                if isinstance(exc, amqp.exceptions.ChannelError):
                    ctx.channel_closed(exc.reply_text or describe(exc), exc.reply_code)
                else:
                    tracker.lost(dog.cause(exc))
                outbox.retry_first(mid)
                conn, producer = _drop(ctx, conn, nodes), None
                continue
            if returned:
                # routed nowhere (the queue is gone): not lost, say so, re-create the queue, re-send
                ctx.event("publish.fail", id=mid, error=f"returned by the broker ({returned[0]}): re-declaring "
                          "the queue and re-sending")
                outbox.retry_first(mid)
                try:
                    with dog.deadline(conn, setup_s, "queue.declare"):
                        queue(producer.channel).declare()
                except errors as exc:
                    tracker.lost(exc)
                    conn, producer = _drop(ctx, conn, nodes), None
                continue
            ctx.event("publish.ok", id=mid, confirmed=True)
    except _kombu.Stopped:
        return
    finally:
        tracker.closing = True
        _close(conn, dog)


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
        self.dog = Watchdog()
        self.idle = IdleCheck(idle_check_s(ctx.cfg))

    def run(self) -> None:
        ctx = self.ctx
        tracker = LossTracker(ctx)
        nodes = Nodes(ctx.cfg)
        conn = _kombu.connection(ctx, PARAMS, nodes.next_urls())
        errors = (*conn.connection_errors, *conn.channel_errors, OSError)
        try:
            while not ctx.stopping.is_set():
                try:
                    _connect(ctx, conn, tracker)
                    while not ctx.stopping.is_set():
                        self.consume_once(conn)  # returns after a cancel or a channel close: go again
                except errors as exc:
                    if isinstance(exc, amqp.exceptions.ChannelError):  # on a setup call: start afresh
                        ctx.channel_closed(exc.reply_text or describe(exc), exc.reply_code)
                    else:
                        tracker.lost(self.dog.cause(exc))
                    conn = _drop(ctx, conn, nodes)
        except _kombu.Stopped:
            return
        finally:
            tracker.closing = True
            _close(conn, self.dog)

    def consume_once(self, conn: Connection) -> None:
        """A fresh channel: prefetch, declare, consume; drain (servicing heartbeats) until SIGTERM,
        a cancel or a channel close."""
        with self.dog.deadline(conn, float(_p(self.ctx, "setup_timeout_s")), "consumer setup"):
            channel = conn.channel()
            self.next_tag = 1
            consumer = Consumer(channel, queues=[_kombu.queue(self.ctx)], prefetch_count=int(_p(self.ctx, "prefetch")),
                                on_message=self.on_message, no_ack=False)
            consumer.consume()
        timeout = float(_p(self.ctx, "drain_timeout_s"))
        self.idle.touch()
        try:
            while not self.ctx.stopping.is_set():
                with contextlib.suppress(TimeoutError):  # socket.timeout: nothing arrived
                    conn.drain_events(timeout=timeout)
                conn.heartbeat_check()  # sends ours, raises after two missed broker heartbeats
                if self.idle.due():  # quorum queues: is the broker still serving us?
                    why = self.idle.verdict(self.ready(conn))
                    if why:
                        self.ctx.consume_cancelled(why)
                    break  # either way: consume again on a new channel (IdleCheck says why)
        except amqp.exceptions.ConsumerCancelled as exc:  # basic.cancel: the queue was deleted
            self.ctx.consume_cancelled(f"basic.cancel from the broker (consumer {exc.reply_text}: queue deleted, "
                                       "or consumer timeout)")
        except amqp.exceptions.ChannelError as exc:  # e.g. 406 consumer delivery-ack timeout
            self.ctx.channel_closed(exc.reply_text or describe(exc), exc.reply_code)
        with contextlib.suppress(Exception), self.dog.deadline(conn, 2.0, "channel.close"):
            channel.close()

    def ready(self, conn: Connection) -> int | None:
        """The queue's ready count (a passive declare on a channel of its own, under the setup
        deadline); None when the queue is missing (its 404 closes only that channel)."""
        with self.dog.deadline(conn, float(_p(self.ctx, "setup_timeout_s")), "idle check (passive queue.declare)"):
            check = conn.channel()
            try:
                return int(check.queue_declare(queue=self.ctx.cfg.queue, passive=True).message_count)
            except amqp.exceptions.NotFound:
                return None
            finally:
                with contextlib.suppress(Exception):
                    check.close()

    def on_message(self, message: kombu.Message) -> None:
        self.idle.touch()
        tag = message.delivery_tag
        if tag != self.next_tag:
            raise DeliveryGap(f"delivery tag {tag} after {self.next_tag - 1}: a delivery was lost in transit; "
                              "reconnecting so the broker redelivers it")
        self.next_tag += 1
        mid = body_id(message.body)
        self.ctx.event("deliver", id=mid, redelivered=bool(message.delivery_info.get("redelivered")))
        if mid not in self.processed:
            if self.ctx.cfg.work_s > 0:
                self.ctx.stopping.wait(self.ctx.cfg.work_s)  # the work
            self.processed.add(mid)
        message.ack()
        self.ctx.event("ack", id=mid)


def consumer(ctx: ClientContext) -> None:
    """Consume with manual acks until SIGTERM; never gives up."""
    _Consumer(ctx).run()
