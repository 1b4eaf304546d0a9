"""aioamqp with the recovery loop its users must write themselves: heartbeats, ``on_error``
and ``wait_closed()`` to notice the loss, then reconnect after ``retry_delay_s``, reopen the
channel, redeclare the queue and consume again. Confirms and persistent messages; the
publisher re-publishes the message whose confirm never came.
"""

from __future__ import annotations

from harness.clients.protocol import ClientContext
from harness.clients.strategies import _aioamqp

NAME = "aioamqp-reconnect"
LIBRARY = "aioamqp"
DESCRIPTION = "aioamqp: heartbeat, on_error/wait_closed, reconnect + redeclare; confirms, persistent"
PARAMS = {**_aioamqp.AIOAMQP_PARAMS}


def publisher(ctx: ClientContext) -> None:
    """Publish all ids with confirms; reconnect and re-publish after a connection error."""
    _aioamqp.publisher(ctx, reconnect=True)


def consumer(ctx: ClientContext) -> None:
    """Consume with manual acks; reconnect, redeclare and re-consume when the connection closes."""
    _aioamqp.consumer(ctx, reconnect=True)
