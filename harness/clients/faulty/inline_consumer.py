"""A consumer that runs a slow job inline, in pika's on_message callback: the documented pitfall
(pika's FAQ and many tracker threads: "StreamLostError / connection reset after a long-running
callback"). The callback blocks pika's I/O loop, so no heartbeat is sent; the broker closes the
connection after missing them, the ack that follows the job goes nowhere, and the broker
redelivers the message: a dropped connection and a duplicate, with no fault injected at all.

The checker must report **dropped** (``fail``): the connection was lost while no fault was in
effect, with the redelivery it caused. The client reconnects (pika-recover's loop) and consumes
the rest, so nothing is lost or stranded: only the drop fails the run. Its fixed twin is
``busy_consumer`` (the same job in a worker thread): pass.

The job runs once per message id (a redelivered id is processed quickly), so the run ends.
Use a low heartbeat (``heartbeat``: 2 s by default here) so the broker drops it within seconds.
"""

from __future__ import annotations

import time
from typing import Any

import pika.exceptions
from pika.adapters.blocking_connection import BlockingChannel

from harness.clients.faulty import _base
from harness.clients.protocol import ClientContext
from harness.clients.strategies import _pika
from harness.clients.strategies._common import record_delivery

RULE = "dropped"
LIBRARY = _base.LIBRARY
DESCRIPTION = ("faulty (rule: dropped): the job for message `job_at` runs `job_s` s inline in the on_message "
               "callback, so pika serves no heartbeat; the broker drops the connection and redelivers: the "
               "checker must report dropped (fail) with the redelivery, under no fault")
PARAMS = {**_base.BASE_PARAMS, "heartbeat": 2, "prefetch": 1, "job_at": 20, "job_s": 12.0}

def _own_heartbeat(ctx: ClientContext) -> None:
    """Connect with this module's heartbeat unless the run gave one (client.start declares the same)."""
    ctx.cfg.params.setdefault("heartbeat", PARAMS["heartbeat"])


def publisher(ctx: ClientContext) -> None:
    _own_heartbeat(ctx)
    _base.correct_publisher(ctx)


def consumer(ctx: ClientContext) -> None:
    _own_heartbeat(ctx)
    job_at = int(ctx.cfg.param("job_at", PARAMS["job_at"]))
    job_s = float(ctx.cfg.param("job_s", PARAMS["job_s"]))
    done: set[str] = set()

    def on_message(channel: BlockingChannel, method: Any, _props: Any, body: bytes) -> None:
        mid = record_delivery(ctx, body, method.redelivered, work=False)
        if mid.rpartition("-")[2] == str(job_at) and mid not in done:
            done.add(mid)
            time.sleep(job_s)  # the bug: blocking work inside pika's I/O callback (no heartbeats)
        channel.basic_ack(delivery_tag=method.delivery_tag)
        ctx.event("ack", id=mid)

    _pika.consume_loop(ctx, delay=1.0, on_message=lambda _conn: on_message,
                       reconnect_on=(pika.exceptions.AMQPConnectionError, pika.exceptions.ConsumerCancelled, OSError))
