"""The best-practice consumers' message handling without a broker: idempotent redelivery (an id
already processed is acked again, not processed again, and ``deliver`` keeps the AMQP flag) and
the delivery-tag gap check (a skipped tag raises, so the strategy reconnects and the broker
redelivers what was lost in transit); plus the reconnect back-off's bounds."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from harness.clients.protocol import ClientConfig, ClientContext
from harness.clients.strategies import kombu_best, pika_best
from harness.clients.strategies._pika import Backoff


def make_ctx(tmp_path: Path) -> ClientContext:
    cfg = ClientConfig.model_validate({
        "run_id": "r", "proc": "consumer-0", "role": "consumer", "amqp_url": "amqp://guest:guest@127.0.0.1:1/v",
        "queue": "q", "history": str(tmp_path / "h.jsonl"), "work_s": 0.0})
    return ClientContext(cfg)


def events(ctx: ClientContext) -> list[tuple[str, Any, Any]]:
    ctx.history.close()
    rows = [json.loads(line) for line in Path(ctx.cfg.history).read_text().splitlines()]
    return [(e["kind"], e.get("id"), e.get("redelivered")) for e in rows]


@dataclass
class Method:
    delivery_tag: int
    redelivered: bool = False


@dataclass
class FakePikaChannel:
    acked: list[int] = field(default_factory=list)
    is_open: bool = True

    def basic_ack(self, delivery_tag: int) -> None:
        self.acked.append(delivery_tag)


@dataclass
class FakeKombuMessage:
    body: bytes
    delivery_tag: int
    redelivered: bool = False
    acked: bool = False

    @property
    def delivery_info(self) -> dict[str, Any]:
        return {"redelivered": self.redelivered}

    def ack(self) -> None:
        self.acked = True


def test_pika_best_acks_a_redelivery_of_processed_work_and_records_it(tmp_path: Path) -> None:
    ctx = make_ctx(tmp_path)
    c = pika_best._Consumer(ctx)
    ch = FakePikaChannel()
    c.on_message(ch, Method(1), None, b"p0-1")  # type: ignore[arg-type]
    c.next_tag = 1  # a new channel after a reconnect: tags start again
    c.on_message(ch, Method(1, redelivered=True), None, b"p0-1")  # type: ignore[arg-type]
    assert ch.acked == [1, 1]
    assert c.processed == {"p0-1"}
    assert events(ctx) == [("deliver", "p0-1", False), ("ack", "p0-1", None),
                           ("deliver", "p0-1", True), ("ack", "p0-1", None)]


def test_pika_best_raises_on_a_delivery_tag_gap(tmp_path: Path) -> None:
    ctx = make_ctx(tmp_path)
    c = pika_best._Consumer(ctx)
    ch = FakePikaChannel()
    c.on_message(ch, Method(1), None, b"p0-1")  # type: ignore[arg-type]
    with pytest.raises(pika_best.DeliveryGap, match="delivery tag 3 after 1"):
        c.on_message(ch, Method(3), None, b"p0-3")  # type: ignore[arg-type]
    assert ch.acked == [1]  # the message after the gap is neither recorded nor acked: it comes again


def test_pika_best_does_not_ack_on_a_channel_closed_during_the_work(tmp_path: Path) -> None:
    """A 406 consumer timeout closes the channel while the message is processed: no ack can go
    (the broker redelivers it), none is recorded, and the redelivery is acked without the work."""
    ctx = make_ctx(tmp_path)
    c = pika_best._Consumer(ctx)
    closed = FakePikaChannel(is_open=False)
    c.on_message(closed, Method(1), None, b"p0-4")  # type: ignore[arg-type]
    assert closed.acked == [] and c.processed == {"p0-4"}
    assert events(ctx) == [("deliver", "p0-4", False)]


def test_kombu_best_is_idempotent_and_checks_tags(tmp_path: Path) -> None:
    ctx = make_ctx(tmp_path)
    c = kombu_best._Consumer(ctx)
    first = FakeKombuMessage(b"p0-7", 1)
    c.on_message(first)  # type: ignore[arg-type]
    c.next_tag = 1
    again = FakeKombuMessage(b"p0-7", 1, redelivered=True)
    c.on_message(again)  # type: ignore[arg-type]
    assert first.acked and again.acked
    with pytest.raises(kombu_best.DeliveryGap):
        c.on_message(FakeKombuMessage(b"p0-9", 5))  # type: ignore[arg-type]
    assert events(ctx) == [("deliver", "p0-7", False), ("ack", "p0-7", None),
                           ("deliver", "p0-7", True), ("ack", "p0-7", None)]


def test_backoff_grows_to_its_cap_with_jitter_and_resets() -> None:
    b = Backoff(0.5, 4.0)
    delays = [b.next() for _ in range(8)]
    caps = [min(4.0, 0.5 * 2 ** i) for i in range(8)]
    assert all(cap / 2 <= d <= cap for d, cap in zip(delays, caps, strict=True))
    b.reset()
    assert 0.25 <= b.next() <= 0.5


def test_kombu_watchdog_names_the_deadline_that_ran_out() -> None:
    dog = kombu_best.Watchdog()
    err = OSError("Server unexpectedly closed connection")
    assert dog.explain(err) == "OSError: Server unexpectedly closed connection"
    assert dog.cause(err) is err
    dog.expired = "confirm (confirm_timeout_s=6) timed out: nothing within 6 s (outcome unknown)"
    assert dog.explain(err).startswith("confirm (confirm_timeout_s=6) timed out")
    assert isinstance(dog.cause(err), kombu_best.DeadlineExpired)
