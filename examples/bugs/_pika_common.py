"""What the three pika bug clients share: connections made one way, a correct publisher, and a
consumer loop whose message handling each client supplies (that handling is the bug or its fix).

pika BlockingConnection, as pika's own examples use it:

* every connection is named ``<run_id>/<proc>``, its heartbeat set on the parameters object
  (pika uses the client's value when it is an int), ``blocked_connection_timeout`` left at
  pika's default ``None`` (wait forever) unless a client sets it;
* connection.blocked / unblocked callbacks are registered, and written as events when pika runs
  them. BlockingConnection runs them only from ``process_data_events``/``sleep``
  (``_dispatch_connection_events``), never while a ``basic_publish`` waits for its confirm: an
  application blocked in a publish learns it was blocked only after the block is over.
"""

from __future__ import annotations

import collections
import contextlib
from collections.abc import Callable
from typing import Any

import pika
import pika.exceptions
from _protocol import Client, describe
from pika.adapters.blocking_connection import BlockingChannel

PERSISTENT = pika.BasicProperties(delivery_mode=2)
#: errors after which a connection is gone (or must be abandoned): reconnect
CONNECTION_ERRORS = (pika.exceptions.AMQPError, OSError)


def heartbeat_fields(heartbeat: int) -> dict[str, Any]:
    """client.start fields: pika 1.x closes a silent connection between hb+5 and 2(hb+5) s
    (``pika/heartbeat.py``: a timer every hb+5 s checks that bytes arrived in the last interval)."""
    if heartbeat <= 0:
        return {"heartbeat_s": 0}
    return {"heartbeat_s": heartbeat, "heartbeat_window_s": [heartbeat + 5, 2 * (heartbeat + 5)]}


def connect(c: Client, heartbeat: int, blocked_timeout: float | None = None) -> pika.BlockingConnection:
    """A BlockingConnection to the run's URL, named, with blocked/unblocked written as events."""
    params = pika.URLParameters(c.cfg["amqp_url"])
    params.heartbeat = heartbeat
    params.blocked_connection_timeout = blocked_timeout
    params.client_properties = {"connection_name": c.connection_name}
    conn = pika.BlockingConnection(params)
    conn.add_on_connection_blocked_callback(
        lambda _conn, frame: c.event("conn.blocked", reason=str(getattr(frame.method, "reason", ""))))
    conn.add_on_connection_unblocked_callback(lambda _conn, _frame: c.event("conn.unblocked"))
    c.event("conn.open")
    return conn


def close_quietly(conn: pika.BlockingConnection | None) -> None:
    """Close a connection that may be dead already (errors here tell nothing new)."""
    if conn is not None and conn.is_open:
        with contextlib.suppress(Exception):
            conn.close()


def publisher(c: Client, heartbeat: int, blocked_timeout: float | None = None, retry_delay: float = 1.0) -> None:
    """Publish every id persistent with publisher confirms, one at a time (BlockingChannel's
    basic_publish returns when the broker confirmed, raises NackError on a nack).

    Policy: a nack is ``publish.fail`` and a re-send; a connection error before the confirm is
    ``publish.info`` (outcome unknown), ``conn.lost``, reconnect after ``retry_delay``, re-send.
    ``ConnectionBlockedTimeout`` is such an error: pika raises it once the connection has been
    blocked for ``blocked_timeout`` s. Without ``blocked_timeout`` nothing is raised: the publish
    waits for as long as the alarm lasts (pika's docs: "possibly resulting in a hang (e.g., in
    BlockingConnection) until the connection is unblocked").
    """
    queue = c.cfg["queue"]
    owed: collections.deque[str] = collections.deque()  # ids to re-send, ahead of fresh ones
    fresh = c.paced(c.ids())
    conn: pika.BlockingConnection | None = None
    channel: BlockingChannel | None = None
    try:
        while not c.stopping.is_set():
            if conn is None or channel is None:
                try:
                    conn = connect(c, heartbeat, blocked_timeout)
                    channel = conn.channel()
                    channel.queue_declare(queue=queue, durable=True)
                    channel.confirm_delivery()
                except CONNECTION_ERRORS:
                    close_quietly(conn)
                    conn = channel = None
                    if c.stopping.wait(retry_delay):
                        return
                    continue
            mid = owed.popleft() if owed else next(fresh, None)
            if mid is None:
                return  # every id confirmed (or SIGTERM while pacing)
            c.event("publish.invoke", id=mid)
            try:
                channel.basic_publish(exchange="", routing_key=queue, body=mid.encode(), properties=PERSISTENT)
            except (pika.exceptions.NackError, pika.exceptions.UnroutableError) as exc:
                c.event("publish.fail", id=mid, error=describe(exc))
                owed.appendleft(mid)
                continue
            except CONNECTION_ERRORS as exc:
                error = describe(exc)
                if isinstance(exc, pika.exceptions.ConnectionBlockedTimeout):
                    # our deadline ran out: pika dropped the connection, blocked for too long
                    error = f"blocked_connection_timeout={blocked_timeout} s ran out: {error}"
                c.event("publish.info", id=mid, error=error)
                c.event("conn.lost", error=error)
                owed.appendleft(mid)
                close_quietly(conn)
                conn = channel = None
                if c.stopping.wait(retry_delay):
                    return
                continue
            c.event("publish.ok", id=mid, confirmed=True)
            conn.process_data_events(time_limit=0)  # runs connection callbacks (blocked/unblocked)
    finally:
        close_quietly(conn)


