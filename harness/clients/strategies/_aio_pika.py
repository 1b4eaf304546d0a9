"""aio-pika plumbing shared by ``aio-pika-robust`` and ``aio-pika-plain``: the two differ only
in ``connect_robust`` vs ``connect`` and in what the application does after an error (wait
for the library to restore the connection and re-publish, or give up).

What aio-pika tells the application, and where each history event comes from:

* connection gone: the connection's ``close_callbacks`` -> ``conn.lost`` (a robust connection
  calls them for every failed reconnect attempt too; :class:`LossTracker` keeps one per outage);
  ``reconnect_callbacks`` -> ``conn.open``.
* channel closed by the broker (404, 406, ...): the channel's ``close_callbacks`` with an
  aiormq ``ChannelClosed`` -> ``channel.closed`` with the reply code and text.
* consumer cancelled by the broker (basic.cancel): the underlying aiormq channel's
  ``on_consumer_cancel_callbacks`` -> ``consume.cancelled`` (registered again on every channel
  a robust connection reopens).
* connection.blocked: aiormq keeps it private (an ``asyncio.Event`` its publishes wait on) and
  says it only in a WARNING log record, "Connection ... was blocked by: <reason>", so a log
  handler on ``aiormq.connection`` turns that record into ``conn.blocked`` (and "was
  unblocked" into ``conn.unblocked``).
* a publish that outlived ``publish_timeout_s`` (TimeoutError) -> ``publish.info`` naming the
  timeout; a confirm aio-pika cancelled because the connection closed under it (CancelledError
  while *we* were not stopping) -> ``publish.info`` "outcome unknown", re-sent after the robust
  reconnect. Only the harness's SIGTERM (``ctx.stopping``) or a cancel of our own task stops.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import aio_pika
import aio_pika.abc
import aiormq.exceptions

from harness.clients.protocol import ClientContext
from harness.clients.strategies import _aio
from harness.clients.strategies._common import (
    LossTracker,
    Nodes,
    describe,
    queue_arguments,
    record_delivery,
    url_port,
    work_async,
)

#: aio-pika's defaults: channels confirm publishes; heartbeat as the broker proposes (60);
#: robust connections retry every 5 s. publish_timeout_s bounds a publish that hangs while the
#: robust connection is reconnecting (None = aio-pika's default: wait forever).
AIO_PIKA_PARAMS: dict[str, Any] = {"heartbeat": 60, "prefetch": 100, "publisher_confirms": True,
                                   "persistent": True, "publish_timeout_s": 10.0}


class BlockedLog(logging.Handler):
    """aiormq's only word about connection.blocked is a WARNING record; write it as the
    protocol's ``conn.blocked`` / ``conn.unblocked``. One client process has one connection at a
    time, so every record of the process is ours."""

    def __init__(self, ctx: ClientContext) -> None:
        super().__init__(logging.WARNING)
        self.ctx = ctx

    def emit(self, record: logging.LogRecord) -> None:
        msg = str(record.msg)
        if "was blocked" in msg:
            args = record.args if isinstance(record.args, tuple) else ()
            self.ctx.blocked(args[1] if len(args) > 1 else None)
        elif "was unblocked" in msg:
            self.ctx.unblocked()


def watch_blocked(ctx: ClientContext) -> None:
    """Install :class:`BlockedLog` once per process."""
    logger = logging.getLogger("aiormq.connection")
    if not any(isinstance(h, BlockedLog) for h in logger.handlers):
        logger.addHandler(BlockedLog(ctx))


def channel_close_code(exc: BaseException) -> int | None:
    """The AMQP reply code of an aiormq channel error: ``ChannelClosed(code, text)`` carries it
    as its first argument, the mapped subclasses (404 ChannelNotFoundEntity, ...) by class."""
    for code, cls in aiormq.channel.EXCEPTION_MAPPING.items():
        if type(exc) is cls:
            return code
    first = exc.args[0] if exc.args else None
    return first if isinstance(first, int) else None


def channel_close_text(exc: BaseException) -> str:
    """The broker's reply text: the last string argument (aiormq puts it last or alone)."""
    texts = [a for a in exc.args if isinstance(a, str)]
    return texts[-1] if texts else describe(exc)


