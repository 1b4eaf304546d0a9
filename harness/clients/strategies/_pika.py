"""pika helpers shared by the pika strategies (BlockingConnection flavours).

Kept apart from the strategies so that each strategy file shows only its recovery policy, and
so that every pika connection is made the same way: parameters from the run's AMQP URL, the
heartbeat and blocked-timeout knobs set on the parameters object (not the URL), the connection
named ``<run_id>/<proc>``, and connection.blocked reported as history events.

What pika tells a BlockingConnection application, and the event each becomes:

* ``add_on_connection_blocked_callback`` / ``..._unblocked_callback`` -> ``conn.blocked`` (with
  the broker's ``reason``) / ``conn.unblocked``. BlockingConnection runs them only from
  ``process_data_events`` (and so after a publish call returns): an application blocked inside
  ``basic_publish`` is told nothing until the alarm clears or ``blocked_connection_timeout``
  raises ConnectionBlockedTimeout (``publish.info`` naming that timeout).
* ``BlockingChannel.add_on_cancel_callback`` -> ``consume.cancelled`` (the broker's basic.cancel).
* ChannelClosedByBroker raised from a channel call -> ``channel.closed`` with reply code and text;
  any other connection error -> ``conn.lost``.
"""

from __future__ import annotations

import contextlib
import random
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import pika
import pika.exceptions
from pika.adapters.blocking_connection import BlockingChannel

from harness.clients.protocol import ClientConfig, ClientContext
from harness.clients.strategies._common import (
    Outbox,
    describe,
    queue_arguments,
    reconnect_loop,
    record_delivery,
    sleep_unless_stopping,
)

#: the knobs every pika strategy exposes, with pika's own defaults (heartbeat: the broker
#: proposes 60 s and pika accepts it; blocked_connection_timeout: None = wait forever)
PIKA_PARAMS: dict[str, Any] = {"heartbeat": 60, "blocked_connection_timeout": None}

#: how long one process_data_events() call may block: the bound on SIGTERM latency
POLL_S = 0.2

PERSISTENT = pika.BasicProperties(delivery_mode=2)  # persistent: written to disk by a durable queue
TRANSIENT = pika.BasicProperties()  # delivery_mode unset = transient, as in the tutorials


def parameters(ctx: ClientContext, defaults: Mapping[str, Any] = PIKA_PARAMS,
               url: str | None = None) -> pika.URLParameters:
    """Connection parameters for this client: URL + knobs + connection name. ``defaults``: the
    strategy's own defaults for the knobs (pika's, unless the strategy chooses others); ``url``:
    another node's URL (a failing-over client), else the run's ``amqp_url``."""
    params = pika.URLParameters(url or ctx.cfg.amqp_url)
    params.heartbeat = ctx.cfg.param("heartbeat", defaults["heartbeat"])
    params.blocked_connection_timeout = ctx.cfg.param(
        "blocked_connection_timeout", defaults["blocked_connection_timeout"])
    params.client_properties = {"connection_name": ctx.cfg.connection_name}
    return params


def connect(ctx: ClientContext) -> pika.BlockingConnection:
    """Open a BlockingConnection, report connection.blocked, and write ``conn.open``."""
    conn = pika.BlockingConnection(parameters(ctx))
    watch_blocked(ctx, conn)
    ctx.event("conn.open")
    return conn


def watch_blocked(ctx: ClientContext, conn: pika.BlockingConnection | pika.SelectConnection) -> None:
    """connection.blocked / unblocked as ``conn.blocked`` (with the broker's reason) and
    ``conn.unblocked``; both connection classes call ``callback(connection, method_frame)``."""
    conn.add_on_connection_blocked_callback(lambda _c, frame: ctx.blocked(blocked_reason(frame)))
    conn.add_on_connection_unblocked_callback(lambda _c, _frame: ctx.unblocked())


def blocked_reason(frame: Any) -> str | None:
    """Connection.Blocked's ``reason`` ("low on memory", "low on disk"), when the frame has one."""
    return getattr(getattr(frame, "method", None), "reason", None)


