#!/usr/bin/env python3
"""kombu 5.4 (py-amqp transport) publisher with ``confirm_publish=True`` and no confirm deadline:
the configuration celery's docs point to for reliable publishing (celery #5410), and what
celery 5.4's ``apply_async`` does (celery PR #9374: before celery 5.5 the publish timeouts were
not even passed down to kombu). Under a resource alarm the broker stops reading the
connection; ``Producer.publish`` waits in py-amqp's ``basic_publish_confirm`` for a basic.ack
that comes only when the alarm clears, with no error: celery #2689 ("apply_async() hangs
indefinitely when RabbitMQ server hits vm_memory_high_watermark"), celery #9259 ("apply_async
hangs indefinitely with confirm_publish=True"), OpenSDN-io/community #129. celery does not
register py-amqp's ``on_blocked`` callback, so nothing tells the application either; neither
does this client.

The fix, ``--param confirm_timeout=5``: a deadline on the confirm wait. kombu 5.4 has it as
``Producer.publish(timeout=...)`` (kombu PR #1269, 2020; py-amqp #279/#343 made
``basic_publish_confirm`` wait at most ``confirm_timeout or timeout``); kombu 5.5.0 added the
separate ``Producer.publish(confirm_timeout=...)`` (kombu PR #2167). Either way py-amqp raises
``socket.timeout`` (``TimeoutError``) after the deadline. The connection is then in an
unknown state (the broker may still confirm, or read the publish after the alarm): the client
writes ``publish.info``, drops the connection without a handshake (``Connection.collect()``: a
clean close would wait on the blocked socket too), reconnects and re-sends.
This file uses ``confirm_timeout=`` when the installed kombu has it, else ``timeout=``.

    examples/bugs/setup.sh
    rabbit-chaos run --client-cmd "examples/bugs/.venv-kombu54/bin/python examples/bugs/kombu54_confirm_publish.py" \
        --client kombu54-confirm --fault memory-alarm --fault-for 20 [--param confirm_timeout=5]

Expected verdicts: without the deadline fail "blocked"; with ``confirm_timeout=5`` pass.

Knobs (``--param``): ``confirm_timeout`` (off), ``retry_delay_s`` (1), ``prefetch`` (100,
consumer). Heartbeats are off (kombu's default ``heartbeat=0``).
"""

from __future__ import annotations

import collections
import contextlib
import inspect
import socket
import sys
from typing import Any

import kombu
from _protocol import Client, describe, run
from kombu import Connection, Consumer, Producer, Queue


def connection(c: Client, confirm: bool) -> Connection:
    options: dict[str, Any] = {"client_properties": {"connection_name": c.connection_name}}
    if confirm:
        options["confirm_publish"] = True
    return Connection(c.cfg["amqp_url"], heartbeat=0, transport_options=options)


def abandon(conn: Connection | None) -> None:
    """Drop a connection without the close handshake (a blocked broker would not answer it)."""
    if conn is not None:
        with contextlib.suppress(Exception):
            conn.collect()


def publish(c: Client) -> None:
    queue = c.cfg["queue"]
    deadline = c.opt_float("confirm_timeout")
    retry_delay = float(c.param("retry_delay_s", 1.0))
    has_confirm_timeout = "confirm_timeout" in inspect.signature(Producer.publish).parameters
    deadline_kw: dict[str, float] = {}
    if deadline is not None:
        deadline_kw = {"confirm_timeout": deadline} if has_confirm_timeout else {"timeout": deadline}
    owed: collections.deque[str] = collections.deque()
    fresh = c.paced(c.ids())
    conn: Connection | None = None
    producer: Producer | None = None
    try:
        while not c.stopping.is_set():
            if producer is None:
                try:
                    conn = connection(c, confirm=True)
                    conn.connect()
                    producer = Producer(conn.channel())
                    c.event("conn.open")
                except Exception as exc:  # noqa: BLE001 (broker unreachable: retry)
                    print("connect failed:", describe(exc), file=sys.stderr)
                    abandon(conn)
                    conn = producer = None
                    if c.stopping.wait(retry_delay):
                        return
                    continue
            mid = owed.popleft() if owed else next(fresh, None)
            if mid is None:
                return
            c.event("publish.invoke", id=mid)
            try:
                producer.publish(mid.encode(), routing_key=queue, exchange="", delivery_mode=2,
                                 content_type="text/plain", content_encoding="utf-8", retry=False, **deadline_kw)
            except TimeoutError as exc:  # socket.timeout: the confirm deadline passed
                c.event("publish.info", id=mid, error=f"no confirm within {deadline} s: {describe(exc)}")
                c.event("conn.lost", error="abandoned after a confirm timeout")
            except Exception as exc:  # noqa: BLE001 (nack: MessageNacked; connection/channel errors)
                if type(exc).__name__ == "MessageNacked":
                    c.event("publish.fail", id=mid, error=describe(exc))
                    owed.appendleft(mid)
                    continue
                c.event("publish.info", id=mid, error=describe(exc))
                c.event("conn.lost", error=describe(exc))
            else:
                c.event("publish.ok", id=mid, confirmed=True)
                continue
            owed.appendleft(mid)
            abandon(conn)
            conn = producer = None
            if c.stopping.wait(retry_delay):
                return
    finally:
        if conn is not None:
            with contextlib.suppress(Exception):
                conn.release()


def consume(c: Client) -> None:
    """A plain kombu consumer: manual acks after ``work_s``, reconnect after connection errors."""
    queue = Queue(c.cfg["queue"], durable=True, no_declare=True)  # the harness declared it
    work_s = float(c.cfg.get("work_s") or 0)
    retry_delay = float(c.param("retry_delay_s", 1.0))

    def on_message(message: Any) -> None:
        mid = message.body.decode() if isinstance(message.body, bytes) else str(message.body)
        c.event("deliver", id=mid, redelivered=bool(message.delivery_info.get("redelivered")))
        if work_s:
            c.stopping.wait(work_s)
        message.ack()
        c.event("ack", id=mid)

    while not c.stopping.is_set():
        conn = connection(c, confirm=False)
        opened = False
        try:
            conn.connect()
            opened = True
            c.event("conn.open")
            with Consumer(conn.channel(), queues=[queue], on_message=on_message, no_ack=False,
                          prefetch_count=int(c.param("prefetch", 100))):
                while not c.stopping.is_set():
                    with contextlib.suppress(socket.timeout):
                        conn.drain_events(timeout=0.2)
        except Exception as exc:  # noqa: BLE001 (any connection or channel error: reconnect)
            if opened:
                c.event("conn.lost", error=describe(exc))
        finally:
            with contextlib.suppress(Exception):
                conn.release()
        if not c.stopping.is_set():
            c.stopping.wait(retry_delay)


def main() -> int:
    c = Client()
    return run(c, "kombu", kombu.__version__, {"consumer": consume, "publisher": publish},
               pattern="confirm-publish", confirm_timeout=c.opt_float("confirm_timeout"), heartbeat_s=0)


if __name__ == "__main__":
    sys.exit(main())
