"""aio-pika with plain ``connect``: confirms and persistent messages (aio-pika's channel
default), but no robustness: when the connection closes, the publisher and the consumer give up
(record ``conn.lost`` and exit non-zero). Confirmed messages survive a restart in the queue, so
what this strategy shows is stranding, not loss.
"""

from __future__ import annotations

from harness.clients.protocol import ClientContext
from harness.clients.strategies import _aio_pika

NAME = "aio-pika-plain"
LIBRARY = "aio-pika"
DESCRIPTION = "aio-pika connect (not robust), confirms, persistent; gives up on connection loss"
PARAMS = {**_aio_pika.AIO_PIKA_PARAMS}
#: library versions NAME@VERSION accepts: the floor pyproject.toml declares; 11 is an untried major
SUPPORTS = ">=9.4,<11"


def publisher(ctx: ClientContext) -> None:
    """Publish all ids with confirms; the first connection error ends the process."""
    _aio_pika.publisher(ctx, robust=False)


def consumer(ctx: ClientContext) -> None:
    """Consume with manual acks until SIGTERM or the connection closes (then give up)."""
    _aio_pika.consumer(ctx, robust=False)
