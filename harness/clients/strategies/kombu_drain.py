"""kombu with a hand-written drain loop, as kombu's docs show it: ``drain_events(timeout=...)``
and, when it times out, ``heartbeat_check()`` (kombu sends and checks heartbeats only when the
application calls it). After a connection error: ``conn.clone()`` and ``ensure_connection``
with the retry policy, then consume again.

Publisher: Producer.publish with retry=True, a retry policy and ``confirm_publish=True``.
"""

from __future__ import annotations

from kombu import Consumer

from harness.clients.protocol import ClientContext
from harness.clients.strategies import _kombu
from harness.clients.strategies._common import LossTracker, describe
from harness.clients.strategies._kombu import publisher

NAME = "kombu-drain"
LIBRARY = "kombu"
DESCRIPTION = "kombu: drain_events(timeout) + heartbeat_check loop, clone + ensure_connection on error"
PARAMS = {**_kombu.KOMBU_PARAMS, "drain_timeout_s": 0.2}

__all__ = ["consumer", "publisher"]


def consumer(ctx: ClientContext) -> None:
    """Consume until SIGTERM; reconnect on any recoverable error."""
    timeout = float(ctx.cfg.param("drain_timeout_s", PARAMS["drain_timeout_s"]))
    prefetch = int(ctx.cfg.param("prefetch", PARAMS["prefetch"]))
    tracker = LossTracker(ctx)
    stop = _kombu.check_stopping(ctx)

    def errback(exc: BaseException, _interval: float) -> None:
        stop()

    conn = _kombu.connection(ctx)
    recoverable = conn.recoverable_connection_errors + conn.recoverable_channel_errors
    try:
        while not ctx.stopping.is_set():
            try:
                conn.ensure_connection(errback=errback, callback=stop, **_kombu.retry_policy(ctx))
                tracker.opened()
                with Consumer(conn.channel(), queues=[_kombu.queue(ctx)], prefetch_count=prefetch,
                              on_message=_kombu.acking_on_message(ctx), no_ack=False):
                    while not ctx.stopping.is_set():
                        try:
                            conn.drain_events(timeout=timeout)
                        except TimeoutError:  # socket.timeout: nothing arrived, service heartbeats
                            conn.heartbeat_check()
            except (*recoverable, OSError) as exc:
                _kombu.notice(ctx, tracker, exc)
                conn.release()
                conn = conn.clone()
            except _kombu.Stopped:
                return
            except Exception as exc:
                if isinstance(exc, conn.channel_errors):
                    _kombu.notice(ctx, tracker, exc)
                else:
                    ctx.event("conn.lost", error=describe(exc))
                raise
    finally:
        conn.release()