class ChannelWatch:
    """Reports a channel the broker closed, once: aio-pika runs a channel's close callbacks in a
    task of their own, after the failed call has already raised the same exception to us, and a
    client that gives up may exit before that task runs, so both paths report and the second
    is ignored."""

    def __init__(self, ctx: ClientContext) -> None:
        self.ctx = ctx
        self.seen: list[BaseException] = []  # by identity; kept alive so an id is never reused

    def report(self, exc: BaseException | None) -> None:
        # a connection loss closes its channels with the connection's error (conn.lost covers
        # it); our own close passes None or ChannelClosed(None, None): neither is news
        if not isinstance(exc, aiormq.exceptions.ChannelClosed) or any(e is exc for e in self.seen):
            return
        code = channel_close_code(exc)
        if code is not None:
            self.seen.append(exc)
            self.ctx.channel_closed(channel_close_text(exc), code)


async def watch_channel(ctx: ClientContext, channel: aio_pika.abc.AbstractChannel) -> ChannelWatch:
    """Report a channel the broker closes (``channel.closed``) and a consumer it cancels
    (``consume.cancelled``); for a robust channel, again on every channel it reopens. Returns
    the watch, for the call sites that see the close first."""
    watch = ChannelWatch(ctx)

    def on_close(_channel: Any, exc: BaseException | None = None) -> None:
        watch.report(exc)

    def on_cancel(frame: Any) -> None:
        ctx.consume_cancelled(f"basic.cancel from the broker (consumer {getattr(frame, 'consumer_tag', '?')}: "
                              "queue deleted, or consumer timeout)")

    async def hook(*_: Any) -> None:
        underlay = await channel.get_underlay_channel()
        callbacks = getattr(underlay, "on_consumer_cancel_callbacks", None)
        if callbacks is not None:
            callbacks.add(on_cancel)

    channel.close_callbacks.add(on_close)
    reopen = getattr(channel, "reopen_callbacks", None)
    if reopen is not None:
        reopen.add(hook)
    await hook()
    return watch


def with_query(url: str, **params: str) -> str:
    """``url`` with ``params`` set in its query string (values percent-encoded, others kept)."""
    parts = urlsplit(url)
    query = dict(parse_qsl(parts.query, keep_blank_values=True))
    query.update(params)
    return urlunsplit(parts._replace(query=urlencode(query)))