def cancel_reason(frame: Any) -> str:
    """basic.cancel carries no reason in AMQP 0-9-1; name the consumer and the usual causes."""
    tag = getattr(getattr(frame, "method", None), "consumer_tag", "?")
    return f"basic.cancel from the broker (consumer {tag}: queue deleted, or consumer timeout)"


def error_text(ctx: ClientContext, exc: BaseException, defaults: Mapping[str, Any] = PIKA_PARAMS) -> str:
    """``describe(exc)``, naming the deadline when it is pika's blocked-connection timeout."""
    text = describe(exc)
    if isinstance(exc, pika.exceptions.ConnectionBlockedTimeout):
        limit = ctx.cfg.param("blocked_connection_timeout", defaults["blocked_connection_timeout"])
        text += f" (blocked longer than blocked_connection_timeout={limit} s)"
    return text


def notice(ctx: ClientContext, exc: BaseException, defaults: Mapping[str, Any] = PIKA_PARAMS) -> None:
    """What an error raised by pika tells: a channel the broker closed (``channel.closed``, code
    and text; the connection may be fine), or a connection gone (``conn.lost``)."""
    if isinstance(exc, pika.exceptions.ChannelClosed):
        ctx.channel_closed(exc.reply_text, exc.reply_code)
    else:
        ctx.event("conn.lost", error=error_text(ctx, exc, defaults))


def declare(channel: BlockingChannel, cfg: ClientConfig) -> None:
    """Declare the run's queue exactly as the harness does (durable, the run's queue type through
    :func:`queue_arguments`): other arguments would make the broker refuse the declare with
    PRECONDITION_FAILED."""
    channel.queue_declare(queue=cfg.queue, durable=True, arguments=queue_arguments(cfg))


def close_quietly(conn: pika.BlockingConnection | None) -> None:
    """Close a connection that may already be dead; errors here say nothing new."""
    if conn is not None and conn.is_open:
        with contextlib.suppress(Exception):
            conn.close()


def acking_callback(ctx: ClientContext) -> Callable[..., None]:
    """The on_message callback of the blocking consumers: ``deliver``, basic.ack, ``ack``."""

    def on_message(channel: BlockingChannel, method: Any, _props: Any, body: bytes) -> None:
        mid = record_delivery(ctx, body, method.redelivered)
        channel.basic_ack(delivery_tag=method.delivery_tag)
        ctx.event("ack", id=mid)

    return on_message


def start_consumer(ctx: ClientContext, conn: pika.BlockingConnection,
                   on_message: Callable[..., None] | None = None) -> BlockingChannel:
    """Channel with the prefetch knob, the queue declared, a manual-ack consumer registered."""
    channel = conn.channel()
    channel.add_on_cancel_callback(lambda frame: ctx.consume_cancelled(cancel_reason(frame)))
    channel.basic_qos(prefetch_count=int(ctx.cfg.param("prefetch", 100)))
    declare(channel, ctx.cfg)
    channel.basic_consume(queue=ctx.cfg.queue, on_message_callback=on_message or acking_callback(ctx),
                          auto_ack=False)
    return channel


def pump_until_stopping(ctx: ClientContext, conn: pika.BlockingConnection, channel: BlockingChannel) -> None:
    """Dispatch deliveries until SIGTERM. Not ``start_consuming()``: that only returns when a
    callback calls stop_consuming, so a signal could not stop it promptly. Library errors
    propagate to the strategy, whose recovery policy is the thing under test.

    ``start_consuming()`` also returns when the broker cancels the last consumer (basic.cancel,
    e.g. the queue was deleted), and pika's documented recovery loop then reconnects; without
    this check the process would sit connected with no consumer. So a cancelled consumer raises
    ConsumerCancelled here, and each strategy's policy decides what that means."""
    while not ctx.stopping.is_set():
        conn.process_data_events(time_limit=POLL_S)
        if not channel.consumer_tags:
            raise pika.exceptions.ConsumerCancelled("the broker cancelled the consumer (basic.cancel)")


