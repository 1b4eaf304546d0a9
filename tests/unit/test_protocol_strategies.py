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


def events(tmp_path: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in (tmp_path / "h.jsonl").read_text().splitlines()]


def test_notice_helpers_write_valid_events(tmp_path: Path) -> None:
    ctx = make_ctx(tmp_path, role="consumer")
    ctx.blocked(b"low on memory")
    ctx.blocked()
    ctx.unblocked()
    ctx.channel_closed("NOT_FOUND - no queue 'q'", 404)
    ctx.channel_closed(RuntimeError("gone"), code=None)
    ctx.channel_closed("odd", code="x")  # a library's non-numeric code is dropped, not written
    ctx.consume_cancelled("")
    ctx.history.close()
    evs = events(tmp_path)
    assert all(validate_event(e) == [] for e in evs)
    assert [e.get("reason") for e in evs] == ["low on memory", None, None, "NOT_FOUND - no queue 'q'", "gone", "odd",
                                              "basic.cancel from the broker"]
    assert [e.get("code") for e in evs if e["kind"] == "channel.closed"] == [404, None, None]


def test_exit_names_the_error_a_give_up_ended_with(tmp_path: Path) -> None:
    ctx = make_ctx(tmp_path, role="consumer")
    ctx.event("conn.lost", error="ConnectionResetError: peer")
    ctx.exit("RuntimeError: boom", ok=False, error="RuntimeError: boom")
    ctx.history.close()
    assert events(tmp_path)[-1] == {**events(tmp_path)[-1], "kind": "client.exit", "ok": False,
                                    "error": "RuntimeError: boom"}


def test_exit_falls_back_to_the_last_recorded_error(tmp_path: Path) -> None:
    ctx = make_ctx(tmp_path, role="consumer")
    ctx.event("conn.lost", error="ConnectionResetError: peer")
    ctx.channel_closed("PRECONDITION_FAILED - timeout", 406)
    ctx.exit("gave up", ok=False)
    ctx.history.close()
    assert events(tmp_path)[-1]["error"] == "PRECONDITION_FAILED - timeout"


def test_exit_ok_has_no_error(tmp_path: Path) -> None:
    ctx = make_ctx(tmp_path)
    ctx.event("publish.info", id="p0-0", error="timed out")
    ctx.exit("done", ok=True)
    ctx.history.close()
    last = events(tmp_path)[-1]
    assert last["ok"] is True and "error" not in last and last["reason"] == "done"


# ---- what each library's errors and callbacks become (no broker) --------------------------------

def test_pika_channel_close_is_channel_closed_and_connection_close_is_conn_lost(tmp_path: Path) -> None:
    import pika.exceptions

    from harness.clients.strategies import _pika

    ctx = make_ctx(tmp_path, role="consumer")
    _pika.notice(ctx, pika.exceptions.ChannelClosedByBroker(404, "NOT_FOUND - no queue 'q'"))
    _pika.notice(ctx, pika.exceptions.ConnectionClosedByBroker(320, "CONNECTION_FORCED"))
    ctx.history.close()
    closed, lost = events(tmp_path)
    assert (closed["kind"], closed["code"], closed["reason"]) == ("channel.closed", 404, "NOT_FOUND - no queue 'q'")
    assert lost["kind"] == "conn.lost" and "CONNECTION_FORCED" in str(lost["error"])


def test_pika_blocked_timeout_text_names_the_deadline(tmp_path: Path) -> None:
    import pika.exceptions

    from harness.clients.strategies import _pika

    ctx = make_ctx(tmp_path, params={"blocked_connection_timeout": 5})
    text = _pika.error_text(ctx, pika.exceptions.ConnectionBlockedTimeout("Blocked connection timeout expired"))
    assert "blocked_connection_timeout=5 s" in text


def test_kombu_errors_become_their_notices(tmp_path: Path) -> None:
    import amqp.exceptions

    from harness.clients.strategies import _kombu
    from harness.clients.strategies._common import LossTracker

    ctx = make_ctx(tmp_path, role="consumer", params={"confirm_timeout_s": 5})
    tracker = LossTracker(ctx)
    tracker.opened()
    _kombu.notice(ctx, tracker, amqp.exceptions.ConsumerCancelled("amq.ctag-1", (60, 30)))
    _kombu.notice(ctx, tracker, amqp.exceptions.NotFound("NOT_FOUND - no queue 'q'", (50, 10), reply_code=404))
    _kombu.notice(ctx, tracker, amqp.exceptions.ConnectionForced("CONNECTION_FORCED", reply_code=320))
    assert "confirm_timeout_s=5 s" in _kombu.error_text(ctx, TimeoutError("timed out"))
    ctx.history.close()
    cancelled, closed, lost = events(tmp_path)[1:]
    assert cancelled["kind"] == "consume.cancelled" and "amq.ctag-1" in str(cancelled["reason"])
    assert (closed["kind"], closed["code"]) == ("channel.closed", 404)
    assert lost["kind"] == "conn.lost"


def test_kombu_connection_passes_the_blocked_hooks_to_py_amqp(tmp_path: Path) -> None:
    from harness.clients.strategies import _kombu

    ctx = make_ctx(tmp_path)
    opts = _kombu.connection(ctx).transport_options
    opts["on_blocked"]("connection blocked, see broker logs")
    opts["on_unblocked"]()
    ctx.history.close()
    assert [(e["kind"], e.get("reason")) for e in events(tmp_path)] == [
        ("conn.blocked", "connection blocked, see broker logs"), ("conn.unblocked", None)]


