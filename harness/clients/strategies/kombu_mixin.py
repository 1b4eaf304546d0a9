"""kombu's ConsumerMixin (what Celery-style workers build on): ``run()`` owns the loop,
reconnects on connection errors (ensure_connection with the mixin's retry settings) and
re-creates the consumers via ``get_consumers``. SIGTERM sets ``should_stop``, noticed within
the mixin's 1 s ``safety_interval``.

Publisher: Producer.publish with retry=True, a retry policy and ``confirm_publish=True``.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from kombu import Connection
from kombu.mixins import ConsumerMixin

from harness.clients.protocol import ClientContext
from harness.clients.strategies import _kombu
from harness.clients.strategies._common import LossTracker
from harness.clients.strategies._kombu import publisher

NAME = "kombu-mixin"
LIBRARY = "kombu"
DESCRIPTION = "kombu: ConsumerMixin.run() reconnect loop; Producer.publish with retry policy + confirms"
PARAMS = {**_kombu.KOMBU_PARAMS}

__all__ = ["consumer", "publisher"]


class Worker(ConsumerMixin):
    """The mixin's hooks, each writing the history event it corresponds to."""

    def __init__(self, ctx: ClientContext, connection: Connection) -> None:
        self.ctx = ctx
        self.connection = connection
        self.tracker = LossTracker(ctx)
        self._stop = _kombu.check_stopping(ctx)

    def get_consumers(self, Consumer: Any, channel: Any) -> list[Any]:
        # run() retries a failing (re)declare once a second without calling on_iteration: leave on SIGTERM
        self._stop()
        return [Consumer(queues=[_kombu.queue(self.ctx)], on_message=_kombu.acking_on_message(self.ctx),
                         prefetch_count=int(self.ctx.cfg.param("prefetch", PARAMS["prefetch"])),
                         no_ack=False)]

    def on_connection_revived(self) -> None:
        self.tracker.opened()

    def on_connection_error(self, exc: BaseException, interval: float) -> None:
        self.tracker.lost(exc)
        self._stop()  # leave the mixin's reconnect wait on SIGTERM

    def on_iteration(self) -> None:
        if self.ctx.stopping.is_set():
            self.should_stop = True

    def consume(self, *args: Any, **kwargs: Any) -> Iterator[Any]:
        # run() swallows the connection or channel error that ends consume() (and reconnects);
        # record it on the way out
        try:
            yield from super().consume(*args, **kwargs)
        except (*self.connection_errors, *self.channel_errors) as exc:
            _kombu.notice(self.ctx, self.tracker, exc)
            raise


def consumer(ctx: ClientContext) -> None:
    """Run the mixin until SIGTERM."""
    conn = _kombu.connection(ctx)
    try:
        Worker(ctx, conn).run()
    except _kombu.Stopped:
        return
    finally:
        conn.release()
