"""aio-pika as its docs recommend for production: ``connect_robust`` (reconnects every
``reconnect_interval_s``, reopens channels, redeclares the queue and restores consumers),
publisher confirms and persistent messages. The application's part: a publish that raised
(connection gone, or ``publish_timeout_s`` passed) is re-published once the connection is back.
"""

from __future__ import annotations

from harness.clients.protocol import ClientContext
from harness.clients.strategies import _aio_pika

NAME = "aio-pika-robust"
LIBRARY = "aio-pika"
DESCRIPTION = "aio-pika connect_robust + robust channel, confirms, persistent, re-publish after errors"
PARAMS = {**_aio_pika.AIO_PIKA_PARAMS, "reconnect_interval_s": 5.0, "retry_delay_s": 1.0}
#: library versions NAME@VERSION accepts: the floor pyproject.toml declares; 11 is an untried major
SUPPORTS = ">=9.4,<11"


def publisher(ctx: ClientContext) -> None:
    """Publish all ids with confirms; re-publish after the robust connection restores itself."""
    _aio_pika.publisher(ctx, robust=True)


def consumer(ctx: ClientContext) -> None:
    """Consume with manual acks; the robust connection re-consumes after a reconnect."""
    _aio_pika.consumer(ctx, robust=True)
