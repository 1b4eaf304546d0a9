"""A consumer that rejects every message once (basic.nack requeue=true) before acking it: a
"not ready yet, try again" handler.

The broker redelivers each message flagged ``redelivered``: the checker's **duplicated** rule
(``duplicated_redelivery``) must count one duplicate per message. Duplicates are AMQP's
at-least-once contract, so this is a note and the verdict stays ``pass``.
"""

from __future__ import annotations

from typing import Any

from pika.adapters.blocking_connection import BlockingChannel

from harness.clients.faulty import _base
from harness.clients.protocol import ClientContext
from harness.clients.strategies._common import record_delivery

RULE = "duplicated_redelivery"
LIBRARY = _base.LIBRARY
DESCRIPTION = ("faulty (rule: duplicated, redelivery): the consumer nacks (requeue=true) every first "
               "delivery and acks the redelivery; the checker must count one duplicated_redelivery per message")
PARAMS = dict(_base.BASE_PARAMS)

publisher = _base.correct_publisher


def consumer(ctx: ClientContext) -> None:
    def on_message(channel: BlockingChannel, method: Any, _props: Any, body: bytes) -> None:
        mid = record_delivery(ctx, body, method.redelivered)
        if method.redelivered:
            channel.basic_ack(delivery_tag=method.delivery_tag)
            ctx.event("ack", id=mid)
        else:
            channel.basic_nack(delivery_tag=method.delivery_tag, requeue=True)

    _base.consume_with(ctx, on_message)
