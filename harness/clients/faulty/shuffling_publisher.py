"""A publisher with a buffering bug: it records ``publish.invoke`` in order, but sends each batch
of N messages last-in first-out.

The queue (and so the consumer) sees each batch reversed: the checker's **reordered** rule must
count N - 1 late first-deliveries per full batch, with a largest displacement of N - 1 (a
note; the verdict stays ``pass``).
"""

from __future__ import annotations

from pika.adapters.blocking_connection import BlockingChannel

from harness.clients.faulty import _base
from harness.clients.protocol import ClientContext
from harness.clients.strategies import _pika

RULE = "reordered"
LIBRARY = _base.LIBRARY
DESCRIPTION = ("faulty (rule: reordered): invokes in order, publishes each batch of `batch` messages "
               "reversed; the checker must count batch-1 reordered per full batch")
PARAMS = {**_base.BASE_PARAMS, "batch": 10}

consumer = _base.correct_consumer


def publisher(ctx: ClientContext) -> None:
    size = int(ctx.cfg.param("batch", PARAMS["batch"]))

    def flush(channel: BlockingChannel, buf: list[str]) -> None:
        for mid in reversed(buf):  # the bug: a stack where a queue was meant
            channel.basic_publish(exchange="", routing_key=ctx.cfg.queue, body=mid.encode(),
                                  properties=_pika.PERSISTENT)
            ctx.event("publish.ok", id=mid, confirmed=True)
        buf.clear()

    def body(channel: BlockingChannel, _publish: _base.Publish) -> None:
        buf: list[str] = []
        for mid in ctx.paced(ctx.ids()):
            ctx.event("publish.invoke", id=mid)
            buf.append(mid)
            if len(buf) == size:
                flush(channel, buf)
        flush(channel, buf)

    _base.with_confirming_channel(ctx, body)
