"""blocked on crafted histories: a publish that waits out an alarm silently fails; one that raises
within the deadline and retries, or hears of a silent fault through its heartbeat in time, does not."""

from __future__ import annotations

from typing import Any

from harness.checker import CheckOptions, CheckResult, check
from harness.checker.builder import HistoryBuilder, clean_run


def run(h: HistoryBuilder, **opts: float) -> CheckResult:
    return check(h.events(), (), CheckOptions(**opts) if opts else None)


def rules_of(r: CheckResult) -> set[str]:
    return {f["rule"] for f in r.findings}


def with_fault(fault: str, start: float, stop: float, silent: bool = False, **start_kw: Any) -> HistoryBuilder:
    """A clean run (~0.5 s), then a fault from ``start`` to ``stop`` with its effect observed."""
    h = clean_run(per_publisher=3)
    h.fault_start(fault, t=start, silent=silent, window=0, **start_kw)
    h.emit("nemesis", "fault.effect", t=start + 0.1, fault=fault, action="start", effect="alarm visible",
           window=0, observed=True)
    h.fault_stop(fault, t=stop, window=0)
    return h


def after_heal(h: HistoryBuilder, t: float) -> HistoryBuilder:
    h.at(t)
    h.publish("publisher-0", "p0-9")
    h.consume("consumer-0", "p0-9")
    return h


def test_a_silent_20s_block_under_an_alarm_is_blocked() -> None:
    h = with_fault("memory-alarm", 1.0, 21.0)
    h.invoke("publisher-0", "p0-3", t=1.5)
    h.ok("publisher-0", "p0-3", t=21.0)  # the confirm came when the alarm cleared; nothing said meanwhile
    h.deliver("consumer-0", "p0-3", t=21.1)
    h.ack("consumer-0", "p0-3", t=21.2)
    r = run(after_heal(h, 22.0).finish())
    assert r.verdict == "fail" and "blocked" in rules_of(r)
    [reason] = [x for x in r.reasons if x.startswith("blocked:")]
    assert reason == ("blocked: publisher-0 was told nothing while 1 publish waited past the deadline of 10 s "
                      "(max_block_s) (longest: p0-3 invoked at t=+1.5s got its outcome only after 19.5 s; no error, "
                      "conn.blocked, conn.lost or channel.closed meanwhile)")
    assert r.metrics["publisher_hangs"][0]["id"] == "p0-3"


def test_a_publish_raising_at_5s_under_a_20s_alarm_and_retrying_is_not_blocked() -> None:
    h = with_fault("memory-alarm", 1.0, 21.0)
    t = 1.5
    while t < 20.0:  # blocked_connection_timeout=5: raise, reconnect, re-send
        h.invoke("publisher-0", "p0-3", t=t)
        h.info("publisher-0", "p0-3", t=t + 5.0, error="ConnectionBlockedTimeout")
        h.conn("publisher-0", "lost", t=t + 5.0, error="ConnectionBlockedTimeout")
        h.conn("publisher-0", "open", t=t + 5.2)
        t += 5.5
    h.invoke("publisher-0", "p0-3", t=t)
    h.ok("publisher-0", "p0-3", t=21.0)
    h.deliver("consumer-0", "p0-3", t=21.1)
    h.ack("consumer-0", "p0-3", t=21.2)
    r = run(after_heal(h, 22.0).finish())
    assert "blocked" not in rules_of(r), r.reasons
    assert r.metrics["publisher_hangs"] == []


def test_a_blocked_notice_within_the_deadline_is_being_told() -> None:
    h = with_fault("memory-alarm", 1.0, 21.0)
    h.invoke("publisher-0", "p0-3", t=1.5)
    h.conn("publisher-0", "blocked", t=1.6)  # the application heard connection.blocked
    h.ok("publisher-0", "p0-3", t=21.0)
    h.consume("consumer-0", "p0-3")
    r = run(after_heal(h, 22.0).finish())
    assert "blocked" not in rules_of(r)
    [slow] = r.metrics["slow_publishes"]
    assert slow["notice"] == "conn.blocked" and slow["id"] == "p0-3"


