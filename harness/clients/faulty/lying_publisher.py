"""A publisher that lies: every Nth message gets ``publish.ok confirmed=true`` but is never sent.

The application was told "the broker has it", the broker never saw it, so no consumer and no
drain can find it: the checker's **lost** rule (``lost_confirmed``) must fire, once per lie.
"""

from __future__ import annotations

from pika.adapters.blocking_connection import BlockingChannel

from harness.clients.faulty import _base
from harness.clients.protocol import ClientContext

RULE = "lost"
LIBRARY = _base.LIBRARY
DESCRIPTION = ("faulty (rule: lost): every `lie_every`-th message is reported publish.ok confirmed=true "
               "but never published; the checker must report count // lie_every lost_confirmed")
PARAMS = {**_base.BASE_PARAMS, "lie_every": 10}

consumer = _base.correct_consumer


def publisher(ctx: ClientContext) -> None:
    """Publish correctly, except that ids with ``seq % lie_every == lie_every - 1`` are only
    written to the history (invoke + confirmed ok), never to the broker."""
    every = int(ctx.cfg.param("lie_every", PARAMS["lie_every"]))

    def body(_channel: BlockingChannel, publish: _base.Publish) -> None:
        for seq, mid in enumerate(ctx.paced(ctx.ids())):
            if seq % every == every - 1:
                ctx.event("publish.invoke", id=mid)
                ctx.event("publish.ok", id=mid, confirmed=True)  # the lie
            else:
                publish(mid)

    _base.with_confirming_channel(ctx, body)
