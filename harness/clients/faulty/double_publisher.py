"""A publisher that sends every message twice (two ``publish.invoke`` of the same id, each
confirmed): a retry-on-timeout with a timeout shorter than the confirm round trip.

The consumer gets each id twice, neither copy flagged ``redelivered``: the checker's
**duplicated** rule (``duplicated_resend``) must count one duplicate per message (a note; the
verdict stays ``pass``).
"""

from __future__ import annotations

from pika.adapters.blocking_connection import BlockingChannel

from harness.clients.faulty import _base
from harness.clients.protocol import ClientContext

RULE = "duplicated_resend"
LIBRARY = _base.LIBRARY
DESCRIPTION = ("faulty (rule: duplicated, re-send): the publisher publishes (and records) every "
               "message twice; the checker must count one duplicated_resend per message")
PARAMS = dict(_base.BASE_PARAMS)

consumer = _base.correct_consumer


def publisher(ctx: ClientContext) -> None:
    def body(_channel: BlockingChannel, publish: _base.Publish) -> None:
        for mid in ctx.paced(ctx.ids()):
            publish(mid)
            publish(mid)

    _base.with_confirming_channel(ctx, body)
