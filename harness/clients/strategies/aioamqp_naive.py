"""aioamqp as its README example: connect, channel, declare, publish/consume, no recovery.
Confirms and persistent messages stay on (params), so what a restart shows is the client
giving up: the consumer stops receiving and exits, leaving the queue stranded.
"""

from __future__ import annotations

from harness.clients.protocol import ClientContext
from harness.clients.strategies import _aioamqp

NAME = "aioamqp-naive"
LIBRARY = "aioamqp"
DESCRIPTION = "aioamqp README pattern: no reconnection; gives up when the connection closes"
PARAMS = {**_aioamqp.AIOAMQP_PARAMS}


def publisher(ctx: ClientContext) -> None:
    """Publish all ids with confirms; the first connection error ends the process."""
    _aioamqp.publisher(ctx, reconnect=False)


def consumer(ctx: ClientContext) -> None:
    """Consume with manual acks until SIGTERM or the connection closes (then give up)."""
    _aioamqp.consumer(ctx, reconnect=False)
