"""pika as the RabbitMQ tutorials write it: the baseline that must fail.

Durable queue but transient messages (no ``delivery_mode``), no publisher confirms (a publish is
"ok" when ``basic_publish`` returns, written ``confirmed: false``), and no reconnection: the
first connection error ends the process. Under a broker restart the transient messages in the
queue die with the node and both processes give up, which proves the checker can say ``fail``.
The only departure from the tutorial is the consumer loop: ``process_data_events`` in place of
``start_consuming()``, so the harness's SIGTERM stops it (the tutorial relies on Ctrl-C).
"""

from __future__ import annotations

import pika
import pika.exceptions

from harness.clients.protocol import ClientContext
from harness.clients.strategies import _pika

NAME = "pika-naive"
LIBRARY = "pika"
DESCRIPTION = "pika tutorial pattern: transient messages, no confirms, no reconnection (baseline)"
PARAMS = {**_pika.PIKA_PARAMS, "prefetch": 100}

#: what ends a naive client: anything the library raises about the connection or channel
GIVE_UP_ON = (pika.exceptions.AMQPError, OSError)


def publisher(ctx: ClientContext) -> None:
    """Publish each id once; an error is recorded and re-raised (the process exits non-zero)."""
    conn = _pika.connect(ctx)
    mid: str | None = None
    try:
        channel = conn.channel()
        _pika.declare(channel, ctx.cfg)
        for mid in ctx.paced(ctx.ids()):
            _pika.publish_one(ctx, channel, mid, _pika.TRANSIENT, confirmed=False)
            mid = None
    except GIVE_UP_ON as exc:
        if mid is not None:
            ctx.event("publish.info", id=mid, error=_pika.error_text(ctx, exc))
        _pika.notice(ctx, exc)
        raise
    finally:
        _pika.close_quietly(conn)


def consumer(ctx: ClientContext) -> None:
    """Consume with manual acks until SIGTERM; an error is recorded and re-raised."""
    conn = _pika.connect(ctx)
    try:
        channel = _pika.start_consumer(ctx, conn)
        _pika.pump_until_stopping(ctx, conn, channel)
    except GIVE_UP_ON as exc:
        _pika.lost(ctx, conn, exc)
        raise
    finally:
        _pika.close_quietly(conn)
