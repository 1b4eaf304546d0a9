"""The client protocol: how the harness starts a client process and what the client must write.

A client is any OS process. The harness starts it with the environment variable
``RABBIT_CHAOS_CONFIG`` naming a JSON file (also passed as ``--config PATH`` to Python
strategies); the file holds a :class:`ClientConfig`. The client appends history events
(see :mod:`harness.history`) to ``config.history``, one JSON object per line, flushed per line.

Contract (docs/client-protocol.md says the same for non-Python authors):

* First event ``client.start`` (with ``library`` and ``version``, and ``heartbeat_s`` /
  ``heartbeat_window_s``), last event ``client.exit`` (with ``reason``: "done", "sigterm", or
  the error that made it give up; ``ok``, and ``error`` when it gave up).
* Publisher: publish ``count`` messages (ids ``id_prefix + str(seq)``, seq from 0, body = the
  id as UTF-8, persistent unless the strategy is deliberately transient) at ``rate`` msg/s
  (0 = as fast as it can). For each message: ``publish.invoke`` before the library call, then
  exactly one of ``publish.ok`` (``confirmed`` true if the broker confirmed, false if the call
  merely returned), ``publish.fail`` (definite failure, e.g. nack) or ``publish.info`` (unknown
  outcome, e.g. connection lost before the confirm). A re-send after reconnect is a new
  ``publish.invoke`` of the same id. Exit 0 when every message has an outcome it accepts.
* Consumer: consume ``queue`` until SIGTERM; ``deliver`` (with ``redelivered``) for every message
  received, then ``work_s`` seconds of simulated processing, then ``ack`` after acking it.
  Never exit on its own unless it gives up.
* Connections: ``conn.open`` when a connection (re)opens, ``conn.lost`` when the library reports
  it gone, ``conn.blocked`` (``reason``)/``conn.unblocked`` on connection.blocked,
  ``channel.closed`` (``reason``, ``code``) when the broker closes a channel,
  ``consume.cancelled`` (``reason``) on the broker's basic.cancel. Name every connection
  ``"<run_id>/<proc>"`` (client property ``connection_name``) so broker logs join the history.
* SIGTERM: stop, flush, write ``client.exit`` reason "sigterm", exit 0 within ``grace_s``;
  the harness SIGKILLs after that and records it.

How the harness judges a client: a non-zero exit or a missing ``client.exit`` while the harness
still expected the client to run is recorded as ``proc.exit`` with ``expected: false``; the
checker then treats the client's history as valid up to that point (what it lost or stranded
counts) and, if no anomaly proves a ``fail``, says ``unknown`` with the reason. An event that
does not validate makes the whole history untrustworthy: verdict ``unknown``.
"""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field

from harness.history import HistoryWriter

CONFIG_ENV = "RABBIT_CHAOS_CONFIG"


class ClientConfig(BaseModel):
    """What a client process is told. Written by the runner as JSON."""

    run_id: str
    proc: str = Field(description='logical process name, e.g. "publisher-0"')
    role: Literal["publisher", "consumer"]
    amqp_url: str = Field(description="URL through the fault proxy, vhost included")
    queue: str
    history: str = Field(description="path of the JSONL file this process appends to")
    count: int = Field(1000, ge=0, description="publisher: messages to publish")
    rate: float = Field(200.0, ge=0, description="publisher: msg/s, 0 = unthrottled")
    id_prefix: str = "p0-"
    work_s: float = Field(0.0, ge=0, description="consumer: processing time per message before the ack; "
                          "slower than the publish rate builds the backlog a fault then finds in the queue")
    grace_s: float = 5.0
    params: dict[str, Any] = Field(default_factory=dict, description="strategy knobs")
    queue_type: Literal["classic", "quorum", "stream"] = Field(
        "classic", description="the queue's x-queue-type: declare it with exactly this argument "
        "(a redeclare with other arguments is refused by the broker: PRECONDITION_FAILED)")
    amqp_urls: list[str] = Field(default_factory=list, description="every broker node's URL through "
                                 "its own proxy (a cluster run), amqp_url first; empty on one node. "
                                 "A client that fails over connects to the next one when one fails")

    @property
    def connection_name(self) -> str:
        return f"{self.run_id}/{self.proc}"

    def param(self, name: str, default: Any) -> Any:
        return self.params.get(name, default)


def load_config(path: str | None = None) -> ClientConfig:
    path = path or os.environ.get(CONFIG_ENV)
    if not path:
        raise SystemExit(f"no client config: pass --config PATH or set {CONFIG_ENV}")
    return ClientConfig.model_validate(json.loads(Path(path).read_text()))