def silent_partition(window: list[float] | None) -> HistoryBuilder:
    """A 20 s silent partition; the publisher (heartbeat window ``window``) notices it by heartbeat
    12 s in, 11.5 s after its publish."""
    h = HistoryBuilder()
    h.phase("warmup")
    h.start("consumer-0")
    kw = {} if window is None else {"heartbeat_s": 2, "heartbeat_window_s": window}
    h.start("publisher-0", **kw)
    h.at(0.2)
    for k in range(3):
        h.publish("publisher-0", f"p0-{k}")
        h.consume("consumer-0", f"p0-{k}")
    h.fault_start("partition", t=1.0, silent=True, window=0, params={"target": "all"})
    h.emit("nemesis", "fault.effect", t=1.0, fault="partition", action="start", effect="rules installed",
           window=0, observed=True)
    h.invoke("publisher-0", "p0-3", t=1.5)
    h.conn("publisher-0", "lost", t=13.0, error="StreamLostError: missed heartbeats")
    h.info("publisher-0", "p0-3", t=13.0)
    h.fault_stop("partition", t=21.0, window=0)
    h.conn("publisher-0", "open", t=21.5)
    h.invoke("publisher-0", "p0-3", t=21.6)
    h.ok("publisher-0", "p0-3", t=21.7)
    h.consume("consumer-0", "p0-3")
    return h.at(22.0).finish()


def test_heartbeat_detection_of_a_silent_partition_in_its_window_is_not_blocked() -> None:
    r = run(silent_partition([7.0, 14.0]))  # deadline 10 + 14 + 1 s: told at 11.5 s
    assert "blocked" not in rules_of(r), r.reasons
    assert r.metrics["publisher_hangs"] == [] and r.metrics["slow_publishes"] == []  # within its deadline


def test_without_a_declared_heartbeat_window_the_deadline_is_max_block_s() -> None:
    r = run(silent_partition(None))  # told at 11.5 s > 10 s
    assert "blocked" in rules_of(r)


def test_a_notice_after_the_harness_signalled_the_publisher_does_not_count() -> None:
    h = clean_run(per_publisher=1)
    h.invoke("publisher-0", "p0-1", t=1.0)
    h.emit("harness", "proc.signal", t=20.0, target="publisher-0", signal="SIGTERM", why="stop")
    h.info("publisher-0", "p0-1", t=20.1, error="stopped (SIGTERM) before the broker confirmed")
    h.exit("publisher-0", "sigterm", t=20.2)
    h.proc_exit("publisher-0", code=0, expected=True, t=20.3)
    r = run(h.at(21).finish())
    assert rules_of(r) == {"blocked"}
    assert "p0-1 invoked at t=+1.0s had no outcome after 19.0 s" in r.reasons[0]


def test_a_publish_stopped_by_the_harness_within_the_deadline_is_not_blocked() -> None:
    h = clean_run(per_publisher=1)
    h.invoke("publisher-0", "p0-1", t=1.0)
    h.emit("harness", "proc.signal", t=5.0, target="publisher-0", signal="SIGTERM")
    h.exit("publisher-0", "sigterm", t=30.0)  # slow to stop: not the publish's wait
    h.proc_exit("publisher-0", code=0, expected=True, t=30.1)
    assert "blocked" not in rules_of(run(h.at(31).finish()))


def test_max_block_s_is_the_scenarios_to_set() -> None:
    h = clean_run(per_publisher=1)
    h.invoke("publisher-0", "p0-1", t=1.0)
    h.ok("publisher-0", "p0-1", t=5.0)
    h.consume("consumer-0", "p0-1")
    h.at(6).finish()
    assert run(h).verdict == "pass"
    assert rules_of(run(h, max_block_s=3.0)) == {"blocked"}


def test_a_silent_fault_outlasting_the_extended_deadline_untold_is_blocked() -> None:
    h = HistoryBuilder()
    h.phase("warmup")
    h.start("consumer-0")
    h.start("publisher-0", heartbeat_s=2, heartbeat_window_s=[7.0, 14.0])
    h.at(0.2).publish("publisher-0", "p0-0")
    h.consume("consumer-0", "p0-0")
    h.fault_start("partition", t=1.0, silent=True, window=0)
    h.invoke("publisher-0", "p0-1", t=1.5)
    h.fault_stop("partition", t=29.0, window=0)
    h.ok("publisher-0", "p0-1", t=30.0)  # its heartbeat never told it: 28.5 s > 10 + 14 + 1
    h.consume("consumer-0", "p0-1")
    r = run(h.at(31).finish())
    [reason] = [x for x in r.reasons if x.startswith("blocked:")]
    assert ("deadline of 25 s (max_block_s 10 s + its heartbeat window 14 s + 1 s: a silent fault was in "
            "effect)") in reason
