"""Two AMQP publishers for the proxy benchmark: one confirm at a time, and a confirm window.

Why two: they measure different things. ``publish_sync`` (pika BlockingConnection, each publish
waits for its confirm) is bound by the round trip, so its ratio is the proxy's added latency
and nothing else: two extra socket hops per message, which no user-space proxy makes free
(+50 µs on a 110 µs loopback round trip is a 0.67 ratio). ``publish_window`` keeps ``window``
publishes unconfirmed (pika SelectConnection, confirms acked as they come, ``multiple`` honoured),
as a publisher that cares about throughput does; its ratio is what a realistic client loses
through the proxy, and the one comparable with the real Toxiproxy figure in DESIGN.md (0.87-0.92).

Both use pika, 256-byte bodies, an exclusive auto-delete queue, heartbeats off, and return
``msg_s`` and confirm latency ``p50_ms``/``p99_ms`` (publish call -> its confirm).
"""

from __future__ import annotations

import time
from typing import Any

BODY = b"x" * 256


def _summary(lat: list[float], elapsed: float) -> dict[str, float]:
    lat.sort()
    if not lat or elapsed <= 0:
        return {"msg_s": 0.0, "p50_ms": 0.0, "p99_ms": 0.0}
    return {"msg_s": round(len(lat) / elapsed, 1),
            "p50_ms": round(lat[len(lat) // 2] * 1e3, 3),
            "p99_ms": round(lat[min(len(lat) - 1, int(len(lat) * 0.99))] * 1e3, 3)}


def _params(host: str, port: int) -> Any:
    import pika

    return pika.ConnectionParameters(host=host, port=port, heartbeat=0, blocked_connection_timeout=30,
                                     client_properties={"connection_name": "rabbit-chaos bench proxy"})


def publish_sync(host: str, port: int, seconds: float) -> dict[str, float]:
    """One publish at a time, each waiting for its confirm (latency-bound)."""
    import pika

    conn = pika.BlockingConnection(_params(host, port))
    try:
        ch = conn.channel()
        ch.confirm_delivery()
        queue = ch.queue_declare("", exclusive=True, auto_delete=True).method.queue
        for _ in range(50):  # warm-up
            ch.basic_publish("", queue, BODY)
        lat: list[float] = []
        t0 = time.monotonic()
        while time.monotonic() - t0 < seconds:
            t = time.perf_counter()
            ch.basic_publish("", queue, BODY)  # returns when the broker confirmed it
            lat.append(time.perf_counter() - t)
        elapsed = time.monotonic() - t0
        ch.queue_delete(queue)
    finally:
        conn.close()
    return _summary(lat, elapsed)


class _WindowPublisher:
    """pika SelectConnection callbacks: keep ``window`` publishes unconfirmed for ``seconds``,
    then stop publishing, wait for the last confirms and close."""

    def __init__(self, seconds: float, window: int) -> None:
        self.seconds = seconds
        self.window = window
        self.channel: Any = None
        self.queue = ""
        self.sent_at: dict[int, float] = {}  # delivery tag -> publish time
        self.next_tag = 1
        self.lat: list[float] = []
        self.t0 = 0.0
        self.elapsed = 0.0
        self.measuring = False
        self.error: str | None = None

    def on_open(self, conn: Any) -> None:
        conn.channel(on_open_callback=self.on_channel)

    def on_channel(self, ch: Any) -> None:
        self.channel = ch
        ch.confirm_delivery(self.on_confirm, callback=lambda _frame: ch.queue_declare(
            "", exclusive=True, auto_delete=True, callback=self.on_declared))

    def on_declared(self, frame: Any) -> None:
        self.queue = frame.method.queue
        self.t0 = time.monotonic() + 0.2  # the first 0.2 s warm the path up and are not counted
        self.fill()

    def fill(self) -> None:
        ch, now = self.channel, time.monotonic()
        if now - self.t0 >= self.seconds:
            if not self.sent_at:
                self.finish()
            return
        while len(self.sent_at) < self.window:
            self.sent_at[self.next_tag] = time.perf_counter()
            self.next_tag += 1
            ch.basic_publish("", self.queue, BODY)

    def on_confirm(self, frame: Any) -> None:
        method = frame.method
        if method.NAME != "Basic.Ack":
            self.error = f"broker nacked delivery tag {method.delivery_tag}"
        now, measuring = time.perf_counter(), time.monotonic() >= self.t0
        tags = [t for t in self.sent_at if t <= method.delivery_tag] if method.multiple else [method.delivery_tag]
        for tag in tags:
            sent = self.sent_at.pop(tag, None)
            if sent is not None and measuring:
                self.lat.append(now - sent)
        self.fill()

    def finish(self) -> None:
        self.elapsed = time.monotonic() - self.t0
        self.channel.queue_delete(self.queue, callback=lambda _f: self.channel.connection.close())


def publish_window(host: str, port: int, seconds: float, window: int = 64) -> dict[str, float]:
    """``window`` publishes in flight, confirms handled as they arrive (throughput-bound)."""
    import pika

    pub = _WindowPublisher(seconds, window)

    def stop(c: Any, *_: Any) -> None:
        c.ioloop.stop()

    conn = pika.SelectConnection(_params(host, port), on_open_callback=pub.on_open,
                                 on_open_error_callback=stop, on_close_callback=stop)
    deadline = conn.ioloop.call_later(seconds + 30, conn.ioloop.stop)
    conn.ioloop.start()
    conn.ioloop.remove_timeout(deadline)
    if pub.error:
        raise RuntimeError(pub.error)
    if not pub.elapsed:
        raise RuntimeError(f"windowed publisher to {host}:{port} did not finish")
    # confirms that arrived before t0 (warm-up) are not in lat; the publishes after t0 are
    return _summary(pub.lat, pub.elapsed)
