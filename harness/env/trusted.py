"""The harness's own trusted AMQP connection: declares the queue and drains it after a run.

It connects straight to the broker (never through the fault proxy) with a plain pika
BlockingConnection, so what it reports does not depend on the client under test.
"""

from __future__ import annotations

import pika

from harness.clients.strategies._common import queue_arguments
from harness.history import HistoryWriter


def _connect(url: str, name: str) -> pika.BlockingConnection:
    params = pika.URLParameters(url)
    params.connection_attempts = 3
    params.retry_delay = 1
    params.socket_timeout = 5
    params.client_properties = {"connection_name": name}
    return pika.BlockingConnection(params)


def declare_queue(url: str, queue: str, name: str, queue_type: str = "classic") -> None:
    """Declare the run's queue, durable, of ``queue_type`` (classic, quorum): with the same
    arguments every client declares it with (:func:`queue_arguments`), so no redeclare is ever
    refused with PRECONDITION_FAILED."""
    conn = _connect(url, name)
    try:
        conn.channel().queue_declare(queue, durable=True, arguments=queue_arguments(queue_type))
    finally:
        conn.close()


def queue_depth(url: str, queue: str, name: str) -> int | None:
    """Messages ready in the queue (passive declare: exact, unlike the sampled management stats)."""
    try:
        conn = _connect(url, name)
    except Exception:  # noqa: BLE001 - broker down: depth unknown
        return None
    try:
        return conn.channel().queue_declare(queue, passive=True).method.message_count
    except Exception:  # noqa: BLE001 - queue gone
        return None
    finally:
        if conn.is_open:
            conn.close()


def drain(url: str, queue: str, writer: HistoryWriter, name: str, max_messages: int = 10_000_000) -> tuple[bool, int]:
    """Empty the queue, writing a ``drain`` event per message. Returns (complete, remaining).

    basic_get with auto-ack until the broker says the queue is empty. Incomplete when the
    broker cannot be reached or the queue does not exist (then nothing can be concluded).
    """
    try:
        conn = _connect(url, name)
    except Exception:  # noqa: BLE001
        writer.write("drain.done", complete=False, remaining=-1, error="broker unreachable")
        return False, -1
    try:
        ch = conn.channel()
        try:
            ch.queue_declare(queue, passive=True)
        except Exception as exc:  # noqa: BLE001
            writer.write("drain.done", complete=False, remaining=-1, error=f"queue missing: {exc}")
            return False, -1
        n = 0
        while n < max_messages:
            method, _props, body = ch.basic_get(queue, auto_ack=True)
            if method is None:
                break
            writer.write("drain", id=body.decode("utf-8", "replace"), redelivered=bool(method.redelivered))
            n += 1
        remaining = ch.queue_declare(queue, passive=True).method.message_count
        writer.write("drain.done", complete=remaining == 0, remaining=remaining, drained=n)
        return remaining == 0, remaining
    except Exception as exc:  # noqa: BLE001
        writer.write("drain.done", complete=False, remaining=-1, error=f"{type(exc).__name__}: {exc}")
        return False, -1
    finally:
        if conn.is_open:
            conn.close()
