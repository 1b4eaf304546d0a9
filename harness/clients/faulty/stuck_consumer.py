"""A consumer whose processing deadlocks after N messages, before it even starts: the library
handed it message N+1, and the handler blocks forever (a lock held by a dead thread, a call with
no timeout) before it records the delivery. Its connection and its consumer stay registered.

So the client holds no unacknowledged delivery in its own history (it never wrote ``deliver``
for the message it is stuck on: that is what tells it apart from a *busy* consumer, whose job
runs with the delivery recorded and unacked), the broker keeps its prefetch of messages unacked
and the rest ready, and nothing more is delivered. The checker must report **stalled** (samples
with messages ready, ``consumers`` > 0, the client holding nothing unacked, no delivery for longer
than ``max_stall_s``) and, after the run, **stranded** messages: count - N, found by the drain,
never delivered. It needs count - N > prefetch (the default 100), so that some are ready.
"""

from __future__ import annotations

from typing import Any

from pika.adapters.blocking_connection import BlockingChannel

from harness.clients.faulty import _base
from harness.clients.protocol import ClientContext
from harness.clients.strategies import _pika

RULE = "stalled"
LIBRARY = _base.LIBRARY
DESCRIPTION = ("faulty (rules: stalled + stranded): on message `stop_after`+1 the handler deadlocks (until "
               "SIGTERM) before recording the delivery, with the consumer still registered; the checker must "
               "report stalled and count - stop_after stranded")
PARAMS = {**_base.BASE_PARAMS, "stop_after": 50}

publisher = _base.correct_publisher


def consumer(ctx: ClientContext) -> None:
    stop_after = int(ctx.cfg.param("stop_after", PARAMS["stop_after"]))
    done = 0
    ack = _pika.acking_callback(ctx)

    def on_message(channel: BlockingChannel, method: Any, props: Any, body: bytes) -> None:
        nonlocal done
        if done >= stop_after:
            # the deadlock, before any processing: no ``deliver``, no ack, the I/O loop stuck here
            while not ctx.stopping.wait(_pika.POLL_S):
                pass
            return
        ack(channel, method, props, body)
        done += 1

    _base.consume_with(ctx, on_message)