class ClientContext:
    """What a Python strategy gets: config, history writer, stop flag, pacing and ids."""

    def __init__(self, cfg: ClientConfig) -> None:
        self.cfg = cfg
        self.history = HistoryWriter(cfg.history, cfg.proc, cfg.role)
        self.stopping = threading.Event()
        #: the last error or close reason this client recorded (None until one happened)
        self.last_error: str | None = None

    def install_sigterm(self) -> None:
        """SIGTERM/SIGINT set ``stopping``; the strategy's loop notices and returns."""

        def handler(signum: int, frame: object) -> None:
            self.stopping.set()

        signal.signal(signal.SIGTERM, handler)
        signal.signal(signal.SIGINT, handler)

    def ids(self) -> Iterator[str]:
        """The message ids this publisher must publish, in order."""
        for seq in range(self.cfg.count):
            yield f"{self.cfg.id_prefix}{seq}"

    def paced(self, items: Iterator[str]) -> Iterator[str]:
        """Yield items no faster than ``rate``/s, on an absolute schedule (no drift).

        If the client fell behind (blocked by a fault), it does not burst to catch up beyond one
        interval: the schedule restarts from now, so a fault does not turn into a load spike.
        """
        rate = self.cfg.rate
        if rate <= 0:
            yield from items
            return
        interval = 1.0 / rate
        next_t = time.monotonic()
        for item in items:
            now = time.monotonic()
            if next_t > now:
                if self.stopping.wait(next_t - now):
                    return
            elif now - next_t > interval:
                next_t = now
            if self.stopping.is_set():
                return
            yield item
            next_t += interval

    # event helpers: one place that spells each event
    def event(self, kind: str, **fields: Any) -> None:
        """Write one event. The last error text a notice carried is kept in ``last_error``, so
        ``client.exit`` of a client that gives up can name what went wrong last."""
        text = fields.get("error") if kind in ERROR_KINDS else fields.get("reason") if kind in REASON_KINDS else None
        if text:
            self.last_error = str(text)
        self.history.write(kind, **fields)

    def blocked(self, reason: object = None) -> None:
        """``conn.blocked``: the library told the application the broker sent
        connection.blocked (a resource alarm); ``reason`` is the broker's text when the library
        passes it on (RabbitMQ says e.g. "low on memory")."""
        if reason:
            self.event("conn.blocked", reason=_text(reason))
        else:
            self.event("conn.blocked")

    def unblocked(self) -> None:
        """``conn.unblocked``: connection.unblocked, the alarm cleared."""
        self.event("conn.unblocked")

    def channel_closed(self, reason: object, code: object = None) -> None:
        """``channel.closed``: the broker (or the library) closed a channel under the client,
        e.g. 404 NOT_FOUND after the queue was deleted, 406 PRECONDITION_FAILED after a consumer
        timeout. ``code`` is the AMQP reply code when the library gives one."""
        fields: dict[str, Any] = {"reason": _text(reason) or "channel closed"}
        try:
            if code is not None and int(code) > 0:  # type: ignore[call-overload]
                fields["code"] = int(code)  # type: ignore[call-overload]
        except (TypeError, ValueError):
            pass
        self.event("channel.closed", **fields)

    def consume_cancelled(self, reason: object) -> None:
        """``consume.cancelled``: the broker cancelled the consumer (basic.cancel: the queue was
        deleted, or RabbitMQ 4.3's consumer timeout), with the library's or our wording."""
        self.event("consume.cancelled", reason=_text(reason) or "basic.cancel from the broker")

    def exit(self, reason: str, ok: bool, error: str | None = None) -> None:
        """``client.exit``, the last event: ``ok`` true for "done"/"sigterm"; false when the
        client gave up, with ``error`` the error that ended it (or the last one it recorded)."""
        fields: dict[str, Any] = {"reason": reason, "ok": ok}
        if not ok:
            fields["error"] = error or self.last_error or reason
        self.event("client.exit", **fields)


#: notice kinds whose ``error`` / ``reason`` field is an error worth naming at a give-up
ERROR_KINDS = frozenset({"conn.lost", "publish.fail", "publish.info"})
REASON_KINDS = frozenset({"channel.closed", "consume.cancelled"})


def _text(value: object) -> str:
    """Library reasons come as str, bytes (py-amqp, pika frames) or exceptions."""
    if value is None:
        return ""
    if isinstance(value, bytes | bytearray):
        return value.decode("utf-8", errors="replace")
    return str(value)
