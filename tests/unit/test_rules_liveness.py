"""stalled, consumer lost and busy, each on a crafted history: where it fires, and the correct
client that must not trip it. No timing is measured; times are the histories' own."""

from __future__ import annotations

import pytest

from harness.checker import CheckOptions, CheckResult, check
from harness.checker.builder import HistoryBuilder, clean_run


def run(h: HistoryBuilder, **opts: float | None) -> CheckResult:
    return check(h.events(), (), CheckOptions(**opts) if opts else None)  # type: ignore[arg-type]


def rules_of(r: CheckResult) -> set[str]:
    return {f["rule"] for f in r.findings}


def slow_job(ack_at: float | None, until: float = 30.5, ready: int = 20, consumers: int = 1) -> HistoryBuilder:
    """A consumer with prefetch 1 that takes one long job: p0-3 delivered at 1.0, acked at
    ``ack_at`` (None: never); samples every second from 1.5 to ``until`` with ``ready`` waiting."""
    h = clean_run(per_publisher=3)
    h.publish("publisher-0", "p0-3")
    h.deliver("consumer-0", "p0-3", t=1.0)
    if ack_at is not None:
        h.ack("consumer-0", "p0-3", t=ack_at)
    t = 1.5
    while t <= until:
        h.sample(ready, 1, consumers, t=t)
        t += 1.0
    h.at(until + 0.5)
    return h


# -- busy: never a stall ---------------------------------------------------------------------------
def test_busy_consumer_holding_one_delivery_30s_is_not_stalled() -> None:
    h = slow_job(ack_at=31.0)
    for k in range(4, 8):  # then it catches up
        h.publish("publisher-0", f"p0-{k}")
        h.consume("consumer-0", f"p0-{k}")
    r = run(h.finish())
    assert r.verdict == "pass", r.reasons
    assert r.metrics["stalls"] == []
    [busy] = r.metrics["busy"]
    assert busy["start_s"] == pytest.approx(1.5) and busy["end_s"] == pytest.approx(30.5)
    assert busy["max_ready"] == 20


def test_stall_counts_from_the_first_sample_after_the_last_ack() -> None:
    r = run(slow_job(ack_at=10.2).finish())  # holds until 10.2, then 20 s of nothing
    assert r.verdict == "fail" and r.headline == "stalled"
    assert rules_of(r) == {"stalled"}
    assert r.reasons[0].startswith("stalled: nothing delivered for 20.0 s from t=+10.5s to t=+30.5s")
    assert r.metrics["busy"][0]["end_s"] == pytest.approx(10.2)


def test_a_lost_connection_drops_what_the_consumer_held() -> None:
    h = slow_job(ack_at=None)  # never acked ...
    h.conn("consumer-0", "lost", t=5.2)  # ... but the connection died: the broker took it back
    r = run(h.finish())
    assert "stalled" in rules_of(r)
    # the loss itself, with no fault in effect, is a drop; the stall after it is its own reason
    assert any(x.startswith("stalled") and "from t=+5.5s" in x for x in r.reasons), r.reasons


def test_a_consumer_that_never_acks_is_never_busy() -> None:
    h = clean_run(per_publisher=3)
    for ev in [e for e in h._events if e["kind"] == "ack"]:  # an auto-ack client writes no ack
        h._events.remove(ev)
    h.publish("publisher-0", "p0-3")
    h.deliver("consumer-0", "p0-3", t=1.0)
    for s in range(12):
        h.sample(5, 0, 1, t=1.5 + s)
    r = run(h.at(14).finish())
    assert "stalled" in rules_of(r) and r.metrics["busy"] == []


# -- stalled ---------------------------------------------------------------------------------------
def test_ready_messages_nothing_held_nothing_delivered_is_stalled() -> None:
    h = clean_run(per_publisher=3)
    for s in range(15):
        h.sample(20, 0, 1, t=1.0 + s)
    r = run(h.at(16).finish())
    assert r.verdict == "fail" and rules_of(r) == {"stalled"}
    assert "(max_stall_s 10 s)" in r.reasons[0]
    assert r.findings[0]["headline"] == "stalled" and r.findings[0]["proven"]


def test_a_wait_no_longer_than_max_stall_s_is_not_stalled() -> None:
    h = clean_run(per_publisher=3)
    for s in range(11):  # 1 .. 11: exactly 10 s
        h.sample(20, 0, 1, t=1.0 + s)
    assert run(h.at(12).finish()).verdict == "pass"


def test_max_stall_s_is_the_scenarios_to_set() -> None:
    h = clean_run(per_publisher=3)
    for s in range(6):
        h.sample(20, 0, 1, t=1.0 + s)
    h.at(8).finish()
    assert run(h).verdict == "pass"
    assert rules_of(run(h, max_stall_s=3.0)) == {"stalled"}


# -- consumer lost -----------------------------------------------------------------------------------
def test_no_consumer_listed_while_the_process_runs_is_consumer_lost() -> None:
    h = clean_run(per_publisher=3)
    for s in range(14):
        h.sample(20, 0, 0, t=1.0 + s)
    r = run(h.at(16).finish())
    assert r.verdict == "fail" and r.headline == "consumer lost"
    assert rules_of(r) == {"consumer_lost"}
    assert r.reasons[0].startswith("consumer lost: the broker reported 0 consumers for 13.0 s")


def test_a_consumer_missing_briefly_then_back_is_not_consumer_lost() -> None:
    h = clean_run(per_publisher=3)
    for s in range(5):
        h.sample(20, 0, 0, t=1.0 + s)
    h.publish("publisher-0", "p0-3")
    h.consume("consumer-0", "p0-3")  # it came back and consumed
    r = run(h.at(8).finish())
    assert r.verdict == "pass", r.reasons


def test_consumer_lost_even_while_the_client_thinks_it_holds_work() -> None:
    r = run(slow_job(ack_at=None, consumers=0).finish())
    assert rules_of(r) == {"consumer_lost"}


# -- busy too long (max_busy_s) ------------------------------------------------------------------------
def test_busy_too_long_only_when_max_busy_s_is_set() -> None:
    h = slow_job(ack_at=31.0).finish()
    assert "busy" not in rules_of(run(h))
    r = run(h, max_busy_s=20.0)
    assert r.verdict == "fail" and r.headline == "busy too long"
    assert r.reasons == ["busy too long: consumer-0 held 1 delivery unacked longer than max_busy_s 20 s (longest: "
                         "p0-3 delivered at t=+1.0s, held 30.0 s)"]
    assert "busy" not in rules_of(run(h, max_busy_s=40.0))


def test_a_quick_consumer_is_never_busy_too_long() -> None:
    assert run(clean_run().finish(), max_busy_s=0.5).verdict == "pass"
