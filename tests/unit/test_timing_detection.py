"""Detection on crafted histories: measured from the fault's effect, never from the harness's own
stopping of a client; the late_detection rule. No wall clock: times are the builder's."""

from __future__ import annotations

import pytest
from timing_context import ctx_of, timing_of

from harness.checker.builder import HistoryBuilder, clean_run
from harness.checker.findings import Finding
from harness.checker.rules.late_detection import late_detection


def effect(h: HistoryBuilder, fault: str, action: str, text: str, t: float, window: int = 0) -> None:
    h.emit("nemesis", "fault.effect", fault=fault, action=action, effect=text, window=window, observed=True, t=t)


def signal(h: HistoryBuilder, target: str, t: float, sig: str = "SIGTERM") -> None:
    h.emit("harness", "proc.signal", target=target, signal=sig, why="run over", t=t)


def faulted(fault: str = "packet-loss", start: float = 2.0, stop: float = 5.0, **kw: object) -> HistoryBuilder:
    """A clean run (traffic until ~0.5 s) with one fault window 0 from ``start`` to ``stop``."""
    h = clean_run(per_publisher=2)
    h.fault_start(fault, window=0, t=start, **kw)
    h.fault_stop(fault, window=0, t=stop)
    return h


# -- the harness's own shutdown is never detection -------------------------------------------------
def test_publish_info_written_after_sigterm_is_not_detection() -> None:
    h = faulted()
    h.invoke("publisher-0", "p0-9", t=9.0)
    signal(h, "publisher-0", t=10.0)
    h.info("publisher-0", "p0-9", error="stopped (SIGTERM) before the broker confirmed", t=10.1)
    h.exit("publisher-0", "sigterm", t=10.2)
    h.proc_exit("publisher-0", 0, True, t=10.3)
    t = timing_of(h.at(11).finish())
    assert t.detection_s is None
    assert t.detection_by_role == {"publisher": None, "consumer": None}
    assert t.detail["detection_excluded"] == 1


def test_a_notice_after_the_process_exit_is_not_detection() -> None:
    h = faulted()
    h.proc_exit("consumer-0", 0, True, t=3.0)
    h.conn("consumer-0", "lost", error="closed by the harness", t=3.5)
    t = timing_of(h.at(6).finish())
    assert t.detection_s is None


def test_a_notice_before_the_signal_still_counts() -> None:
    h = faulted()
    h.info("publisher-0", "p0-1", error="confirm timeout", t=2.5)
    signal(h, "publisher-0", t=10.0)
    h.info("publisher-0", "p0-0", error="stopped (SIGTERM) before the broker confirmed", t=10.1)
    t = timing_of(h.at(11).finish())
    assert t.detection_s == pytest.approx(0.5)
    row = t.detail["detection_by_proc"]["publisher-0"]
    assert row["by"] == "publish.info" and row["text"] == "confirm timeout" and row["role"] == "publisher"


# -- the clock starts when the fault took effect -----------------------------------------------------
def test_detection_is_measured_from_the_effect_not_the_harness_call() -> None:
    h = faulted("memory-alarm", start=2.0, stop=9.0)
    effect(h, "memory-alarm", "start", "alarm visible", t=5.7)
    h.conn("publisher-0", "blocked", reason="low on memory", t=6.0)
    effect(h, "memory-alarm", "heal", "alarm cleared", t=8.9)
    t = timing_of(h.at(10).finish())
    assert t.detection_s == pytest.approx(0.3)
    assert t.detail["first_effect_s"] - t.detail["first_fault_start_s"] == pytest.approx(3.7)
    assert t.detail["detection_by_proc"]["publisher-0"]["by"] == "conn.blocked"
    assert t.detail["faults"][0]["effect_start_s"] == pytest.approx(t.detail["first_effect_s"])


def test_a_client_that_noticed_before_the_harness_saw_the_effect_detected_at_once() -> None:
    h = faulted("broker-restart", start=2.0, stop=9.0)
    h.conn("consumer-0", "lost", error="ConnectionResetError", t=2.2)
    effect(h, "broker-restart", "start", "broker down", t=2.5)
    t = timing_of(h.at(10).finish())
    row = t.detail["detection_by_proc"]["consumer-0"]
    assert row["detection_s"] == 0.0 and row["before_effect_s"] == pytest.approx(0.3)


