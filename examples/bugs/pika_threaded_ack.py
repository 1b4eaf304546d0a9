#!/usr/bin/env python3
"""pika: a long job done right. pika's own ``examples/basic_consumer_threaded.py`` pattern: the
job runs in a worker thread, the connection's thread keeps pumping I/O (heartbeats flow), and
the ack is handed back with ``connection.add_callback_threadsafe`` (pika is not thread-safe);
``prefetch_count=1``. The fix for pika_inline_slow.py (pika #418, #930, #927 -> PR #956).

    rabbit-chaos run --client-cmd ".venv/bin/python examples/bugs/pika_threaded_ack.py" \
        --client pika-threaded-ack --param job_s=30

Expected verdict: pass. While the 30 s job runs the queue fills up behind prefetch 1, but the
consumer holds an unacknowledged delivery the whole time: it is busy, not stalled; the 10 s
heartbeat keeps the connection alive through the job.

Knobs (``--param``): ``job_s`` (30), ``slow_at`` (10: the 10th delivery is the slow job),
``slow_every`` (0: only that one), ``heartbeat`` (10), ``prefetch`` (1), ``retry_delay_s`` (1).
Other deliveries take the run's ``work_s``, also in a worker thread.
"""

from __future__ import annotations

import contextlib
import functools
import sys
import threading
from typing import Any

import pika
from _pika_common import CONNECTION_ERRORS, SlowJobs, consumer, heartbeat_fields, publisher
from _protocol import Client, run
from pika.adapters.blocking_connection import BlockingChannel


def consume(c: Client) -> None:
    heartbeat = int(c.param("heartbeat", 10))
    jobs = SlowJobs(c)
    workers: list[threading.Thread] = []

    def ack_message(channel: BlockingChannel, tag: int, mid: str) -> None:
        # runs in the connection's thread; as the example: an ack for a closed channel is dropped
        # (the broker redelivers that message)
        if channel.is_open:
            channel.basic_ack(delivery_tag=tag)
            c.event("ack", id=mid)

    def do_work(conn: pika.BlockingConnection, channel: BlockingChannel, tag: int, mid: str, seconds: float) -> None:
        if c.stopping.wait(seconds):
            return  # SIGTERM: the job is abandoned unacked; the broker redelivers it
        # if the connection is gone the ack cannot be delivered: the broker redelivers
        with contextlib.suppress(*CONNECTION_ERRORS):
            conn.add_callback_threadsafe(functools.partial(ack_message, channel, tag, mid))

    def make_on_message(conn: pika.BlockingConnection) -> Any:
        def on_message(channel: BlockingChannel, method: Any, _props: Any, body: bytes) -> None:
            mid = body.decode()
            c.event("deliver", id=mid, redelivered=bool(method.redelivered))
            t = threading.Thread(target=do_work, daemon=True,
                                 args=(conn, channel, method.delivery_tag, mid, jobs.next_duration()))
            t.start()
            workers[:] = [w for w in workers if w.is_alive()] + [t]

        return on_message

    def join_workers() -> None:
        for w in workers:
            w.join(timeout=1.0)
        workers.clear()

    consumer(c, heartbeat, int(c.param("prefetch", 1)), make_on_message,
             retry_delay=float(c.param("retry_delay_s", 1.0)), after_close=join_workers)


def publish(c: Client) -> None:
    publisher(c, int(c.param("heartbeat", 10)), retry_delay=float(c.param("retry_delay_s", 1.0)))


def main() -> int:
    c = Client()
    return run(c, "pika", pika.__version__, {"consumer": consume, "publisher": publish},
               pattern="threaded-ack", **heartbeat_fields(int(c.param("heartbeat", 10))))


if __name__ == "__main__":
    sys.exit(main())
