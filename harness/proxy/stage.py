"""A stage: one toxic applied to one direction of one connection (Toxiproxy's ToxicStub).

A link with toxics is a chain ``source -> stage -> stage -> writer``. Each active stage owns a
queue of items and one task running its toxic's ``pipe``. The toxic sees a tiny API: ``take()``
the next item, then ``emit()`` (forward) or ``drop()`` (discard) bytes of it, or ``close()``.

Why "pending" instead of handing the chunk to the toxic: an item the toxic has taken stays in
``pending`` until it is emitted or dropped. So a toxic can be cancelled at any ``await`` (it is
removed or updated under traffic) and nothing it held is lost or reordered: removal forwards
``pending`` and then the queue to the next stage; an update restarts the toxic on ``pending``.
All of this runs synchronously in the event loop, so changing toxics never waits on traffic
(Toxiproxy issues #159 and #558 were API calls hanging on a blocked chain).
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections import deque
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from harness.proxy.link import Link
    from harness.proxy.toxic_collection import ToxicSpec

log = logging.getLogger(__name__)


class Marker:
    """End-of-stream markers that travel through the chain behind the data."""

    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return self.name


#: The source closed (or a toxic closed the stream): the writer closes its destination.
EOF = Marker("EOF")

#: (timestamp from loop.time() when the bytes were read, bytes or a Marker)
Item = tuple[float, "bytes | Marker"]


class Sink(Protocol):
    """Where a stage sends its output: the next stage or the link's writer."""

    def push(self, item: Item) -> None: ...


class Stage:
    """Per-connection state of one toxic; the toxic's ``pipe(stage)`` uses the methods below."""

    __slots__ = ("_pending", "_queue", "_task", "_waiter", "active", "closed", "link", "next", "spec",
                 "state", "toxic")

    def __init__(self, link: Link, spec: ToxicSpec, next_sink: Sink) -> None:
        self.link = link
        self.spec = spec
        self.toxic = spec.toxic
        self.next: Sink = next_sink
        self.state: Any = self.toxic.new_state()
        self.active = False
        self.closed = False
        self._queue: deque[Item] = deque()
        self._pending: Item | None = None
        self._waiter: asyncio.Future[None] | None = None
        self._task: asyncio.Task[None] | None = None

    # -- lifecycle, driven by the link -------------------------------------------------------
    def start(self) -> None:
        """Roll toxicity (Toxiproxy rolls ``rand < toxicity`` each time a stub starts running the
        toxic) and run the toxic; an inactive stage forwards everything untouched, with no task."""
        self.active = random.random() < self.spec.toxicity
        if self.active:
            self._task = asyncio.get_running_loop().create_task(self._run())
        else:
            self._flush_to_next()

    def restart(self) -> None:
        """The toxic's attributes or toxicity changed: run it again from where it stood."""
        if self.closed:
            return
        self._cancel()
        self.link.release_hold(self)
        self.start()

    def detach(self) -> None:
        """Removal: stop the toxic and hand what it held, in order, to the next sink."""
        self._cancel()
        self.link.release_hold(self)
        if not self.closed:
            self._flush_to_next()
        self.closed = True

    def cancel(self) -> None:
        """The connection is gone: stop without forwarding anything."""
        self._cancel()
        self.closed = True
        self._pending = None
        self._queue.clear()

    def _cancel(self) -> None:
        if self._task is not None:
            self._task.cancel()
            self._task = None

    def _flush_to_next(self) -> None:
        nxt = self.next
        if self._pending is not None:
            item, self._pending = self._pending, None
            nxt.push(item)
        queue = self._queue
        while queue:
            nxt.push(queue.popleft())

    async def _run(self) -> None:
        try:
            await self.toxic.pipe(self)
        except asyncio.CancelledError:
            raise
        except Exception:  # a broken toxic must close its connection, never wedge it silently
            log.exception("toxic %s failed; closing its connection", self.spec.name)
            self.close()

    # -- input, from the previous sink ------------------------------------------------------
    def push(self, item: Item) -> None:
        if self.closed:
            data = item[1]
            if isinstance(data, bytes):
                self.link.discard(len(data))
        elif not self.active:
            self.next.push(item)
        else:
            self._queue.append(item)
            waiter = self._waiter
            if waiter is not None and not waiter.done():
                waiter.set_result(None)

    # -- the API toxics use ------------------------------------------------------------------
    async def take(self, timeout: float | None = None) -> Item | None:
        """The item to work on: the pending one if any, else the next queued (waiting for it).
        With ``timeout`` (seconds), returns None if nothing arrived in time."""
        if self._pending is not None:
            return self._pending
        queue = self._queue
        if not queue:
            loop = asyncio.get_running_loop()
            waiter: asyncio.Future[None] = loop.create_future()
            self._waiter = waiter
            timer = None
            if timeout is not None:
                timer = loop.call_later(max(timeout, 0.0), _expire, waiter)
            try:
                while not queue:
                    await waiter
                    if not queue:
                        return None  # timed out
            finally:
                if self._waiter is waiter:
                    self._waiter = None
                if timer is not None:
                    timer.cancel()
        self._pending = queue.popleft()
        return self._pending

    async def take_data(self) -> bytes | None:
        """The pending chunk's bytes, for toxics that only transform bytes. At EOF the stage is
        closed (EOF passed on) and None returned: the toxic's loop ends there."""
        item = await self.take()
        assert item is not None
        data = item[1]
        if data is EOF:
            self.close()
            return None
        assert isinstance(data, bytes)
        return data

    def emit(self, n: int | None = None, ts: float | None = None) -> None:
        """Forward the first ``n`` bytes of the pending item (all of it by default)."""
        pending = self._pending
        if pending is None:
            return
        t0, data = pending
        if n is None or not isinstance(data, bytes) or n >= len(data):
            self._pending = None
            part = data
        else:
            part = data[:n]
            self._pending = (t0, data[n:])
        self.next.push((t0 if ts is None else ts, part))

    def drop(self, n: int | None = None) -> None:
        """Discard the first ``n`` bytes of the pending item (all of it by default)."""
        pending = self._pending
        if pending is None:
            return
        t0, data = pending
        if not isinstance(data, bytes):
            self._pending = None
            return
        if n is None or n >= len(data):
            self._pending = None
            self.link.discard(len(data))
        else:
            self._pending = (t0, data[n:])
            self.link.discard(n)

    def close(self) -> None:
        """End the stream here (Toxiproxy's ``stub.Close()``): what this stage still holds is
        discarded and the next stage sees EOF right away."""
        if self.closed:
            return
        self.closed = True
        dropped = 0
        if self._pending is not None and isinstance(self._pending[1], bytes):
            dropped += len(self._pending[1])
        for _, data in self._queue:
            if isinstance(data, bytes):
                dropped += len(data)
        self._pending = None
        self._queue.clear()
        self.link.discard(dropped)
        self.next.push((self.link.now(), EOF))
        task = self._task
        if task is not None and task is not asyncio.current_task():
            task.cancel()
        self._task = None

    def hold(self) -> None:
        """Stop the link reading its source while this stage is active (the ``hold`` toxic)."""
        self.link.add_hold(self)

    @property
    def queued_bytes(self) -> int:
        n = 0
        if self._pending is not None and isinstance(self._pending[1], bytes):
            n += len(self._pending[1])
        return n + sum(len(d) for _, d in self._queue if isinstance(d, bytes))


def _expire(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_result(None)
