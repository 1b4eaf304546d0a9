"""pika wrapped in the ``retry`` package's decorator: ``@retry(AMQPConnectionError, delay=...,
jitter=...)`` around "connect and do the work", the other popular recovery idiom.

The decorator re-runs the whole function after an ``AMQPConnectionError``, sleeping ``delay_s``
plus a jitter that *accumulates* on each retry (``retry`` adds ``uniform(0, jitter_s)`` to the
delay every time), capped at ``max_delay_s``. Its sleep is ``time.sleep``, which a signal does
not cut short, so SIGTERM latency is up to ``max_delay_s``; the cap keeps that inside the grace
period. Persistent messages, no confirms by default (param ``confirm``).
"""

from __future__ import annotations

from collections.abc import Callable

import pika
import pika.exceptions
from retry import retry

from harness.clients.protocol import ClientContext
from harness.clients.strategies import _pika
from harness.clients.strategies._common import Outbox, describe

NAME = "pika-retry-decorator"
LIBRARY = "pika"
DESCRIPTION = "pika blocking wrapped in @retry(AMQPConnectionError, delay, jitter), persistent, no confirms"
PARAMS = {**_pika.PIKA_PARAMS, "prefetch": 100, "confirm": False,
          "delay_s": 1.0, "jitter_s": 1.0, "max_delay_s": 3.0}


def _retrying(ctx: ClientContext) -> Callable[[Callable[[], None]], Callable[[], None]]:
    p = ctx.cfg.param
    return retry(pika.exceptions.AMQPConnectionError, tries=-1,
                 delay=float(p("delay_s", PARAMS["delay_s"])),
                 jitter=(0, float(p("jitter_s", PARAMS["jitter_s"]))),
                 max_delay=float(p("max_delay_s", PARAMS["max_delay_s"])))


def publisher(ctx: ClientContext) -> None:
    """Connect and publish what is left; the decorator restarts this after a connection error."""
    outbox = Outbox(ctx)
    confirm = bool(ctx.cfg.param("confirm", PARAMS["confirm"]))

    @_retrying(ctx)
    def run() -> None:
        if ctx.stopping.is_set():
            return
        conn = _pika.connect(ctx)
        mid: str | None = None
        try:
            channel = conn.channel()
            _pika.declare(channel, ctx.cfg)
            if confirm:
                channel.confirm_delivery()
            while (mid := outbox.next()) is not None:
                try:
                    _pika.publish_one(ctx, channel, mid, _pika.PERSISTENT, confirmed=confirm)
                except pika.exceptions.NackError as exc:
                    ctx.event("publish.fail", id=mid, error=describe(exc))
                    outbox.retry_first(mid)
        except pika.exceptions.AMQPError as exc:
            if mid is not None:
                ctx.event("publish.info", id=mid, error=_pika.error_text(ctx, exc))
                outbox.retry_first(mid)
            _pika.notice(ctx, exc)
            raise
        finally:
            _pika.close_quietly(conn)

    run()


def consumer(ctx: ClientContext) -> None:
    """Connect and consume until SIGTERM; the decorator restarts this after a connection error."""

    @_retrying(ctx)
    def run() -> None:
        if ctx.stopping.is_set():
            return
        conn: pika.BlockingConnection | None = None
        try:
            conn = _pika.connect(ctx)
            channel = _pika.start_consumer(ctx, conn)
            _pika.pump_until_stopping(ctx, conn, channel)
        except pika.exceptions.AMQPError as exc:
            _pika.lost(ctx, conn, exc)
            raise
        finally:
            _pika.close_quietly(conn)

    run()