# ---- the two recovery loops the reconnecting pika strategies share --------------------------
# Strategies differ in which errors they reconnect on, whether they use confirms, how long they
# wait, and (consumers) what they do with a message; the loops themselves are written once.

Errors = tuple[type[BaseException], ...]
#: pika-recover's choice: anything the library raises about connection or channel, plus socket
#: errors that escape pika on some platforms
ANY_ERROR: Errors = (pika.exceptions.AMQPError, OSError)


def _open_publishing(ctx: ClientContext, confirm: bool) -> tuple[pika.BlockingConnection, BlockingChannel]:
    conn = connect(ctx)
    try:
        channel = conn.channel()
        declare(channel, ctx.cfg)
        if confirm:
            channel.confirm_delivery()
    except BaseException:
        close_quietly(conn)
        raise
    return conn, channel


def publish_loop(ctx: ClientContext, *, confirm: bool, properties: pika.BasicProperties, delay: float,
                 reconnect_on: Errors = ANY_ERROR) -> None:
    """Publish every id until each has an accepted outcome (or SIGTERM), reconnecting after
    ``reconnect_on`` errors and re-publishing the message that was in flight (and, with
    confirms, a nacked one). Any other error is recorded and raised: the client gives up.

    With confirms, BlockingChannel.basic_publish waits for the broker's ack or nack, so one
    message is in flight at a time and "in flight" is exactly "not confirmed". Without
    confirms, ``publish.ok`` (confirmed: false) only means the bytes reached pika's socket:
    what the broker had not yet written is lost silently at a restart, as users experience it.
    """
    outbox = Outbox(ctx)
    conn: pika.BlockingConnection | None = None
    channel: BlockingChannel | None = None
    try:
        while True:
            if conn is None or channel is None:
                opened = reconnect_loop(ctx, lambda: _open_publishing(ctx, confirm), delay, reconnect_on)
                if opened is None:
                    return  # SIGTERM while reconnecting
                conn, channel = opened
            mid = outbox.next()
            if mid is None:
                return
            try:
                publish_one(ctx, channel, mid, properties, confirm)
            except pika.exceptions.NackError as exc:
                ctx.event("publish.fail", id=mid, error=describe(exc))
                outbox.retry_first(mid)
                continue
            except reconnect_on as exc:
                # connection (or channel) gone before the confirm came: outcome unknown
                ctx.event("publish.info", id=mid, error=error_text(ctx, exc))
                notice(ctx, exc)
                outbox.retry_first(mid)
                close_quietly(conn)
                conn = channel = None
                if sleep_unless_stopping(ctx, delay):
                    return
                continue
            except BaseException as exc:
                ctx.event("publish.info", id=mid, error=error_text(ctx, exc))
                notice(ctx, exc)
                raise
    finally:
        close_quietly(conn)


def publish_one(ctx: ClientContext, channel: BlockingChannel, mid: str, properties: pika.BasicProperties,
                confirmed: bool) -> None:
    """``publish.invoke``, basic.publish to the queue, ``publish.ok``; errors propagate (the
    caller knows whether they mean "unknown" or "failed" under its policy)."""
    ctx.event("publish.invoke", id=mid)
    channel.basic_publish(exchange="", routing_key=ctx.cfg.queue, body=mid.encode(), properties=properties)
    ctx.event("publish.ok", id=mid, confirmed=confirmed)
    # BlockingConnection runs connection callbacks (connection.blocked/unblocked) only from
    # process_data_events: an application that never calls it never learns it was blocked
    channel.connection.process_data_events(time_limit=0)


def lost(ctx: ClientContext, conn: pika.BlockingConnection | None, exc: BaseException) -> None:
    """``conn.lost`` (or ``channel.closed``) only for a connection that had opened: a refused
    reconnect attempt (broker still down) lost nothing, and one event per attempt would drown
    the timeline. A cancelled consumer was recorded by its cancel callback already."""
    if conn is not None and not isinstance(exc, pika.exceptions.ConsumerCancelled):
        notice(ctx, exc)


