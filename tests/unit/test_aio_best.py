"""Pure parts of aio-pika-best and aioamqp-best (no broker): the delivery-tag gap check, the
back-off, aioamqp URL decoding. Their behaviour under faults: tests/integration/test_best_practice.py."""

from __future__ import annotations

import asyncio
from pathlib import Path

from harness.clients.protocol import ClientConfig, ClientContext
from harness.clients.strategies import aio_pika_best, aioamqp_best
from harness.clients.strategies._aio import DeliveryTags
from harness.clients.strategies._aioamqp import url_params


def _ctx(tmp_path: Path, **params: object) -> ClientContext:
    cfg = ClientConfig.model_validate({"run_id": "r", "proc": "consumer-0", "role": "consumer",
                                       "amqp_url": "amqp://g:g@127.0.0.1:1/v", "queue": "q",
                                       "history": str(tmp_path / "h.jsonl"), "params": params})
    return ClientContext(cfg)


def test_delivery_tags_in_order_pass_and_a_new_channel_restarts_at_one() -> None:
    tags, a, b = DeliveryTags(), object(), object()
    assert [tags.check(a, t) for t in (1, 2, 3)] == [None, None, None]
    assert tags.check(b, 1) is None  # reopened channel: tags restart
    assert tags.check(b, 2) is None


def test_delivery_tag_gap_is_named_once_then_that_channel_is_ignored() -> None:
    tags, a, b = DeliveryTags(), object(), object()
    assert tags.check(a, 1) is None
    gap = tags.check(a, 3)
    assert gap and "delivery tag 3 after 1" in gap
    assert tags.check(a, 4) == ""  # later deliveries of the broken channel: ignored, not re-reported
    assert tags.check(b, 1) is None  # the next channel is judged afresh


def test_aioamqp_url_is_percent_decoded() -> None:
    p = url_params("amqp://us%3Aer:p%40ss@127.0.0.1:5673/rc-cons-timeout%2Bforce-close")
    assert p["virtualhost"] == "rc-cons-timeout+force-close"
    assert (p["login"], p["password"], p["host"], p["port"]) == ("us:er", "p@ss", "127.0.0.1", 5673)
    assert url_params("amqp://127.0.0.1/")["virtualhost"] == "/"


def test_aio_pika_best_backoff_doubles_to_its_cap_and_resets(tmp_path: Path) -> None:
    b = aio_pika_best.Backoff(_ctx(tmp_path, retry_delay_s=0.5, max_retry_delay_s=3))
    assert [b.take() for _ in range(5)] == [0.5, 1.0, 2.0, 3.0, 3.0]
    b.reset()
    assert b.take() == 0.5


def test_aioamqp_best_backoff_stops_waiting_at_sigterm(tmp_path: Path) -> None:
    ctx = _ctx(tmp_path, retry_delay_s=30.0)
    ctx.stopping.set()
    assert asyncio.run(aioamqp_best.Backoff(ctx).wait()) is False  # returns at once, not after 30 s


def test_best_strategies_default_to_a_heartbeat_inside_the_silent_columns() -> None:
    # partition / hb-starve run clients at heartbeat 5 s (harness/matrix_defaults.py)
    assert aio_pika_best.PARAMS["heartbeat"] == 5 and aioamqp_best.PARAMS["heartbeat"] == 5
    # every deadline that tells the application comes inside the checker's max_block_s (10 s)
    assert aio_pika_best.PARAMS["confirm_timeout_s"] < 10 and aioamqp_best.PARAMS["confirm_timeout_s"] < 10