async def connect(ctx: ClientContext, robust: bool, tracker: LossTracker,
                  defaults: Mapping[str, Any] = AIO_PIKA_PARAMS,
                  nodes: Nodes | None = None) -> aio_pika.abc.AbstractConnection:
    """Connect, and hook the connection's callbacks to ``conn.lost`` / ``conn.open`` (a robust
    connection calls its close callbacks for every failed reconnect attempt too). ``defaults``:
    the calling strategy's PARAMS, for the knobs the user did not set (``heartbeat``,
    ``reconnect_interval_s``).

    ``nodes`` (a failing-over client): connect to :meth:`Nodes.next_url`; on a cluster a robust
    connection is also pointed at the next node whenever it closes. ``connect_robust`` takes one
    URL and reconnects to ``connection.url``, which it reads afresh at every attempt (aio-pika
    itself rewrites it in ``update_secret``), so the close callback sets it to the next node's:
    the reconnect after a lost node goes to another one. Without ``nodes``, or on one node: the
    run's ``amqp_url``, exactly as before."""
    watch_blocked(ctx)
    # the name goes in the URL too: aio-pika before 10.1 ignores ``client_properties`` when it is given
    # a URL, and an unnamed connection cannot be found by a targeted fault (force-close:target=...)
    first = nodes.next_url() if nodes is not None else ctx.cfg.amqp_url
    url = with_query(first, name=ctx.cfg.connection_name)
    kwargs: dict[str, Any] = {"client_properties": {"connection_name": ctx.cfg.connection_name},
                              "heartbeat": int(ctx.cfg.param("heartbeat", defaults.get("heartbeat", 60)))}
    connect_timeout = ctx.cfg.param("connect_timeout_s", defaults.get("connect_timeout_s"))
    if connect_timeout is not None:  # bounds every (re)connect's handshake; aio-pika's default: none
        kwargs["timeout"] = float(connect_timeout)
    if robust:
        kwargs["reconnect_interval"] = float(ctx.cfg.param("reconnect_interval_s",
                                                           defaults.get("reconnect_interval_s", 5.0)))
        conn: aio_pika.abc.AbstractConnection = await aio_pika.connect_robust(url, **kwargs)
        conn.reconnect_callbacks.add(lambda *_: tracker.opened(url_port(str(conn.url))))  # type: ignore[attr-defined]
        if nodes is not None and nodes.cluster:
            def next_node(*_: Any) -> None:
                nodes.failed()
                # aio-pika's own URL type (yarl's, which aio-pika depends on and we do not import)
                conn.url = type(conn.url)(with_query(nodes.current, name=ctx.cfg.connection_name))  # type: ignore[attr-defined]

            conn.close_callbacks.add(next_node)
    else:
        conn = await aio_pika.connect(url, **kwargs)

    def on_close(_conn: Any, exc: BaseException | None = None) -> None:
        if isinstance(exc, asyncio.CancelledError):
            # aiormq cancels its reader when the peer went silent past the heartbeat grace
            exc = ConnectionError("aio-pika closed the connection with CancelledError (its heartbeat check "
                                  "cancels the reader when no frame arrives in time)")
        tracker.lost(exc or ConnectionError("closed"))

    conn.close_callbacks.add(on_close)
    tracker.opened(url_port(first))
    return conn


async def close(conn: aio_pika.abc.AbstractConnection, tracker: LossTracker) -> None:
    tracker.closing = True
    if not conn.is_closed:
        await conn.close()


async def _publish_all(ctx: ClientContext, robust: bool) -> None:
    p = ctx.cfg.param
    confirms = bool(p("publisher_confirms", AIO_PIKA_PARAMS["publisher_confirms"]))
    mode = (aio_pika.DeliveryMode.PERSISTENT if p("persistent", AIO_PIKA_PARAMS["persistent"])
            else aio_pika.DeliveryMode.NOT_PERSISTENT)
    timeout = p("publish_timeout_s", AIO_PIKA_PARAMS["publish_timeout_s"])
    delay = float(p("retry_delay_s", 1.0))
    tracker = LossTracker(ctx)
    conn = await connect(ctx, robust, tracker, nodes=Nodes(ctx.cfg) if robust else None)
    try:
        channel = await conn.channel(publisher_confirms=confirms)
        watch = await watch_channel(ctx, channel)
        try:
            await channel.declare_queue(ctx.cfg.queue, durable=True, arguments=queue_arguments(ctx.cfg))
        except aiormq.exceptions.ChannelClosed as exc:
            watch.report(exc)
            raise
        outbox = _aio.AsyncOutbox(ctx)
        while (mid := await outbox.next()) is not None:
            ctx.event("publish.invoke", id=mid)
            try:
                await channel.default_exchange.publish(
                    aio_pika.Message(mid.encode(), delivery_mode=mode), routing_key=ctx.cfg.queue,
                    timeout=timeout)
            except aiormq.exceptions.DeliveryError as exc:  # basic.nack
                ctx.event("publish.fail", id=mid, error=describe(exc))
                outbox.retry_first(mid)
                continue
            except asyncio.CancelledError:
                if _aio.stopped_by_us(ctx):
                    ctx.event("publish.info", id=mid, error="stopped (SIGTERM) before the broker confirmed")
                    raise
                error = "confirm cancelled by aio-pika (the connection closed under it): outcome unknown"
                ctx.event("publish.info", id=mid, error=error)
                if not robust:
                    raise ConnectionError(error) from None
            except TimeoutError:
                error = f"publish timed out: no confirm within publish_timeout_s={timeout} s"
                ctx.event("publish.info", id=mid, error=f"{error} (outcome unknown)")
                if not robust:
                    raise TimeoutError(error) from None
            except Exception as exc:  # connection/channel gone: unknown
                ctx.event("publish.info", id=mid, error=describe(exc))
                watch.report(exc)
                if not robust:
                    raise
            else:
                ctx.event("publish.ok", id=mid, confirmed=confirms)
                continue
            # robust: the connection restores itself; wait for it (or SIGTERM) rather than spin
            outbox.retry_first(mid)
            if not await _aio.unless_stopping(ctx, asyncio.sleep(delay)):
                return
            if not await _aio.unless_stopping(ctx, _restored(conn, channel)):
                return
    finally:
        await close(conn, tracker)