OnMessage = Callable[[BlockingChannel, Any, Any, bytes], None]


def consumer(c: Client, heartbeat: int, prefetch: int, make_on_message: Callable[[pika.BlockingConnection], OnMessage],
             *, reconnect: bool = True, retry_delay: float = 1.0,
             after_close: Callable[[], None] | None = None) -> None:
    """Consume with manual acks until SIGTERM, pumping I/O with ``process_data_events`` (as
    ``start_consuming`` does, in 0.2 s slices so SIGTERM is seen).

    A connection error (the broker dropped us, a heartbeat timeout, a failed ack) is ``conn.lost``
    (``consume.cancelled`` for a broker basic.cancel); then pika's documented recovery loop
    reconnects after ``retry_delay`` when ``reconnect`` is true, else the error propagates and the
    client gives up (the tutorial consumer: ``start_consuming()`` with no loop around it).
    """
    queue = c.cfg["queue"]
    while not c.stopping.is_set():
        conn: pika.BlockingConnection | None = None
        try:
            conn = connect(c, heartbeat)
            channel = conn.channel()
            channel.basic_qos(prefetch_count=prefetch)
            channel.queue_declare(queue=queue, durable=True)
            channel.basic_consume(queue=queue, on_message_callback=make_on_message(conn), auto_ack=False)
            while not c.stopping.is_set():
                conn.process_data_events(time_limit=0.2)
                if not channel.consumer_tags:
                    raise pika.exceptions.ConsumerCancelled("the broker cancelled the consumer (basic.cancel)")
        except CONNECTION_ERRORS as exc:
            if conn is not None:  # a refused connect attempt lost nothing: no event
                if isinstance(exc, pika.exceptions.ConsumerCancelled):
                    c.event("consume.cancelled", reason=describe(exc))
                else:
                    c.event("conn.lost", error=describe(exc))
            if not reconnect and conn is not None:
                raise
        finally:
            close_quietly(conn)
            if after_close is not None:
                after_close()
        if not c.stopping.is_set():
            c.stopping.wait(retry_delay)


def acking(c: Client) -> Callable[[pika.BlockingConnection], OnMessage]:
    """A correct handler: ``deliver``, ``work_s`` of work via ``conn.sleep`` (keeps I/O and
    heartbeats flowing), ack, ``ack``."""
    work_s = float(c.cfg.get("work_s") or 0)

    def make(conn: pika.BlockingConnection) -> OnMessage:
        def on_message(channel: BlockingChannel, method: Any, _props: Any, body: bytes) -> None:
            mid = body.decode()
            c.event("deliver", id=mid, redelivered=bool(method.redelivered))
            if work_s:
                conn.sleep(work_s)
            channel.basic_ack(delivery_tag=method.delivery_tag)
            c.event("ack", id=mid)

        return on_message

    return make


class SlowJobs:
    """Which deliveries are the slow job: the ``slow_at``-th delivery this process receives, and
    every ``slow_every``-th one when that is > 0. Counted per delivery (a redelivery is a new
    delivery), so a job killed with its connection is not slow again when it comes back: one
    heartbeat kill per slow job, not a poison message looping until the run's cap."""

    def __init__(self, c: Client) -> None:
        self.job_s = float(c.param("job_s", 30.0))
        self.slow_at = int(c.param("slow_at", 10))
        self.slow_every = int(c.param("slow_every", 0))
        self.work_s = float(c.cfg.get("work_s") or 0)
        self.n = 0

    def next_duration(self) -> float:
        self.n += 1
        slow = self.n == self.slow_at or (self.slow_every > 0 and self.n % self.slow_every == 0)
        return self.job_s if slow else self.work_s