def test_aiormq_blocked_log_record_becomes_conn_blocked(tmp_path: Path) -> None:
    import logging

    from harness.clients.strategies import _aio_pika

    ctx = make_ctx(tmp_path)
    _aio_pika.watch_blocked(ctx)
    _aio_pika.watch_blocked(ctx)  # idempotent: one handler
    log = logging.getLogger("aiormq.connection")
    try:
        log.warning("Connection %r was blocked by: %r", "<conn>", "low on memory")
        log.warning("Connection %r was unblocked", "<conn>")
        log.warning("something else")
    finally:
        for h in [h for h in log.handlers if isinstance(h, _aio_pika.BlockedLog)]:
            log.removeHandler(h)
    ctx.history.close()
    assert [(e["kind"], e.get("reason")) for e in events(tmp_path)] == [
        ("conn.blocked", "low on memory"), ("conn.unblocked", None)]


def test_aiormq_channel_errors_give_their_codes_once(tmp_path: Path) -> None:
    import aiormq.exceptions

    from harness.clients.strategies import _aio_pika

    assert _aio_pika.channel_close_code(aiormq.exceptions.ChannelNotFoundEntity("NOT_FOUND - x")) == 404
    assert _aio_pika.channel_close_code(aiormq.exceptions.ChannelPreconditionFailed("PRECONDITION_FAILED")) == 406
    assert _aio_pika.channel_close_code(aiormq.exceptions.ChannelClosed(320, "forced")) == 320
    assert _aio_pika.channel_close_code(aiormq.exceptions.ChannelClosed(None, None)) is None
    ctx = make_ctx(tmp_path, role="consumer")
    watch = _aio_pika.ChannelWatch(ctx)
    exc = aiormq.exceptions.ChannelNotFoundEntity("NOT_FOUND - no queue 'q'")
    watch.report(exc)
    watch.report(exc)  # the close callback's late report of the same close
    watch.report(aiormq.exceptions.ChannelClosed(None, None))  # our own close
    watch.report(ConnectionError("gone"))  # a connection loss: conn.lost's business
    watch.report(None)
    ctx.history.close()
    (closed,) = events(tmp_path)
    assert closed == {**closed, "kind": "channel.closed", "code": 404, "reason": "NOT_FOUND - no queue 'q'"}


def test_a_cancel_means_stop_only_when_we_stop(tmp_path: Path) -> None:
    import asyncio

    from harness.clients.strategies import _aio

    ctx = make_ctx(tmp_path)

    async def main() -> list[bool]:
        seen = [_aio.stopped_by_us(ctx)]
        task = asyncio.current_task()
        assert task is not None
        task.cancel()
        try:
            await asyncio.sleep(0)
        except asyncio.CancelledError:
            seen.append(_aio.stopped_by_us(ctx))  # our own task is being cancelled
            task.uncancel()
        ctx.stopping.set()
        seen.append(_aio.stopped_by_us(ctx))
        return seen

    assert asyncio.run(main()) == [False, True, True]


def test_unless_stopping_returns_the_wait_or_gives_way_to_sigterm(tmp_path: Path) -> None:
    import asyncio

    from harness.clients.strategies import _aio

    ctx = make_ctx(tmp_path)

    async def main() -> tuple[bool, bool, bool]:
        done = await _aio.unless_stopping(ctx, asyncio.sleep(0))
        forever = asyncio.get_running_loop().create_future()
        ctx.stopping.set()
        stopped = await _aio.unless_stopping(ctx, forever)
        return done, stopped, forever.cancelled()

    assert asyncio.run(main()) == (True, False, True)


def test_aioamqp_channel_error_is_channel_closed_only_on_an_open_connection(tmp_path: Path) -> None:
    import aioamqp.exceptions
    import aioamqp.protocol

    from harness.clients.strategies import _aioamqp
    from harness.clients.strategies._common import LossTracker

    class Proto:
        state = aioamqp.protocol.OPEN

    ctx = make_ctx(tmp_path, role="consumer")
    tracker = LossTracker(ctx)
    tracker.opened()
    session = _aioamqp.Session(ctx, tracker)
    session.protocol = Proto()
    session.notice(aioamqp.exceptions.ChannelClosed(406, "PRECONDITION_FAILED - x"))
    Proto.state = aioamqp.protocol.CLOSING  # a server close fails the channels too: a connection loss
    session.notice(aioamqp.exceptions.ChannelClosed(320, "CONNECTION_FORCED"))
    ctx.history.close()
    closed, lost = events(tmp_path)[1:]
    assert (closed["kind"], closed["code"]) == ("channel.closed", 406)
    assert lost["kind"] == "conn.lost"


def test_every_strategy_announces_its_heartbeat_and_detection_window() -> None:
    """client.start carries heartbeat_s (the strategy's heartbeat param) and heartbeat_window_s
    (harness/clients/heartbeat.py's model): the checker holds silent faults past that window and
    calls a shorter fault "not exercised", so no built-in strategy may leave it unknown."""
    from harness.clients.heartbeat import detection_window

    for s in strategies().values():
        hb = s.params.get("heartbeat")
        assert isinstance(hb, int | float) and hb > 0, s.name
        assert detection_window(s.library, hb) is not None, s.name
