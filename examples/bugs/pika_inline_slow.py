#!/usr/bin/env python3
"""pika: a long job run inline in the ``on_message`` callback of a BlockingConnection consumer,
the pattern of the RabbitMQ "work queues" tutorial with a slow task. The callback blocks the
only thread that does pika's I/O, so no heartbeat is sent or read while the job runs; with a
job longer than the broker's heartbeat timeout (heartbeat 10 s, job 30 s) the broker closes the
connection ("missed heartbeats from client"), requeues the delivery, and the consumer finds out
only when the callback returns and its ack fails (StreamLostError / ConnectionResetError).
Reported again and again: pika #93, #418, #930 ("Connection drops when handling tasks with a
long duration"), fedora-messaging #130. Fix: pika_threaded_ack.py.

    rabbit-chaos run --client-cmd ".venv/bin/python examples/bugs/pika_inline_slow.py" \
        --client pika-inline-slow --param job_s=30

Expected verdict: fail. With ``reconnect=1`` (default, pika's documented recovery loop):
"dropped" (the connection was lost with no fault in effect, the held job redelivered: a
duplicate), and, when the job outlasts the broker's detection by more than ``max_stall_s``,
"consumer lost" too (``job_s=60``: the broker lists no consumer for ~26 s while the process
still works on its job). With ``reconnect=0`` (the tutorial: ``start_consuming()`` and nothing
around it) it exits with the error: "gave up", its messages stranded.
Measured on RabbitMQ 3.10.8: with heartbeat 10 the broker logged "missed heartbeats from
client, timeout: 10s" ~30 s after the client went silent, so a 30 s job ends just as its
connection is closed (the ack fails: StreamLostError "Transport indicated EOF").

Knobs (``--param``): ``job_s`` (30), ``slow_at`` (10), ``slow_every`` (0), ``heartbeat`` (10),
``prefetch`` (1), ``reconnect`` (1), ``retry_delay_s`` (1).
"""

from __future__ import annotations

import sys
from typing import Any

import pika
from _pika_common import SlowJobs, consumer, heartbeat_fields, publisher
from _protocol import Client, run
from pika.adapters.blocking_connection import BlockingChannel


def consume(c: Client) -> None:
    heartbeat = int(c.param("heartbeat", 10))
    jobs = SlowJobs(c)

    def make_on_message(_conn: pika.BlockingConnection) -> Any:
        def on_message(channel: BlockingChannel, method: Any, _props: Any, body: bytes) -> None:
            mid = body.decode()
            c.event("deliver", id=mid, redelivered=bool(method.redelivered))
            # THE BUG: the job runs here, in pika's I/O thread (interruptible only by SIGTERM)
            if c.stopping.wait(jobs.next_duration()):
                return
            channel.basic_ack(delivery_tag=method.delivery_tag)  # raises if the broker dropped us
            c.event("ack", id=mid)

        return on_message

    consumer(c, heartbeat, int(c.param("prefetch", 1)), make_on_message,
             reconnect=bool(c.param("reconnect", True)), retry_delay=float(c.param("retry_delay_s", 1.0)))


def publish(c: Client) -> None:
    publisher(c, int(c.param("heartbeat", 10)), retry_delay=float(c.param("retry_delay_s", 1.0)))


def main() -> int:
    c = Client()
    return run(c, "pika", pika.__version__, {"consumer": consume, "publisher": publish},
               pattern="inline-slow", **heartbeat_fields(int(c.param("heartbeat", 10))))


if __name__ == "__main__":
    sys.exit(main())
