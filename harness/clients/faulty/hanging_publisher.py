"""A publisher that hangs on one publish: it records ``publish.invoke`` for message N and then
blocks with no outcome (a blocking call with no timeout on a half-dead socket), until SIGTERM or
the optional ``hang_s`` cap, after which it exits without publishing the rest.

No fault, no notice (no error, no conn.blocked, no conn.lost) and an outcome that never comes
while the publisher runs: the checker's **blocked** rule must fire (once). Run it with a short
deadline, e.g. ``check_options={"max_block_s": 3}`` and ``hang_s`` a few seconds longer.
"""

from __future__ import annotations

from pika.adapters.blocking_connection import BlockingChannel

from harness.clients.faulty import _base
from harness.clients.protocol import ClientContext

RULE = "blocked"
LIBRARY = _base.LIBRARY
DESCRIPTION = ("faulty (rule: blocked, with no fault): writes publish.invoke for message `hang_at` and blocks "
               "with no outcome and no notice until SIGTERM (or `hang_s`); the checker must report one "
               "blocked publish")
#: hang_s None = until SIGTERM (the harness then stops it after its publish timeout)
PARAMS = {**_base.BASE_PARAMS, "hang_at": 100, "hang_s": None}

consumer = _base.correct_consumer


def publisher(ctx: ClientContext) -> None:
    hang_at = int(ctx.cfg.param("hang_at", PARAMS["hang_at"]))
    cap = ctx.cfg.param("hang_s", PARAMS["hang_s"])

    def body(_channel: BlockingChannel, publish: _base.Publish) -> None:
        for seq, mid in enumerate(ctx.paced(ctx.ids())):
            if seq == hang_at:
                ctx.event("publish.invoke", id=mid)
                ctx.stopping.wait(None if cap is None else float(cap))  # the hang: no outcome, ever
                return
            publish(mid)

    _base.with_confirming_channel(ctx, body)