def test_a_fault_that_recorded_no_effect_is_measured_from_its_start() -> None:
    h = clean_run(per_publisher=2)
    h.fault_start("memory-alarm", window=0, t=2.0)
    effect(h, "memory-alarm", "start", "alarm visible", t=4.0)
    h.fault_stop("memory-alarm", window=0, t=5.0)
    h.fault_start("connection-cut", window=1, t=3.0)  # wrote no fault.effect: its start counts
    h.fault_stop("connection-cut", window=1, t=3.5)
    h.conn("consumer-0", "lost", t=3.2)
    t = timing_of(h.at(6).finish())
    assert t.detail["first_effect_s"] - t.detail["first_fault_start_s"] == pytest.approx(1.0)
    assert t.detection_s == pytest.approx(0.2)


def test_channel_closed_and_cancel_are_detection() -> None:
    h = faulted("queue-delete")
    h.cancelled("consumer-0", reason="queue deleted", t=2.4)
    h.emit("publisher-0", "channel.closed", reason="NOT_FOUND - no exchange", code=404, t=2.1)
    t = timing_of(h.at(6).finish())
    assert t.detection_by_role == {"publisher": pytest.approx(0.1), "consumer": pytest.approx(0.4)}
    assert t.detail["detection_by_proc"]["consumer-0"] == {
        "detection_s": pytest.approx(0.4), "by": "consume.cancelled", "text": "queue deleted", "role": "consumer"}
    assert t.detail["detection_by_proc"]["publisher-0"]["text"] == "NOT_FOUND - no exchange"


def test_heartbeat_prediction_is_measured_from_the_effect() -> None:
    h = HistoryBuilder()
    h.start("consumer-0", heartbeat_s=2, heartbeat_window_s=[7.0, 14.0])
    h.start("publisher-0", heartbeat_s=2, heartbeat_window_s=[7.0, 14.0])
    h.at(1.0).publish("publisher-0", "p0-0")
    h.consume("consumer-0", "p0-0")
    h.fault_start("partition", window=0, silent=True, t=2.0)
    effect(h, "partition", "start", "rules installed", t=6.0)
    h.conn("consumer-0", "lost", error="StreamLostError", t=14.0)  # 8 s after the effect, 12 s after the start
    h.fault_stop("partition", window=0, t=30.0)
    t = timing_of(h.at(31).finish())
    row = t.detail["heartbeat_prediction"]["by_proc"]["consumer-0"]
    assert row["measured_s"] == pytest.approx(8.0) and row["within"] == "inside"


# -- late_detection ---------------------------------------------------------------------------------
def _late(detect_at: float | None, stop: float = 30.0, **opts: float | None) -> list[Finding]:
    h = faulted("partition", start=2.0, stop=stop, silent=True)
    if detect_at is not None:
        h.conn("consumer-0", "lost", error="StreamLostError", t=2.0 + detect_at)
    return late_detection(ctx_of(h.at(stop + 1).finish(), **opts))


def test_late_detection_fires_past_max_detection() -> None:
    (f,) = _late(8.0, max_detection_s=5.0)
    assert (f.rule, f.effect, f.headline) == ("late_detection", "fail", "late detection")
    assert "consumer-0, 8.0 s after it took effect (conn.lost: StreamLostError)" in f.text
    assert "max_detection_s 5 s" in f.text and f.timed


def test_detection_within_the_deadline_does_not_fire() -> None:
    assert _late(3.0, max_detection_s=5.0) == []


def test_never_detected_while_the_fault_outlasted_the_deadline_fires() -> None:
    (f,) = _late(None, stop=22.0, max_detection_s=5.0)
    assert "no client noticed partition within max_detection_s 5 s (it was in effect for 20.0 s" in f.text


def test_never_detected_but_healed_before_the_deadline_is_not_late() -> None:
    assert _late(None, stop=5.0, max_detection_s=5.0) == []


def test_late_detection_is_off_without_a_deadline() -> None:
    assert _late(25.0) == [] and _late(None) == []
