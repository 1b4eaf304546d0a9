"""The classic chat-app tutorial: every chat message is sent on a fresh connection (the web
handler opens a BlockingConnection, publishes, closes), transient messages in a durable queue,
no confirms; the listener acks manually and has no reconnection.

A message that cannot be sent because the broker is unreachable is reported to the user as a
failure (``publish.fail``) and not retried: chat apps drop it and move on. Under a broker
restart the sends during the outage fail, the listener dies (its consumer is pika-naive's),
and transient messages still queued at the restart are gone.
"""

from __future__ import annotations

import pika.exceptions

from harness.clients.protocol import ClientContext
from harness.clients.strategies import _pika
from harness.clients.strategies._common import describe
from harness.clients.strategies.pika_naive import consumer

NAME = "chat-app"
LIBRARY = "pika"
DESCRIPTION = "chat tutorial: connection per message, transient, no confirms, failed sends dropped; no reconnect"
PARAMS = {**_pika.PIKA_PARAMS, "prefetch": 100}

__all__ = ["consumer", "publisher"]


def publisher(ctx: ClientContext) -> None:
    """One connection per message; failures are final for that message."""
    for mid in ctx.paced(ctx.ids()):
        conn = None
        try:
            conn = _pika.connect(ctx)
            channel = conn.channel()
            _pika.declare(channel, ctx.cfg)
        except (pika.exceptions.AMQPError, OSError) as exc:
            # never sent: a definite failure, shown to the chat user as "not sent"
            ctx.event("publish.invoke", id=mid)
            ctx.event("publish.fail", id=mid, error=describe(exc))
            _pika.close_quietly(conn)
            continue
        try:
            _pika.publish_one(ctx, channel, mid, _pika.TRANSIENT, confirmed=False)
        except (pika.exceptions.AMQPError, OSError) as exc:
            ctx.event("publish.info", id=mid, error=_pika.error_text(ctx, exc))
            _pika.notice(ctx, exc)
        finally:
            _pika.close_quietly(conn)
