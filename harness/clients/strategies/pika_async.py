"""pika's asynchronous adapter (SelectConnection), written the way pika's own
``asynchronous_publisher_example`` / ``asynchronous_consumer_example`` recommend.

Everything runs in one IOLoop, kept across connections: ``on_close_callback`` schedules a
reconnect with ``ioloop.call_later`` (no outer ``while True`` around ``ioloop.start()``), so
timers (pacing, the SIGTERM poll, delayed acks) survive a reconnect.

Publisher: publisher confirms are asynchronous: many messages in flight (up to
``max_in_flight``), each basic.publish numbered by the channel's delivery tag, and the broker's
Basic.Ack / Basic.Nack (``multiple=True`` covers every tag up to it) mapped back to ids.
Persistent messages. When the connection or channel closes with messages unconfirmed, each gets
``publish.info`` (outcome unknown) and is re-published first after the reconnect: at-least-once,
so a confirm lost with the connection becomes a publisher re-send (a duplicate, not a loss).
A nack is ``publish.fail`` and is re-published too.

Consumer: manual acks; ``work_s`` is simulated with ``call_later`` so the loop keeps serving
heartbeats while a message is "processed"; after a reconnect the queue is redeclared and
re-consumed. An ack whose channel died meanwhile is dropped (the broker redelivers).

SIGTERM only sets ``ctx.stopping`` (a threading.Event); a 0.1 s ``call_later`` poll notices it,
waits briefly for outstanding confirms, writes ``publish.info`` for any still unanswered (every
invoke gets its outcome), closes the connection and stops the loop.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from typing import Any

import pika
import pika.exceptions
from pika.adapters.select_connection import IOLoop
from pika.channel import Channel
from pika.spec import Basic

from harness.clients.protocol import ClientContext
from harness.clients.strategies import _pika
from harness.clients.strategies._common import Outbox, Schedule, describe, queue_arguments, record_delivery

NAME = "pika-async"
LIBRARY = "pika"
DESCRIPTION = ("pika SelectConnection: asynchronous confirms (tag → id, multiple acks), persistent, reconnect "
               "from on_close via call_later and re-publish unconfirmed; consumer re-consumes after reconnect")
PARAMS = {**_pika.PIKA_PARAMS, "prefetch": 100, "retry_delay_s": 1.0, "max_in_flight": 1000,
          "confirm_wait_s": 1.0}

#: how often the loop looks at ctx.stopping (SIGTERM latency)
POLL_S = 0.1
#: fresh messages published per loop turn when unthrottled, so I/O and confirms interleave
BATCH = 100


class _Client:
    """What publisher and consumer share: one IOLoop, one connection at a time, reconnect on
    close after ``retry_delay_s``, and the SIGTERM poll."""

    def __init__(self, ctx: ClientContext) -> None:
        self.ctx = ctx
        self.ioloop = IOLoop()
        self.conn: pika.SelectConnection | None = None
        self.channel: Channel | None = None
        self.delay = float(ctx.cfg.param("retry_delay_s", PARAMS["retry_delay_s"]))
        self.closing = False  # our own close: not a loss, no reconnect
        self.was_open = False
        self.shut = False  # shutdown() ran: a second call must not cut the close handshake short

    # -- lifecycle -------------------------------------------------------------------------
    def run(self) -> None:
        """Run the loop until the work is done or SIGTERM; an exception a callback raises
        propagates out of ``ioloop.start()``: the client gave up, with that reason."""
        self.connect()
        self.ioloop.call_later(POLL_S, self._poll)
        try:
            self.ioloop.start()
        finally:
            with contextlib.suppress(Exception):
                self.ioloop.close()

    def connect(self) -> None:
        if self.closing:
            return
        self.was_open = False
        self.conn = pika.SelectConnection(
            _pika.parameters(self.ctx), on_open_callback=self._on_open, on_open_error_callback=self._on_open_error,
            on_close_callback=self._on_close, custom_ioloop=self.ioloop)

    def _on_open(self, conn: pika.SelectConnection) -> None:
        self.was_open = True
        _pika.watch_blocked(self.ctx, conn)
        port = getattr(getattr(conn, "params", None), "port", None)  # which node's proxy, on a cluster
        self.ctx.event("conn.open", **({"port": port} if isinstance(port, int) else {}))
        conn.channel(on_open_callback=self._on_channel)

    def _on_open_error(self, _conn: Any, exc: BaseException) -> None:
        """A refused attempt (broker still down): nothing was lost; try again after the delay."""
        self.conn = None
        self.reconnect_later()

    def _on_close(self, _conn: Any, reason: BaseException) -> None:
        self.channel = None
        self.conn = None
        self.lost(reason)
        self.reconnect_later()

    def reconnect_later(self) -> None:
        """With no connection left: stop the loop if we are closing, else connect again after
        :meth:`retry_delay`."""
        if self.closing:
            self.ioloop.stop()
        else:
            self.ioloop.call_later(self.retry_delay(), self.connect)

    def retry_delay(self) -> float:
        """Seconds before the next connection attempt: ``retry_delay_s``, always."""
        return self.delay

    def _on_channel(self, channel: Channel) -> None:
        self.channel = channel
        channel.add_on_close_callback(self._on_channel_closed)
        channel.queue_declare(queue=self.ctx.cfg.queue, durable=True, arguments=queue_arguments(self.ctx.cfg),
                              callback=lambda _f: self.ready(channel))

    def _on_channel_closed(self, channel: Channel, reason: BaseException) -> None:
        """A channel error (e.g. a refused declare) with the connection still up: start over
        on a fresh connection, the same recovery as a lost connection."""
        if channel is self.channel:
            self.channel = None
        if isinstance(reason, pika.exceptions.ChannelClosedByBroker):
            self.ctx.channel_closed(reason.reply_text, reason.reply_code)
        self.channel_lost(reason)
        if self.conn is not None and self.conn.is_open and not self.closing:
            self.ctx.event("conn.lost", error=f"channel closed: {describe(reason)}")
            self.was_open = False  # already recorded: the close that follows is ours
            with contextlib.suppress(Exception):
                self.conn.close()

    def lost(self, reason: BaseException) -> None:
        """``conn.lost`` once per connection that had opened, unless we closed it ourselves."""
        self.channel_lost(reason)
        if self.was_open and not self.closing:
            self.ctx.event("conn.lost", error=describe(reason))
        self.was_open = False

    def _poll(self) -> None:
        if self.ctx.stopping.is_set() and not self.closing:
            self.begin_stop()
        elif not self.closing:
            self.ioloop.call_later(POLL_S, self._poll)

    def begin_stop(self) -> None:
        self.shutdown()

    def shutdown(self) -> None:
        """Close the connection (its on_close stops the loop) or, with none open, stop now."""
        self.closing = True
        if self.shut:
            return
        self.shut = True
        conn = self.conn
        if conn is not None and not (conn.is_closing or conn.is_closed):
            try:
                conn.close()
                # bound the wait: a peer that never answers close-ok must not hold us past grace_s
                self.ioloop.call_later(2.0, self.ioloop.stop)
                return
            except pika.exceptions.ConnectionWrongStateError:
                pass
        self.ioloop.stop()

    # -- role hooks ----------------------------------------------------------------------
    def ready(self, channel: Channel) -> None:
        raise NotImplementedError

    def channel_lost(self, reason: BaseException) -> None:
        """The channel is gone (with or without its connection)."""


class Publisher(_Client):
    def __init__(self, ctx: ClientContext) -> None:
        super().__init__(ctx)
        self.outbox = Outbox(ctx, paced=False)
        self.schedule = Schedule(ctx.cfg.rate)
        self.max_in_flight = int(ctx.cfg.param("max_in_flight", PARAMS["max_in_flight"]))
        self.in_flight: dict[int, str] = {}  # delivery tag -> id, on the current channel
        self.next_tag = 1
        self.fresh_done = False
        self.pump_timer: object | None = None
        self.stop_deadline: float | None = None

    def ready(self, channel: Channel) -> None:
        """Queue declared: turn confirms on, then publish (tags restart at 1 on a new channel)."""
        self.in_flight.clear()
        self.next_tag = 1

        def confirmed(_frame: Any) -> None:
            if channel is self.channel:
                self.schedule_pump(0)

        channel.confirm_delivery(ack_nack_callback=self._on_confirm, callback=confirmed)

    def schedule_pump(self, delay: float) -> None:
        if self.pump_timer is None:
            self.pump_timer = self.ioloop.call_later(delay, self._pump)

    def _pump(self) -> None:
        """Publish what may go now: re-sends at once, fresh ids on the rate's schedule."""
        self.pump_timer = None
        channel = self.channel
        if channel is None or not channel.is_open or self.closing:
            return
        sent = 0
        while len(self.in_flight) < self.max_in_flight and sent < BATCH:
            if not self.outbox.pending_retries:
                if self.fresh_done:
                    break
                wait = self.schedule.delay()
                if wait > 0:
                    self.schedule_pump(wait)
                    return
                self.schedule.advance()
            mid = self.outbox.next()
            if mid is None:
                self.fresh_done = True
                break
            self.publish(channel, mid)
            sent += 1
        if sent == BATCH:
            self.schedule_pump(0)
        self.maybe_done()

    def publish(self, channel: Channel, mid: str) -> None:
        self.ctx.event("publish.invoke", id=mid)
        try:
            channel.basic_publish(exchange="", routing_key=self.ctx.cfg.queue, body=mid.encode(),
                                  properties=_pika.PERSISTENT)
        except (pika.exceptions.AMQPError, OSError) as exc:
            # the channel or connection died between the check and the call: outcome unknown
            self.ctx.event("publish.info", id=mid, error=describe(exc))
            self.outbox.retry_first(mid)
            return
        self.in_flight[self.next_tag] = mid
        self.next_tag += 1

    def _on_confirm(self, frame: Any) -> None:
        method = frame.method
        tag, multiple = method.delivery_tag, method.multiple
        tags = sorted(t for t in self.in_flight if t <= tag) if multiple else [tag]
        nacked: list[str] = []
        for t in tags:
            mid = self.in_flight.pop(t, None)
            if mid is None:
                continue
            if isinstance(method, Basic.Ack):
                self.ctx.event("publish.ok", id=mid, confirmed=True)
            else:
                self.ctx.event("publish.fail", id=mid, error="nacked by the broker")
                nacked.append(mid)
        if nacked:
            self.outbox.retry_first(*nacked)
        if not self.closing:
            self.schedule_pump(0)
        self.maybe_done()

    def channel_lost(self, reason: BaseException) -> None:
        """Unconfirmed messages on a dead channel: outcome unknown, re-sent after reconnect."""
        if not self.in_flight:
            return
        mids = [self.in_flight[t] for t in sorted(self.in_flight)]
        self.in_flight.clear()
        for mid in mids:
            self.ctx.event("publish.info", id=mid, error=describe(reason))
        if not self.closing:
            self.outbox.retry_first(*mids)

    def maybe_done(self) -> None:
        """Every id taken, nothing owed, nothing unconfirmed: the publisher's work is over."""
        if self.closing:
            if self.stop_deadline is not None and not self.in_flight:
                self.shutdown()
            return
        if self.fresh_done and not self.outbox.pending_retries and not self.in_flight:
            self.shutdown()

    def begin_stop(self) -> None:
        """SIGTERM: publish nothing more, give outstanding confirms ``confirm_wait_s`` to arrive,
        then record the rest as unknown and close."""
        self.closing = True
        wait = float(self.ctx.cfg.param("confirm_wait_s", PARAMS["confirm_wait_s"]))
        self.stop_deadline = time.monotonic() + wait
        if not self.in_flight:
            self.shutdown()
            return

        def give_up() -> None:
            self.channel_lost(RuntimeError("stopped (SIGTERM) before the broker confirmed"))
            self.shutdown()

        self.ioloop.call_later(wait, give_up)

    def shutdown(self) -> None:
        if self.in_flight:
            self.channel_lost(RuntimeError("stopped before the broker confirmed"))
        super().shutdown()