async def _restored(conn: aio_pika.abc.AbstractConnection, channel: aio_pika.abc.AbstractChannel) -> None:
    """The robust connection is back and has restored the channel."""
    await conn.connected.wait()  # type: ignore[attr-defined]
    await channel.ready()  # type: ignore[attr-defined]


async def _consume(ctx: ClientContext, robust: bool) -> None:
    tracker = LossTracker(ctx)
    conn = await connect(ctx, robust, tracker, nodes=Nodes(ctx.cfg) if robust else None)
    lost: asyncio.Future[BaseException] = asyncio.get_running_loop().create_future()

    def on_close(_conn: Any, exc: BaseException | None = None) -> None:
        if not lost.done():
            lost.set_result(exc or ConnectionError("closed"))

    if not robust:  # a plain connection's close ends the consumer: the process gives up
        conn.close_callbacks.add(on_close)
    try:
        channel = await conn.channel()
        watch = await watch_channel(ctx, channel)
        await channel.set_qos(prefetch_count=int(ctx.cfg.param("prefetch", AIO_PIKA_PARAMS["prefetch"])))
        await _start_consuming(ctx, channel, watch)
        stop: asyncio.Future[Any] = asyncio.ensure_future(_aio.until_stopping(ctx))
        await asyncio.wait([stop, lost], return_when=asyncio.FIRST_COMPLETED)
        stop.cancel()
        if lost.done() and not ctx.stopping.is_set():
            raise ConnectionError(describe(lost.result()))
    finally:
        await close(conn, tracker)


async def _start_consuming(ctx: ClientContext, channel: aio_pika.abc.AbstractChannel, watch: Any) -> None:
    """Declare the queue and start consuming; the caller keeps only its connection and channel.

    That is the common application shape (consumers set up in a function, the queue object not kept)
    and it matters under recovery: a robust channel must remember its queues to restore their
    consumers after a reconnect, and aio-pika before 9.5 kept them in a ``WeakSet`` (aio-pika #594):
    with nothing else holding the queue, a forced close leaves the client connected with no consumer.
    Fixed versions keep them, so this is the same code on every version (``--client NAME@VERSION``)."""
    try:
        queue = await channel.declare_queue(ctx.cfg.queue, durable=True, arguments=queue_arguments(ctx.cfg))
    except aiormq.exceptions.ChannelClosed as exc:
        watch.report(exc)
        raise

    async def on_message(message: aio_pika.abc.AbstractIncomingMessage) -> None:
        mid = record_delivery(ctx, message.body, bool(message.redelivered), work=False)
        await work_async(ctx)
        try:
            await message.ack()
        except (aiormq.exceptions.AMQPError, ConnectionError, RuntimeError):
            return  # the ack died with the connection: the broker redelivers
        ctx.event("ack", id=mid)

    await queue.consume(on_message, no_ack=False)


def publisher(ctx: ClientContext, robust: bool) -> None:
    _aio.run(ctx, lambda: _publish_all(ctx, robust))


def consumer(ctx: ClientContext, robust: bool) -> None:
    _aio.run(ctx, lambda: _consume(ctx, robust))
