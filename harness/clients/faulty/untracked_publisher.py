"""A publisher that sends messages its application never asked for (a retry path that forgets
to record, a debug hook left in): every Nth publish also sends ``<id>-extra`` with no
``publish.invoke``.

The consumer receives ids nobody published: the checker's **unexpected** rule must fire, once
per extra message.
"""

from __future__ import annotations

from pika.adapters.blocking_connection import BlockingChannel

from harness.clients.faulty import _base
from harness.clients.protocol import ClientContext

RULE = "unexpected"
LIBRARY = _base.LIBRARY
DESCRIPTION = ("faulty (rule: unexpected): every `extra_every`-th publish also sends an untracked "
               "'<id>-extra' message; the checker must report count // extra_every unexpected ids")
PARAMS = {**_base.BASE_PARAMS, "extra_every": 50}

consumer = _base.correct_consumer


def publisher(ctx: ClientContext) -> None:
    every = int(ctx.cfg.param("extra_every", PARAMS["extra_every"]))

    def body(channel: BlockingChannel, publish: _base.Publish) -> None:
        for seq, mid in enumerate(ctx.paced(ctx.ids())):
            publish(mid)
            if seq % every == every - 1:
                _base.raw_publish(ctx, channel, f"{mid}-extra")  # behind the application's back

    _base.with_confirming_channel(ctx, body)
