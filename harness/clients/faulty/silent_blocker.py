"""A publisher that blocks silently under a resource alarm: pika BlockingConnection with publisher
confirms and pika's defaults, i.e. no ``blocked_connection_timeout`` and no
connection.blocked callback (the code most tutorials show).

Under a memory or disk alarm the broker sends connection.blocked and stops reading the
connection; ``basic_publish`` then waits for its confirm for as long as the alarm lasts (a 20 s
alarm: one call blocks ~20 s) with no error and no notification, so the application cannot
tell a blocked broker from a slow one. The checker must report **blocked** (a publish whose
outcome came later than ``max_block_s`` and the application was told nothing meanwhile).

The fixed twin is the same client with ``blocked_timeout`` set (e.g. 5): pika's
``blocked_connection_timeout``, which closes the connection and raises
ConnectionBlockedTimeout once it has been blocked that long. The client records
``publish.info`` for the message in flight (outcome unknown) and ``conn.lost``, reconnects and
re-sends it, so it is told within the deadline every time: it must **pass**. Both variants
reconnect and re-send after any connection error; the timeout is the only difference.
The consumer is pika-recover's.
"""

from __future__ import annotations

import pika
import pika.exceptions
from pika.adapters.blocking_connection import BlockingChannel

from harness.clients.faulty import _base
from harness.clients.protocol import ClientContext
from harness.clients.strategies import _pika
from harness.clients.strategies._common import Outbox, describe, reconnect_loop, sleep_unless_stopping

RULE = "blocked"
LIBRARY = _base.LIBRARY
DESCRIPTION = ("faulty (rule: blocked): pika confirms with no blocked_connection_timeout and no blocked "
               "callback: under a memory alarm one publish waits the whole alarm, silently; the checker must "
               "report blocked. `blocked_timeout`=5 is its fix (ConnectionBlockedTimeout, publish.info, "
               "reconnect, re-send): that twin must pass")
#: blocked_timeout None = pika's default (wait forever, the bug); a number = the fixed twin
PARAMS = {**_base.BASE_PARAMS, "blocked_timeout": None}

consumer = _base.correct_consumer

#: connection errors both variants survive by reconnecting (ConnectionBlockedTimeout among them)
RECONNECT_ON = (pika.exceptions.AMQPConnectionError, pika.exceptions.AMQPChannelError, OSError)


def blocked_timeout(ctx: ClientContext) -> float | None:
    """``blocked_timeout``, else pika's own knob name ``blocked_connection_timeout``; None: none."""
    timeout = ctx.cfg.param("blocked_timeout", ctx.cfg.param("blocked_connection_timeout", None))
    return None if timeout is None else float(timeout)


def _open(ctx: ClientContext) -> tuple[pika.BlockingConnection, BlockingChannel]:
    """A confirming channel on a connection with no blocked callback (the bug's half) and the
    run's :func:`blocked_timeout` as pika's blocked_connection_timeout (None: none, the other half)."""
    params = _pika.parameters(ctx)
    params.blocked_connection_timeout = blocked_timeout(ctx)
    conn = pika.BlockingConnection(params)  # deliberately: no add_on_connection_blocked_callback
    ctx.event("conn.open")
    try:
        channel = conn.channel()
        _pika.declare(channel, ctx.cfg)
        channel.confirm_delivery()
    except BaseException:
        _pika.close_quietly(conn)
        raise
    return conn, channel


def publisher(ctx: ClientContext) -> None:
    """Publish every id, confirmed, one at a time; after a connection error (the fixed twin's
    ConnectionBlockedTimeout included) record the in-flight id's unknown outcome, reconnect and
    re-send it. A nack is recorded as ``publish.fail`` and re-sent."""
    delay = float(ctx.cfg.param("retry_delay_s", PARAMS["retry_delay_s"]))
    outbox = Outbox(ctx)
    conn: pika.BlockingConnection | None = None
    channel: BlockingChannel | None = None
    try:
        while True:
            if conn is None or channel is None:
                opened = reconnect_loop(ctx, lambda: _open(ctx), delay, RECONNECT_ON)
                if opened is None:
                    return  # SIGTERM while reconnecting
                conn, channel = opened
            mid = outbox.next()
            if mid is None:
                return
            try:
                _pika.publish_one(ctx, channel, mid, _pika.PERSISTENT, confirmed=True)
            except pika.exceptions.NackError as exc:
                ctx.event("publish.fail", id=mid, error=describe(exc))
                outbox.retry_first(mid)
            except RECONNECT_ON as exc:
                text = describe(exc)
                if isinstance(exc, pika.exceptions.ConnectionBlockedTimeout):
                    text += f" (blocked longer than blocked_timeout={blocked_timeout(ctx)} s)"
                ctx.event("publish.info", id=mid, error=text)
                ctx.event("conn.lost", error=text)
                outbox.retry_first(mid)
                _pika.close_quietly(conn)
                conn = channel = None
                if sleep_unless_stopping(ctx, delay):
                    return
    finally:
        _pika.close_quietly(conn)
