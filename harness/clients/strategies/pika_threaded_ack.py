"""pika's ``basic_consumer_threaded`` example: slow work in a worker thread, the ack handed back
to the connection's thread with ``add_callback_threadsafe`` (pika is not thread-safe).

Why it is a separate strategy: the ack happens ``work_s`` after the delivery, so a connection
loss strands acks in flight. The example's ``ack_message`` checks ``channel.is_open`` and
silently skips the ack of a closed channel; the broker then redelivers, so duplicates (with
``redelivered``) are expected, loss is not. The connection must keep pumping I/O while workers
run, or the heartbeat starves: that is what process_data_events in the main thread does.
The publisher is pika-recover's (confirms, re-publish).
"""

from __future__ import annotations

import contextlib
import functools
import threading
import time
from collections.abc import Callable
from typing import Any

import pika
import pika.exceptions
from pika.adapters.blocking_connection import BlockingChannel

from harness.clients.protocol import ClientContext
from harness.clients.strategies import _pika
from harness.clients.strategies._common import record_delivery
from harness.clients.strategies.pika_recover import publisher

NAME = "pika-threaded-ack"
LIBRARY = "pika"
DESCRIPTION = "pika blocking consumer: work in a thread per message, ack via add_callback_threadsafe"
PARAMS = {**_pika.PIKA_PARAMS, "prefetch": 100, "retry_delay_s": 1.0, "work_s": 0.05}

__all__ = ["consumer", "publisher"]


def consumer(ctx: ClientContext) -> None:
    """Recovering consumer (as pika-recover's) whose callback starts a worker per message."""
    # the workload's work_s, if given, is done here in the worker thread (never in pika's I/O thread)
    work_s = ctx.cfg.work_s or float(ctx.cfg.param("work_s", PARAMS["work_s"]))
    workers: list[threading.Thread] = []

    def ack_message(channel: BlockingChannel, tag: int, mid: str) -> None:
        if channel.is_open:  # as the example: an ack for a closed channel is dropped
            channel.basic_ack(delivery_tag=tag)
            ctx.event("ack", id=mid)

    def work(conn: pika.BlockingConnection, channel: BlockingChannel, tag: int, mid: str) -> None:
        time.sleep(work_s)
        # the connection may be gone by now: the ack cannot be delivered, the broker redelivers
        with contextlib.suppress(pika.exceptions.AMQPError, AttributeError):
            conn.add_callback_threadsafe(functools.partial(ack_message, channel, tag, mid))

    def on_message(conn: pika.BlockingConnection) -> Callable[..., None]:
        def callback(channel: BlockingChannel, method: Any, _props: Any, body: bytes) -> None:
            mid = record_delivery(ctx, body, method.redelivered, work=False)
            t = threading.Thread(target=work, args=(conn, channel, method.delivery_tag, mid), daemon=True)
            t.start()
            workers[:] = [w for w in workers if w.is_alive()] + [t]

        return callback

    def join_workers() -> None:
        for w in workers:
            w.join(timeout=work_s + 1)
        workers.clear()

    _pika.consume_loop(ctx, delay=float(ctx.cfg.param("retry_delay_s", PARAMS["retry_delay_s"])),
                       reconnect_on=(pika.exceptions.AMQPConnectionError, OSError),
                       on_message=on_message, after_close=join_workers)
