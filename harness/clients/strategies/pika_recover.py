"""pika BlockingConnection done right, as pika's documentation recommends.

Publisher: publisher confirms (``confirm_delivery``) and persistent messages, so ``publish.ok``
means the broker took responsibility; after a connection loss it reconnects (fixed delay) and
re-publishes everything not yet confirmed, and a nack is re-published too. This trades
duplicates (a message confirmed by the broker whose confirm was lost with the connection is
sent again) for no loss: at-least-once, which the checker scores as publisher re-sends.

Consumer: manual acks and the recovery loop of pika's ``examples/blocking_consume_recover``:
broker-closed connection or any other connection error → reconnect; a channel error → give up
(raise, so the exit reason is recorded). Deliveries are pumped with
``process_data_events(time_limit=...)`` so SIGTERM stops it within a fraction of a second.
"""

from __future__ import annotations

import pika.exceptions

from harness.clients.protocol import ClientContext
from harness.clients.strategies import _pika

NAME = "pika-recover"
LIBRARY = "pika"
DESCRIPTION = ("pika blocking: confirms + persistent messages, reconnect and re-publish unconfirmed; "
               "consumer with the documented recovery loop")
PARAMS = {**_pika.PIKA_PARAMS, "prefetch": 100, "retry_delay_s": 1.0}


def _delay(ctx: ClientContext) -> float:
    return float(ctx.cfg.param("retry_delay_s", PARAMS["retry_delay_s"]))


def publisher(ctx: ClientContext) -> None:
    """Publish every id until each is confirmed (or SIGTERM); reconnect on any library error."""
    _pika.publish_loop(ctx, confirm=True, properties=_pika.PERSISTENT, delay=_delay(ctx))


def consumer(ctx: ClientContext) -> None:
    """pika's consume_recover loop (ConnectionClosedByBroker and other AMQPConnectionError →
    reconnect, AMQPChannelError → stop), with a reconnect delay and a SIGTERM check added.
    In that loop ``start_consuming()`` returning (the broker cancelled the consumer) also leads
    to a reconnect, so ConsumerCancelled reconnects here too."""
    _pika.consume_loop(ctx, delay=_delay(ctx),
                       reconnect_on=(pika.exceptions.AMQPConnectionError, pika.exceptions.ConsumerCancelled,
                                     OSError))
