"""A consumer that loses its channel and never notices: after N messages it acks one delivery
twice (PRECONDITION_FAILED, the broker closes the channel and with it the consumer), swallows
the error and keeps its connection open until SIGTERM, without consuming again.

The broker reports 0 consumers while messages wait and the process still runs: the checker must
report a **consumer lost** (a stall whose samples all say ``consumers == 0``) and count - N
**stranded** messages.
"""

from __future__ import annotations

from typing import Any

from pika.adapters.blocking_connection import BlockingChannel

from harness.clients.faulty import _base
from harness.clients.protocol import ClientContext
from harness.clients.strategies import _pika

RULE = "consumer_lost"
LIBRARY = _base.LIBRARY
DESCRIPTION = ("faulty (rules: consumer lost + stranded): double-acks message `stop_after` so the broker "
               "closes the channel, then stays connected without a consumer; the checker must report a "
               "lost consumer and count - stop_after stranded")
PARAMS = {**_base.BASE_PARAMS, "stop_after": 50}

publisher = _base.correct_publisher


def consumer(ctx: ClientContext) -> None:
    stop_after = int(ctx.cfg.param("stop_after", PARAMS["stop_after"]))
    done = 0
    ack = _pika.acking_callback(ctx)

    def on_message(channel: BlockingChannel, method: Any, props: Any, body: bytes) -> None:
        nonlocal done
        if done >= stop_after:
            return  # the channel is closing: late deliveries are dropped unrecorded, unacked
        ack(channel, method, props, body)
        done += 1
        if done == stop_after:
            channel.basic_ack(delivery_tag=method.delivery_tag)  # the bug: unknown delivery tag

    def swallow(_exc: BaseException) -> None:
        """The client's error handler logs nothing and does not reconnect."""

    _base.consume_with(ctx, on_message, on_channel_closed=swallow)
