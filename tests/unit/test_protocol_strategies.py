"""Every strategy module honours the registry contract, and the shared helpers behave (no broker)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from harness.clients.protocol import ClientConfig, ClientContext
from harness.clients.registry import strategies
from harness.clients.strategies._common import Outbox, body_id, describe, record_delivery
from harness.history import validate_event


def make_ctx(tmp_path: Path, role: str = "publisher", **over: object) -> ClientContext:
    cfg = ClientConfig.model_validate({
        "run_id": "r", "proc": f"{role}-0", "role": role, "amqp_url": "amqp://guest:guest@127.0.0.1:1/v",
        "queue": "q", "history": str(tmp_path / "h.jsonl"), "count": 3, "rate": 0, **over})
    return ClientContext(cfg)


def test_every_strategy_module_has_the_contract() -> None:
    found = strategies()
    assert {"pika-recover", "pika-naive"} <= set(found)
    for s in found.values():
        mod = s.load()
        assert callable(mod.publisher) and callable(mod.consumer), s.name
        assert s.description and s.library, s.name
        assert all(isinstance(k, str) for k in s.params), s.name
        json.dumps(s.params)  # params go into results.json


def test_private_helper_modules_are_not_strategies() -> None:
    assert not any(s.module.rsplit(".", 1)[1].startswith("_") for s in strategies().values())


def test_outbox_resends_before_fresh_ids(tmp_path: Path) -> None:
    ctx = make_ctx(tmp_path)
    box = Outbox(ctx)
    assert box.next() == "p0-0"
    assert box.next() == "p0-1"
    box.retry("p0-0")
    box.retry_first("p0-1")
    assert [box.next(), box.next(), box.next(), box.next()] == ["p0-1", "p0-0", "p0-2", None]


def test_outbox_stops_on_sigterm(tmp_path: Path) -> None:
    ctx = make_ctx(tmp_path)
    box = Outbox(ctx)
    box.retry("x")
    ctx.stopping.set()
    assert box.next() is None


def test_record_delivery_writes_a_valid_event(tmp_path: Path) -> None:
    ctx = make_ctx(tmp_path, role="consumer")
    assert record_delivery(ctx, b"p0-7", redelivered=1) == "p0-7"  # type: ignore[arg-type]
    ctx.history.close()
    (line,) = (tmp_path / "h.jsonl").read_text().splitlines()
    ev = json.loads(line)
    assert validate_event(ev) == [] and ev["redelivered"] is True and ev["id"] == "p0-7"


@pytest.mark.parametrize(("body", "expected"), [(b"p0-1", "p0-1"), ("p0-2", "p0-2"), (bytearray(b"a"), "a")])
def test_body_id(body: bytes | str, expected: str) -> None:
    assert body_id(body) == expected


def test_describe_names_the_type_even_when_str_is_empty() -> None:
    assert describe(ConnectionError()).startswith("ConnectionError: ")
    assert describe(ValueError("boom")) == "ValueError: boom"
