"""A consumer whose message handler blocks forever after N messages (a deadlocked worker, a
call with no timeout), while its connection and its consumer stay registered.

The broker keeps its prefetch of messages unacked and the rest ready; nothing more is delivered.
The checker must find a **stall** (samples with messages ready, ``consumers`` > 0, no delivery
for at least the stall window) and, after the run, **stranded** messages: count - N, found by
the drain, never delivered.
"""

from __future__ import annotations

from typing import Any

from pika.adapters.blocking_connection import BlockingChannel

from harness.clients.faulty import _base
from harness.clients.protocol import ClientContext
from harness.clients.strategies import _pika

RULE = "stall"
LIBRARY = _base.LIBRARY
DESCRIPTION = ("faulty (rules: stall + stranded): the handler blocks (until SIGTERM) on message "
               "`stop_after`+1 with the consumer still registered; the checker must report a stall "
               "and count - stop_after stranded")
PARAMS = {**_base.BASE_PARAMS, "stop_after": 50}

publisher = _base.correct_publisher


def consumer(ctx: ClientContext) -> None:
    stop_after = int(ctx.cfg.param("stop_after", PARAMS["stop_after"]))
    done = 0
    ack = _pika.acking_callback(ctx)

    def on_message(channel: BlockingChannel, method: Any, props: Any, body: bytes) -> None:
        nonlocal done
        if done >= stop_after:
            while not ctx.stopping.wait(_pika.POLL_S):  # the hang: neither delivered nor acked
                pass
            return
        ack(channel, method, props, body)
        done += 1

    _base.consume_with(ctx, on_message)
