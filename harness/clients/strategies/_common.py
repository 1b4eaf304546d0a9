"""Helpers shared by the reference strategies, so each strategy module holds only what makes it
different (its library calls and its recovery policy), and the event spelling lives in one place.

Not a strategy itself: it defines no ``NAME``, so the registry skips it.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import urlsplit

from harness.clients.protocol import ClientConfig, ClientContext


def queue_arguments(cfg: ClientConfig | str) -> dict[str, Any]:
    """The ``arguments`` of every queue.declare of the run's queue: the harness's own declare and
    every strategy's (re)declare go through here, so they always agree. A redeclare whose
    arguments differ from the queue's is refused with 406 PRECONDITION_FAILED ("inequivalent arg
    'x-queue-type'"), which a recovering client would meet at every reconnect.

    A classic run declares no arguments at all, exactly as before queue types existed: a user's
    client written to the protocol's "durable, no arguments" still redeclares it cleanly, and
    the default matrix runs byte-for-byte as it did. A quorum (or stream) queue must name its
    type (``x-queue-type``), and is always durable, never exclusive or auto-delete (the broker
    refuses those for quorum queues).

    ``cfg``: the client's config, or the queue type itself (the harness's trusted declare, which
    has no client config)."""
    queue_type = cfg if isinstance(cfg, str) else cfg.queue_type
    if queue_type == "classic":
        return {}
    return {"x-queue-type": queue_type}


def failover_urls(cfg: ClientConfig) -> list[str]:
    """The URLs a failing-over client cycles through: every node's (``amqp_urls``, ``amqp_url``
    first) on a cluster run, else just ``amqp_url``."""
    return list(cfg.amqp_urls) if len(cfg.amqp_urls) > 1 else [cfg.amqp_url]


def url_port(url: str) -> int | None:
    """The port a URL names (the node's proxy on a cluster run), for ``conn.open``'s ``port``."""
    try:
        return urlsplit(url).port
    except ValueError:
        return None


#: seconds of no delivery after which a consumer on a quorum queue asks the broker whether it is
#: being served (:class:`IdleCheck`); off (None) on other queue types unless ``idle_check_s`` is set
QUORUM_IDLE_CHECK_S = 5.0


def idle_check_s(cfg: ClientConfig) -> float | None:
    """The consumer's idle check period: the ``idle_check_s`` knob (0 = off), else
    :data:`QUORUM_IDLE_CHECK_S` on a quorum queue and off otherwise, so a classic run behaves
    exactly as it did before the check existed."""
    value = cfg.param("idle_check_s", None)
    if value is None:
        return QUORUM_IDLE_CHECK_S if cfg.queue_type == "quorum" else None
    seconds = float(value)
    return seconds if seconds > 0 else None


class IdleCheck:
    """Is this consumer being served? A defence against a consumer the broker lists but never
    delivers to, and never cancels: RabbitMQ 3.10.8 leaves one when a quorum queue is deleted
    and re-declared by the same name within milliseconds (docs/clients.md, "the quorum
    queue-delete race"), and nothing on the wire tells the client.

    The strategy calls :meth:`touch` at every delivery and (re)consume; when :meth:`due` (no
    delivery for ``seconds``), it asks the broker for the queue's ready count (a passive
    queue.declare, on a channel of its own) and hands it to :meth:`verdict`, then consumes again
    on a new channel whatever the answer. Messages ready while nothing reached us mean the broker
    was not serving this consumer: the verdict is a reason, recorded as ``consume.cancelled``.
    The re-consume happens either way because the ready count cannot see everything: what the
    broker already checked out to the unserved consumer (up to the prefetch) counts as unacked,
    not ready, and comes back only when that channel closes. An idle consumer of an empty queue
    costs one passive declare and one re-consume per period."""

    def __init__(self, seconds: float | None) -> None:
        self.seconds = seconds
        self.last = time.monotonic()

    def touch(self) -> None:
        self.last = time.monotonic()

    def due(self) -> bool:
        return self.seconds is not None and time.monotonic() - self.last >= self.seconds

    def verdict(self, ready: int | None) -> str | None:
        """The reason to consume again (``ready`` > 0), else None; the period starts over."""
        self.touch()
        if ready is None or ready <= 0:
            return None
        return (f"no delivery for {self.seconds:g} s while the queue held {ready} ready messages: the broker is "
                "not serving this consumer (a quorum queue re-declared under it sends no basic.cancel); "
                "consuming again on a new channel")


class Nodes:
    """Which broker node a failing-over client connects to next.

    On one node this is inert (``current`` is always ``amqp_url``, :meth:`failed` changes
    nothing), so a best-practice strategy behaves exactly as it did before clusters. On a
    cluster, :meth:`failed` moves to the next node after a connection to the current one was
    lost or refused: a client whose node was killed, cut or partitioned away reconnects to a
    node that can serve it instead of waiting for its own to come back."""

    def __init__(self, cfg: ClientConfig) -> None:
        self.urls = failover_urls(cfg)
        self.index = 0
        self.attempted = False

    @property
    def cluster(self) -> bool:
        """More than one node to choose from."""
        return len(self.urls) > 1

    @property
    def current(self) -> str:
        return self.urls[self.index]

    def failed(self) -> str:
        """The current node failed us: move to the next one (round robin). Returns the new URL."""
        self.index = (self.index + 1) % len(self.urls)
        return self.current

    def next_url(self) -> str:
        """The URL of the next connection attempt: the first node the first time, then the next
        node each time (round robin). Every attempt after the first is a reconnect, after a
        connection that was lost or refused; on one node it is always ``amqp_url``."""
        if self.attempted:
            self.failed()
        self.attempted = True
        return self.current

    def next_urls(self) -> list[str]:
        """:meth:`next_url`, as the whole list from that node on (for a library that tries a list)."""
        self.next_url()
        return self.in_turn()

    def in_turn(self) -> list[str]:
        """Every URL, starting at the current one (a library that tries a list in order, like
        pika's ``BlockingConnection([...])``, then starts where the rotation is)."""
        return self.urls[self.index:] + self.urls[:self.index]

    def use_port(self, port: int | None) -> None:
        """The library connected to the node on ``port`` (it tried a list and picked one itself):
        the rotation continues from there."""
        for i, url in enumerate(self.urls):
            if port is not None and url_port(url) == port:
                self.index = i
                return

    def port(self) -> int | None:
        """The current URL's port, for ``conn.open``."""
        return url_port(self.current)


def describe(exc: BaseException) -> str:
    """One-line error text for history events: the type name tells pika's many
    ``AMQPConnectionError`` subclasses apart, and some of them have an empty ``str()``."""
    text = str(exc) or repr(exc.args)
    return f"{type(exc).__name__}: {text}"


def body_id(body: bytes | str) -> str:
    """The message id carried as the body (protocol: body = id as UTF-8)."""
    return body.decode("utf-8", errors="replace") if isinstance(body, bytes | bytearray) else str(body)


def record_delivery(ctx: ClientContext, body: bytes | str, redelivered: bool, work: bool = True) -> str:
    """Write ``deliver`` for a received message, then do the workload's ``work_s`` of processing
    (blocking, as synchronous consumers do; asyncio strategies pass ``work=False`` and await
    :func:`work_async` instead, so the event loop keeps serving heartbeats). Returns the id."""
    mid = body_id(body)
    ctx.event("deliver", id=mid, redelivered=bool(redelivered))
    if work and ctx.cfg.work_s > 0:
        ctx.stopping.wait(ctx.cfg.work_s)
    return mid


async def work_async(ctx: ClientContext) -> None:
    if ctx.cfg.work_s > 0:
        import asyncio

        await asyncio.sleep(ctx.cfg.work_s)


def sleep_unless_stopping(ctx: ClientContext, seconds: float) -> bool:
    """Sleep (reconnect back-off) but wake at once on SIGTERM. Returns True if stopping."""
    return ctx.stopping.wait(max(0.0, seconds))


class Outbox:
    """The publisher's to-do list: fresh ids (paced) plus ids that must be re-sent.

    Recovering publishers re-publish whatever has no accepted outcome after a reconnect or a
    nack; re-sends go first and are not paced (they are owed, not new load). ``next()`` returns
    None when every id has been taken and nothing waits for a re-send, or when stopping.
    """

    def __init__(self, ctx: ClientContext, paced: bool = True) -> None:
        self.ctx = ctx
        # paced=False: the caller paces with a Schedule (event loops must not block in paced())
        self._fresh: Iterator[str] = ctx.paced(ctx.ids()) if paced else ctx.ids()
        self._retry: deque[str] = deque()

    def next(self) -> str | None:
        if self.ctx.stopping.is_set():
            return None
        if self._retry:
            return self._retry.popleft()
        return next(self._fresh, None)

    def retry(self, *ids: str) -> None:
        """Queue ids for a re-send (in order, ahead of fresh ones)."""
        self._retry.extend(ids)

    def retry_first(self, *ids: str) -> None:
        """Put ids back at the head (the one that was in flight goes before older re-sends)."""
        self._retry.extendleft(reversed(ids))

    @property
    def pending_retries(self) -> int:
        return len(self._retry)


class Schedule:
    """``ClientContext.paced``'s schedule without the blocking wait, for event-loop clients
    (asyncio, pika's SelectConnection) that must sleep with their loop's own timer."""

    def __init__(self, rate: float) -> None:
        self.interval = 1.0 / rate if rate > 0 else 0.0
        self.next_t = time.monotonic()

    def delay(self) -> float:
        """Seconds to wait before the next fresh id may go (0 = now). Same no-burst rule as
        ``paced``: after falling behind by more than one interval, restart from now."""
        if self.interval == 0:
            return 0.0
        now = time.monotonic()
        if self.next_t > now:
            return self.next_t - now
        if now - self.next_t > self.interval:
            self.next_t = now
        return 0.0

    def advance(self) -> None:
        self.next_t += self.interval


class LossTracker:
    """Turns kombu's per-attempt errbacks into one ``conn.lost`` per outage and one
    ``conn.open`` per revival (the history wants state changes, not every refused attempt), and
    ignores the close the client itself asked for."""

    def __init__(self, ctx: ClientContext) -> None:
        self.ctx = ctx
        self.down = True  # no connection yet: a failed first attempt loses nothing
        #: set before the client's own close, which is not a loss
        self.closing = False

    def lost(self, exc: BaseException) -> bool:
        """Record a loss; returns True if this error began a new outage."""
        new = not self.down and not self.closing and not self.ctx.stopping.is_set()
        if new:
            self.ctx.event("conn.lost", error=describe(exc))
            self.down = True
        return new

    def opened(self, port: int | None = None) -> None:
        """``conn.open``; ``port``: the port the connection reached (which node, on a cluster)."""
        self.down = False
        if port is None:
            self.ctx.event("conn.open")
        else:
            self.ctx.event("conn.open", port=port)


def reconnect_loop(ctx: ClientContext, connect: Callable[[], Any], delay_s: float,
                   retry_on: tuple[type[BaseException], ...]) -> Any | None:
    """Call ``connect`` until it succeeds (returns its result) or SIGTERM (returns None).

    Each failure waits ``delay_s``: without a delay a refused connection (broker down) spins the
    CPU, which the harness would then measure as the client's behaviour.
    """
    while not ctx.stopping.is_set():
        try:
            return connect()
        except retry_on:
            if sleep_unless_stopping(ctx, delay_s):
                return None
    return None


def wait_until(predicate: Callable[[], bool], timeout: float, step: float = 0.05) -> bool:
    """Poll ``predicate`` until true or ``timeout`` seconds pass."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(step)
    return predicate()
