"""asyncio plumbing shared by the aio-pika and aioamqp strategies.

SIGTERM arrives as ``ctx.stopping`` (a threading.Event set by the signal handler); an asyncio
strategy cannot block on it, so a watcher task polls it and first lets the strategy finish
on its own (publishers stop between messages, so every invoke gets its outcome), then cancels.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable

from harness.clients.protocol import ClientContext
from harness.clients.strategies._common import Outbox, Schedule

POLL_S = 0.1
#: how long a strategy gets to return by itself after SIGTERM before it is cancelled
SELF_STOP_S = 1.5


async def until_stopping(ctx: ClientContext) -> None:
    """Return once SIGTERM has been received."""
    while not ctx.stopping.is_set():
        await asyncio.sleep(POLL_S)


def stopped_by_us(ctx: ClientContext) -> bool:
    """A CancelledError means "stop" only when the harness's SIGTERM set our flag, or our own
    task is being cancelled (the supervisor's cancel after the self-stop grace). A library may
    also cancel a pending call when the connection closes under it (aio-pika cancels the
    pending confirm at a heartbeat timeout): that is an unknown outcome, not a stop."""
    task = asyncio.current_task()
    return ctx.stopping.is_set() or (task is not None and task.cancelling() > 0)


async def unless_stopping(ctx: ClientContext, aw: Awaitable[object]) -> bool:
    """Await ``aw`` unless SIGTERM comes first: True when it finished (its error propagates),
    False when stopping (``aw`` is cancelled). A reconnect wait must not hold the process past
    its grace period, and must not be cut short by anything but our own stop."""
    work = asyncio.ensure_future(aw)
    watcher = asyncio.ensure_future(until_stopping(ctx))
    try:
        await asyncio.wait({work, watcher}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        watcher.cancel()
        if not work.done():
            work.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await work
    if work.cancelled():  # by us at SIGTERM; by the library otherwise: carry on and retry
        return not ctx.stopping.is_set()
    work.result()
    return True


def run(ctx: ClientContext, main: Callable[[], Awaitable[None]]) -> None:
    """Run ``main`` until it returns, raises, or SIGTERM (+ grace) cancels it."""

    async def supervise() -> None:
        task = asyncio.ensure_future(main())
        watcher = asyncio.ensure_future(until_stopping(ctx))
        await asyncio.wait({task, watcher}, return_when=asyncio.FIRST_COMPLETED)
        if not task.done():
            await asyncio.wait({task}, timeout=SELF_STOP_S)
        if not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            return
        watcher.cancel()
        task.result()  # re-raise the strategy's error: the client gave up

    asyncio.run(supervise())


class AsyncOutbox:
    """:class:`Outbox` for asyncio: re-sends first, fresh ids paced with ``asyncio.sleep``."""

    def __init__(self, ctx: ClientContext) -> None:
        self.ctx = ctx
        self.box = Outbox(ctx, paced=False)
        self.schedule = Schedule(ctx.cfg.rate)

    async def next(self) -> str | None:
        if self.box.pending_retries or self.ctx.stopping.is_set():
            return self.box.next()
        delay = self.schedule.delay()
        if delay:
            await asyncio.sleep(delay)
        self.schedule.advance()
        return self.box.next()

    def retry_first(self, mid: str) -> None:
        self.box.retry_first(mid)


class DeliveryTags:
    """Delivery tags on a channel count up by one from 1. A skipped tag means a delivery was lost
    in transit (packet-loss drops whole chunks: a frame-aligned one vanishes without a framing
    error); the broker holds it unacked until that channel closes, so it is stranded unless we
    close it. ``check``: None for the expected tag; the error text at a gap; "" for the later
    deliveries of a channel with a gap (ignored: the broker redelivers them all)."""

    def __init__(self) -> None:
        self.channel: object = None
        self.next = 1
        self.broken = False

    def check(self, channel: object, tag: int) -> str | None:
        if channel is not self.channel:  # a new channel (the robust connection reopened it)
            self.channel, self.next, self.broken = channel, 1, False
        if self.broken:
            return ""
        if tag != self.next:
            self.broken = True
            return (f"delivery tag {tag} after {self.next - 1}: a delivery was lost in transit; "
                    "reconnecting so the broker redelivers it")
        self.next += 1
        return None
