"""Shared plumbing of the faulty clients: the correct roles they borrow and a one-connection
publisher/consumer skeleton, so each faulty module shows only its bug.

The one-connection roles here do not reconnect: most faulty clients are meant for fault-free runs
(``--fault none``), where any connection error is itself a problem worth seeing, so it is recorded
(``channel.closed`` or ``conn.lost``) and raised, and the client gives up. :mod:`.giver_up` uses
exactly that under a fault: tutorial code that exits at its first connection error.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pika
from pika.adapters.blocking_connection import BlockingChannel

from harness.clients.protocol import ClientContext
from harness.clients.strategies import _pika, pika_recover
from harness.clients.strategies._common import describe

LIBRARY = "pika"
#: the correct roles (pika-recover) a faulty module reuses for its other role
correct_publisher = pika_recover.publisher
correct_consumer = pika_recover.consumer

#: knobs of the correct roles plus the ones every faulty module adds
BASE_PARAMS: dict[str, Any] = dict(pika_recover.PARAMS)

Publish = Callable[[str], None]


def with_confirming_channel(ctx: ClientContext, body: Callable[[BlockingChannel, Publish], None]) -> None:
    """Open one confirming channel and run ``body(channel, publish)``; ``publish(mid)`` is the correct
    ``publish.invoke`` → basic.publish (persistent, confirmed) → ``publish.ok``. An error is recorded
    as ``publish.info`` for the message in flight and raised (the client gives up)."""
    conn = _pika.connect(ctx)
    in_flight: list[str] = []

    def publish(mid: str) -> None:
        in_flight[:] = [mid]
        _pika.publish_one(ctx, channel, mid, _pika.PERSISTENT, confirmed=True)
        in_flight.clear()

    try:
        channel = conn.channel()
        _pika.declare(channel, ctx.cfg)
        channel.confirm_delivery()
        body(channel, publish)
    except (pika.exceptions.AMQPError, OSError) as exc:
        for mid in in_flight:
            ctx.event("publish.info", id=mid, error=describe(exc))
        _pika.notice(ctx, exc)  # channel.closed or conn.lost
        raise
    finally:
        _pika.close_quietly(conn)


def raw_publish(ctx: ClientContext, channel: BlockingChannel, mid: str) -> None:
    """basic.publish with no history event at all (what the faulty publishers do behind the
    application's back)."""
    channel.basic_publish(exchange="", routing_key=ctx.cfg.queue, body=mid.encode(), properties=_pika.PERSISTENT)


def consume_with(ctx: ClientContext, on_message: Callable[..., None],
                 on_channel_closed: Callable[[BaseException], None] | None = None) -> None:
    """One connection, one manual-ack consumer with ``on_message``, pumped until SIGTERM.

    ``on_channel_closed``: when given, a channel closed by the broker is handed to it and the
    connection is kept pumping (the process stays up without a consumer: the bug some clients
    have); otherwise the error is recorded and raised."""
    conn = _pika.connect(ctx)
    try:
        _pika.start_consumer(ctx, conn, on_message)
        while not ctx.stopping.is_set():
            try:
                conn.process_data_events(time_limit=_pika.POLL_S)
            except pika.exceptions.ChannelClosed as exc:
                if on_channel_closed is None:
                    raise
                on_channel_closed(exc)
    except (pika.exceptions.AMQPError, OSError) as exc:
        _pika.notice(ctx, exc)  # channel.closed or conn.lost
        raise
    finally:
        _pika.close_quietly(conn)
