#!/usr/bin/env python3
"""pika: a BlockingConnection publisher with publisher confirms and pika's default
``blocked_connection_timeout=None``. Under a resource alarm the broker sends
connection.blocked and stops reading the connection's socket; ``basic_publish`` then waits
for a confirm that cannot come until the alarm clears, with no error, and the
connection.blocked callback is only run after the publish returns (BlockingConnection
dispatches connection callbacks from ``process_data_events``/``sleep`` only). pika's docs
(``docs/examples/heartbeat_and_blocked_timeouts.rst``): a blocked connection may last
indefinitely, "stalling the connection and possibly resulting in a hang (e.g., in
BlockingConnection) until the connection is unblocked"; the threads: pika #653 (blocked
notifications not processed while a BlockingConnection call waits; the timeout proposal that
became ``blocked_connection_timeout``), pika #764 (calls hang under a disk alarm).

The fix, ``--param blocked_timeout=5``: ``blocked_connection_timeout=5``; pika drops a
connection blocked for 5 s and the publish raises ``ConnectionBlockedTimeout``; the publisher
writes ``publish.info`` (outcome unknown) and ``conn.lost``, reconnects and re-sends (a
re-sent message may arrive twice: at-least-once).

    rabbit-chaos run --client-cmd ".venv/bin/python examples/bugs/pika_blocked_publisher.py" \
        --client pika-blocked --fault memory-alarm --fault-for 20 [--param blocked_timeout=5]

Expected verdicts: without the timeout fail "blocked" (one publish waits ~20 s, nothing told);
with ``blocked_timeout=5`` pass (the application is told within 5 s, every time, and recovers).
The consumer is a correct one (manual acks, reconnect loop); the memory alarm does not block it.

Knobs (``--param``): ``blocked_timeout`` (off), ``heartbeat`` (60, pika's broker-negotiated
default), ``retry_delay_s`` (1), ``prefetch`` (100, consumer).
"""

from __future__ import annotations

import sys

import pika
from _pika_common import acking, consumer, heartbeat_fields, publisher
from _protocol import Client, run


def publish(c: Client) -> None:
    publisher(c, int(c.param("heartbeat", 60)), blocked_timeout=c.opt_float("blocked_timeout"),
              retry_delay=float(c.param("retry_delay_s", 1.0)))


def consume(c: Client) -> None:
    consumer(c, int(c.param("heartbeat", 60)), int(c.param("prefetch", 100)), acking(c),
             retry_delay=float(c.param("retry_delay_s", 1.0)))


def main() -> int:
    c = Client()
    blocked_timeout = c.opt_float("blocked_timeout")
    return run(c, "pika", pika.__version__, {"consumer": consume, "publisher": publish},
               pattern="blocked-publisher", blocked_connection_timeout=blocked_timeout,
               **heartbeat_fields(int(c.param("heartbeat", 60))))


if __name__ == "__main__":
    sys.exit(main())