class Consumer(_Client):
    def ready(self, channel: Channel) -> None:
        """Queue declared: set prefetch and consume with manual acks (again after every reconnect)."""

        def consume(_frame: Any) -> None:
            channel.add_on_cancel_callback(self._on_cancel)
            channel.basic_consume(queue=self.ctx.cfg.queue, on_message_callback=self._on_message, auto_ack=False)

        channel.basic_qos(prefetch_count=int(self.ctx.cfg.param("prefetch", PARAMS["prefetch"])), callback=consume)

    def _on_message(self, channel: Channel, method: Any, _props: Any, body: bytes) -> None:
        mid = record_delivery(self.ctx, body, method.redelivered, work=False)
        ack = self._acker(channel, method.delivery_tag, mid)
        if self.ctx.cfg.work_s > 0:
            self.ioloop.call_later(self.ctx.cfg.work_s, ack)
        else:
            ack()

    def _acker(self, channel: Channel, tag: int, mid: str) -> Callable[[], None]:
        def ack() -> None:
            if not channel.is_open:
                return  # the delivery died with its channel; the broker will redeliver it
            channel.basic_ack(delivery_tag=tag)
            self.ctx.event("ack", id=mid)

        return ack

    def _on_cancel(self, frame: Any) -> None:
        """The broker cancelled our consumer (queue deleted, ...): record it and start over."""
        self.ctx.consume_cancelled(_pika.cancel_reason(frame))
        if self.conn is not None and self.conn.is_open and not self.closing:
            self.was_open = False
            self.ctx.event("conn.lost", error="consumer cancelled by the broker: reconnecting")
            with contextlib.suppress(Exception):
                self.conn.close()


def publisher(ctx: ClientContext) -> None:
    """Publish every id with asynchronous confirms until each is confirmed (or SIGTERM)."""
    Publisher(ctx).run()


def consumer(ctx: ClientContext) -> None:
    """Consume with manual acks until SIGTERM, re-consuming after every reconnect."""
    Consumer(ctx).run()
