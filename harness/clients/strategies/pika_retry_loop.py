"""pika with the reconnect loop found in countless answers: ``except AMQPConnectionError:
time.sleep(2); continue``.

Persistent messages, no publisher confirms by default (param ``confirm``), a fixed 2 s wait, and
only ``AMQPConnectionError`` is retried: a channel error still ends the process. Without confirms
the publisher re-sends only the message whose ``basic_publish`` raised; anything pika had
already handed to the socket when the broker went down is reported ok (``confirmed: false``)
and may be lost, which is the difference from ``pika-recover`` this strategy exists to show.
"""

from __future__ import annotations

import pika.exceptions

from harness.clients.protocol import ClientContext
from harness.clients.strategies import _pika

NAME = "pika-retry-loop"
LIBRARY = "pika"
DESCRIPTION = "pika blocking: fixed 2 s reconnect loop on AMQPConnectionError, persistent, no confirms"
PARAMS = {**_pika.PIKA_PARAMS, "prefetch": 100, "retry_delay_s": 2.0, "confirm": False}

RETRY_ON = (pika.exceptions.AMQPConnectionError,)


def _delay(ctx: ClientContext) -> float:
    return float(ctx.cfg.param("retry_delay_s", PARAMS["retry_delay_s"]))


def publisher(ctx: ClientContext) -> None:
    """Publish all ids; on AMQPConnectionError wait, reconnect and re-send the failed one."""
    _pika.publish_loop(ctx, confirm=bool(ctx.cfg.param("confirm", PARAMS["confirm"])),
                       properties=_pika.PERSISTENT, delay=_delay(ctx), reconnect_on=RETRY_ON)


def consumer(ctx: ClientContext) -> None:
    """Consume with manual acks; on AMQPConnectionError wait and start over."""
    _pika.consume_loop(ctx, delay=_delay(ctx), reconnect_on=RETRY_ON)