def consume_loop(ctx: ClientContext, *, delay: float, reconnect_on: Errors,
                 on_message: Callable[[pika.BlockingConnection], Callable[..., None]] | None = None,
                 after_close: Callable[[], None] | None = None) -> None:
    """Consume until SIGTERM; reconnect (after ``delay``) on ``reconnect_on`` errors, record and
    raise any other library error. ``on_message(conn)`` builds the message callback for each
    new connection (default: ack in the callback); ``after_close`` runs after each connection
    is closed (e.g. to join worker threads)."""
    while not ctx.stopping.is_set():
        conn: pika.BlockingConnection | None = None
        try:
            conn = connect(ctx)
            channel = start_consumer(ctx, conn, on_message(conn) if on_message else None)
            pump_until_stopping(ctx, conn, channel)
        except reconnect_on as exc:
            lost(ctx, conn, exc)
        except (pika.exceptions.AMQPError, OSError) as exc:
            lost(ctx, conn, exc)
            raise
        finally:
            close_quietly(conn)
            if after_close is not None:
                after_close()
        sleep_unless_stopping(ctx, delay)


# ---- deadlines and back-off for the best-practice strategies (pika-best, pika-async-best) ------


class DeadlineExpired(pika.exceptions.AMQPConnectionError):
    """A wait of ours outlived its deadline (a confirm, a setup RPC): the connection was torn
    down, as pika itself does when ``blocked_connection_timeout`` runs out."""


def abort(conn: pika.BlockingConnection | pika.SelectConnection, error: BaseException) -> None:
    """Tear a connection down at once, with no close handshake, failing every wait on it with
    ``error``. pika has no public way: this is what its own blocked_connection_timeout does
    (``Connection._terminate_stream``). A graceful close would itself wait for close-ok, which
    a blocked or silent broker never sends (pika#764)."""
    impl: Any = getattr(conn, "_impl", conn)  # BlockingConnection wraps a SelectConnection
    if not impl.is_closed:  # open, or closing and still waiting for close-ok
        impl._terminate_stream(error)


@contextlib.contextmanager
def deadline(conn: pika.BlockingConnection, seconds: float, what: str) -> Iterator[None]:
    """Bound a blocking call on ``conn``: past ``seconds`` the connection is aborted and the call
    raises :class:`DeadlineExpired` naming ``what`` and the limit. BlockingConnection has no
    confirm or RPC timeout (a confirm or a declare-ok that never comes waits forever while
    heartbeats keep the connection alive), and timers of ``BlockingConnection.call_later`` only
    run inside ``process_data_events``, so the timer goes on the I/O loop pika polls while it
    waits."""
    impl: Any = conn._impl
    error = DeadlineExpired(f"{what} timed out: nothing within {seconds:g} s (outcome unknown)")
    timer = impl.ioloop.call_later(seconds, lambda: abort(conn, error))
    try:
        yield
    finally:
        impl.ioloop.remove_timeout(timer)


def close_within(conn: pika.BlockingConnection | None, seconds: float = 2.0) -> None:
    """Close a connection that may be dead or blocked, waiting at most ``seconds`` for close-ok."""
    if conn is None or not conn.is_open:
        return
    with contextlib.suppress(Exception), deadline(conn, seconds, "connection.close"):
        conn.close()


class Backoff:
    """Reconnect delays: exponential (``first`` doubling up to ``cap``) with jitter, reset by a
    connection that opened. A fixed short delay hammers a broker that is restarting; a long one
    delays recovery after the heal (the checker's max_recovery_s)."""

    def __init__(self, first: float, cap: float) -> None:
        self.first, self.cap = first, cap
        self.attempt = 0

    def next(self) -> float:
        delay = min(self.cap, self.first * 2 ** self.attempt)
        self.attempt += 1
        return delay * random.uniform(0.5, 1.0)

    def reset(self) -> None:
        self.attempt = 0
