#!/usr/bin/env python3
"""aio-pika ``connect_robust`` consumer that keeps its channel but not its queue object: the
queue is declared and consumed in a setup coroutine, and only the channel outlives it (why keep
a queue you only consume from?). aio-pika 9.4.3's RobustChannel remembers the queues to restore
in a ``WeakSet``: once the RobustQueue is garbage-collected the channel forgets it, and after a
reconnect the channel is reopened but the queue's consumer is not: the process is connected,
healthy-looking, and consumes nothing, forever. aio-pika #594 ("RobustChannel may fail to
restore queues due to WeakSet": one queue "has always disappeared" after reconnects); the same
symptom in aio-pika #626 and #231 (9.4.x: "RabbitMQ has 0 consumer for that queue" after a
reconnect), Propan #50. Fixed by aio-pika PR #666 ("Replace WeakSet with set for robust
channels tracking"), in 9.5.5 here: the same code recovers its consumer.

    examples/bugs/setup.sh
    rabbit-chaos run --client-cmd "examples/bugs/.venv-aiopika943/bin/python examples/bugs/aio_pika_943_robust.py" \
        --client aio-pika-9.4.3 --fault force-close:target=consumer
    rabbit-chaos run --client-cmd "examples/bugs/.venv-aiopika955/bin/python examples/bugs/aio_pika_943_robust.py" \
        --client aio-pika-9.5.5 --fault force-close:target=consumer

Expected verdicts: 9.4.3 fail (consumer lost: the broker lists no consumer while the process
runs; the messages published after the close stranded; recovery never); 9.5.5 pass.

Knobs (``--param``): ``gc`` (0; 1 runs ``gc.collect()`` after setup. Not needed: measured,
the RobustQueue is in no reference cycle, so reference counting frees it, and the WeakSet
forgets it, the moment the setup coroutine returns; the log says "tracks 0 queue(s)" either way),
``reconnect_interval_s`` (1; aio-pika's default is 5), ``prefetch`` (100),
``publish_timeout_s`` (10), ``retry_delay_s`` (1).
The publisher is a plain correct one (robust connection, confirms, re-send after errors).
"""

from __future__ import annotations

import asyncio
import collections
import gc
import sys
import threading
import time
from typing import Any

import aio_pika
from _protocol import Client, describe, run
from aio_pika.abc import AbstractIncomingMessage, AbstractRobustChannel, AbstractRobustConnection
from yarl import URL

#: set before this process closes its own connection (its close callbacks must not say "lost")
CLOSING = threading.Event()


def aiormq_window(heartbeat: int) -> list[float]:
    """aiormq closes a silent connection 3(hb+1) .. 3(hb+1) + max(1, hb//2) s after its last frame."""
    grace = (heartbeat + 1) * 3
    return [grace, grace + max(1, heartbeat // 2)]


async def connect(c: Client) -> AbstractRobustConnection:
    """A robust connection whose opens and losses are written as events. The connection name
    and reconnect interval go in the URL query (aio-pika's documented ``?name=``): with a URL,
    ``connect_robust`` ignores its ``client_properties`` argument."""
    url = URL(c.cfg["amqp_url"]).update_query(
        name=c.connection_name, reconnect_interval=str(float(c.param("reconnect_interval_s", 1.0))))
    conn = await aio_pika.connect_robust(url)
    c.event("conn.open")
    conn.reconnect_callbacks.add(lambda _conn: c.event("conn.open", reconnect=True))
    conn.close_callbacks.add(
        lambda _conn, exc=None: None if c.stopping.is_set() or CLOSING.is_set() else c.event(
            "conn.lost", error=describe(exc) if isinstance(exc, BaseException) else str(exc)))
    return conn


async def until_stopping(c: Client) -> None:
    while not c.stopping.is_set():
        await asyncio.sleep(0.2)


async def consumer(c: Client) -> None:
    work_s = float(c.cfg.get("work_s") or 0)

    async def on_message(message: AbstractIncomingMessage) -> None:
        mid = message.body.decode()
        c.event("deliver", id=mid, redelivered=bool(message.redelivered))
        if work_s:
            await asyncio.sleep(work_s)
        try:
            await message.ack()
        except Exception as exc:  # noqa: BLE001 (channel gone: the broker redelivers it)
            print("ack failed:", describe(exc), file=sys.stderr)
            return
        c.event("ack", id=mid)

    async def start_consuming(channel: AbstractRobustChannel) -> None:
        # THE PATTERN: the queue object is local to this coroutine; only the channel is kept
        queue = await channel.declare_queue(c.cfg["queue"], durable=True)
        await queue.consume(on_message)

    conn = await connect(c)
    channel = await conn.channel()
    await channel.set_qos(prefetch_count=int(c.param("prefetch", 100)))
    await start_consuming(channel)
    if c.param("gc", False):
        gc.collect()
    tracked = getattr(channel, "_queues", {})
    print(f"after setup: the channel tracks {sum(len(v) for v in tracked.values())} queue(s) to restore",
          flush=True)
    await until_stopping(c)
    CLOSING.set()
    await conn.close()


async def publisher(c: Client) -> None:
    timeout = float(c.param("publish_timeout_s", 10.0))
    retry_delay = float(c.param("retry_delay_s", 1.0))
    rate = float(c.cfg.get("rate") or 0)
    interval = 1.0 / rate if rate > 0 else 0.0
    conn = await connect(c)
    channel = await conn.channel(publisher_confirms=True)
    owed: collections.deque[str] = collections.deque()
    fresh = iter(c.ids())
    due = time.monotonic()
    while not c.stopping.is_set():
        mid: str | None = owed.popleft() if owed else None
        if mid is None:
            mid = next(fresh, None)
            if mid is None:
                break
            if interval:  # absolute schedule, restarted after falling behind (no burst)
                now = time.monotonic()
                if due > now:
                    await asyncio.sleep(due - now)
                elif now - due > interval:
                    due = now
                due += interval
        c.event("publish.invoke", id=mid)
        try:
            await channel.default_exchange.publish(
                aio_pika.Message(mid.encode(), delivery_mode=aio_pika.DeliveryMode.PERSISTENT),
                routing_key=c.cfg["queue"], timeout=timeout)
        except Exception as exc:  # noqa: BLE001 (nack, timeout, connection gone: outcome unknown)
            c.event("publish.info", id=mid, error=describe(exc))
            owed.appendleft(mid)
            await asyncio.sleep(retry_delay)
            continue
        c.event("publish.ok", id=mid, confirmed=True)
    CLOSING.set()
    await conn.close()


def main() -> int:
    c = Client()
    roles: dict[str, Any] = {"consumer": lambda cl: asyncio.run(consumer(cl)),
                             "publisher": lambda cl: asyncio.run(publisher(cl))}
    return run(c, "aio-pika", aio_pika.__version__, roles, pattern="robust-queue-not-kept",
               heartbeat_s=60, heartbeat_window_s=aiormq_window(60))


if __name__ == "__main__":
    sys.exit(main())
