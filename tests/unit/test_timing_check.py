"""The timing rules through the whole check: registered, and weighed by the verdict as their
effect says (fail for late detection / not recovered, unknown for not exercised / no overlap)."""

from __future__ import annotations

from harness.checker import CheckOptions, check
from harness.checker.builder import HistoryBuilder, clean_run
from harness.checker.rules import rules


def test_the_timing_rules_are_registered_and_run_after_the_message_rules() -> None:
    reg = rules()
    assert {"late_detection", "not_recovered", "not_exercised", "no_overlap"} <= set(reg)
    names = list(reg)
    assert names.index("lost") < names.index("not_recovered") < names.index("no_overlap")


def test_a_fault_that_never_overlapped_traffic_makes_the_run_unknown() -> None:
    h = clean_run(per_publisher=2)
    h.fault_start("memory-alarm", window=0, t=2.0)
    h.emit("nemesis", "fault.effect", fault="memory-alarm", action="start", effect="alarm visible", window=0,
           observed=True, t=5.0)
    h.fault_stop("memory-alarm", window=0, t=5.0)
    r = check(h.at(6).finish().events())
    assert r.verdict == "unknown"
    assert r.reasons[0].startswith("no overlap: the fault never overlapped client traffic: memory-alarm took effect")


def test_a_dead_consumer_with_stranded_work_fails_not_recovered_and_recovery_reads_never() -> None:
    h = clean_run(per_publisher=2)
    h.fault_start("connection-cut", window=0, t=2.0)
    h.conn("consumer-0", "lost", error="ConnectionResetError", t=2.1)
    h.exit("consumer-0", "ConnectionResetError", ok=False, t=2.5)
    h.proc_exit("consumer-0", 1, False, t=2.6)
    h.fault_stop("connection-cut", window=0, t=5.0)
    h.at(5.5)
    for k in range(2, 6):
        h.publish("publisher-0", f"p0-{k}")
    r = check(h.at(6).finish(drained=[f"p0-{k}" for k in range(2, 6)]).events())
    assert r.verdict == "fail"
    assert r.timing.recovery_s is None and r.timing.detail["recovered"] is False
    assert any(x.startswith("not recovered: the consumers never came back after the heal") for x in r.reasons)


def test_a_client_that_recovers_in_time_passes() -> None:
    h = clean_run(per_publisher=2)
    h.fault_start("connection-cut", window=0, t=2.0)
    h.conn("consumer-0", "lost", t=2.1)
    h.fault_stop("connection-cut", window=0, t=5.0)
    h.conn("consumer-0", "open", t=5.2)
    h.at(5.5).publish("publisher-0", "p0-2")
    h.consume("consumer-0", "p0-2")
    r = check(h.at(6).finish().events(), options=CheckOptions(max_detection_s=1.0))
    assert r.verdict == "pass", r.reasons
    assert r.timing.recovery_s is not None and r.timing.recovery_s < 1.0


def test_a_short_silent_fault_is_unknown_not_pass() -> None:
    h = HistoryBuilder()
    h.start("consumer-0", heartbeat_s=60, heartbeat_window_s=[65.0, 130.0])
    h.start("publisher-0", heartbeat_s=60, heartbeat_window_s=[65.0, 130.0])
    h.at(1.0).publish("publisher-0", "p0-0")
    h.consume("consumer-0", "p0-0")
    h.fault_start("partition", window=0, silent=True, t=1.5)
    h.at(2.0).publish("publisher-0", "p0-1")
    h.consume("consumer-0", "p0-1")
    h.fault_stop("partition", window=0, t=5.5)
    h.at(6.0).publish("publisher-0", "p0-2")
    h.consume("consumer-0", "p0-2")
    r = check(h.finish().events())
    assert r.verdict == "unknown"
    assert r.reasons == ["not exercised: the 4.0 s partition is shorter than pika's detection window "
                         "(65–130 s at heartbeat 60 s): hold it ≥ 135 s or lower the client's heartbeat"]


def test_a_client_that_noticed_the_fault_before_its_effect_was_recorded_met_it() -> None:
    # force-close: the effect is written when rabbitmqctl returns, ms after the clients saw the close;
    # the publisher died of it, so traffic ends before the effect's timestamp
    h = clean_run(per_publisher=2)
    h.fault_start("force-close", window=0, t=2.0)
    h.conn("publisher-0", "lost", error="CONNECTION_FORCED", t=2.3057)
    h.emit("nemesis", "fault.effect", fault="force-close", action="start", effect="connections closed",
           window=0, observed=True, count=2, t=2.3211)
    h.fault_stop("force-close", window=0, t=2.33)
    r = check(h.at(3).finish().events())
    assert not any(x.startswith("no overlap") for x in r.reasons), r.reasons


def test_a_heal_that_failed_is_not_judged_as_a_heal() -> None:
    # the timeline's heal raised (fault.stop healed=false): the consumer that never came back is not
    # "not recovered" against a heal that did not happen; the run is unknown, never a client failure
    h = clean_run(per_publisher=2)
    h.fault_start("connection-cut", window=0, t=2.0)
    h.conn("consumer-0", "lost", error="ConnectionResetError", t=2.1)
    h.emit("nemesis", "fault.stop", fault="connection-cut", window=0, early=True, healed=False,
           error="ToxiproxyError: address in use", t=5.0)
    h.at(5.5)
    for k in range(2, 4):
        h.publish("publisher-0", f"p0-{k}")
    r = check(h.at(6).finish(drained=["p0-2", "p0-3"]).events())
    assert not any(x.startswith("not recovered") for x in r.reasons), r.reasons
    assert r.timing.detail.get("unhealed") == ["connection-cut"]
