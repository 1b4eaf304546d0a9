"""Was the fault a test at all? not_exercised (a silent fault shorter than the client's detection
window), no_overlap (no fault in effect during traffic), and the fault windows behind them."""

from __future__ import annotations

import pytest
from timing_context import ctx_of

from harness.checker.builder import HistoryBuilder, clean_run
from harness.checker.effects import fault_windows, last_heal_t, queue_absent_windows, silent_windows
from harness.checker.findings import Finding
from harness.checker.fold import fold_events
from harness.checker.rules.no_overlap import no_overlap
from harness.checker.rules.not_exercised import not_exercised


def effect(h: HistoryBuilder, fault: str, action: str, text: str, t: float, window: int = 0) -> None:
    h.emit("nemesis", "fault.effect", fault=fault, action=action, effect=text, window=window, observed=True, t=t)


def partition(held: float, *, heartbeat: float | None = 60, window: list[float | None] | None = None,
              library: str = "pika", target: str = "all", silent: bool = True) -> HistoryBuilder:
    """Clients with the given heartbeat; a partition from t=2 held ``held`` seconds."""
    h = HistoryBuilder()
    extra = {} if heartbeat is None else {"heartbeat_s": heartbeat}
    if window is not None:
        extra["heartbeat_window_s"] = window  # type: ignore[assignment]
    h.start("consumer-0", library=library, **extra)
    h.start("publisher-0", library=library, **extra)
    h.at(1.0).publish("publisher-0", "p0-0")
    h.consume("consumer-0", "p0-0")
    h.fault_start("partition", window=0, silent=silent, params={"target": target}, t=2.0)
    h.fault_stop("partition", window=0, t=2.0 + held)
    h.at(2.0 + held + 0.5).publish("publisher-0", "p0-1")
    h.consume("consumer-0", "p0-1")
    return h.finish()


def exercised(h: HistoryBuilder, **opts: float | None) -> list[Finding]:
    return not_exercised(ctx_of(h, **opts))


# -- not_exercised ----------------------------------------------------------------------------------
def test_a_4s_partition_against_a_60s_heartbeat_is_not_exercised() -> None:
    (f,) = exercised(partition(4.0, window=[65.0, 130.0]))
    assert (f.rule, f.effect, f.headline) == ("not_exercised", "unknown", "not exercised")
    assert f.text == ("not exercised: the 4.0 s partition is shorter than pika's detection window "
                      "(65–130 s at heartbeat 60 s): hold it ≥ 135 s or lower the client's heartbeat")


@pytest.mark.parametrize(("held", "fires"), [(129.9, True), (130.0, False), (200.0, False)])
def test_the_boundary_is_the_windows_upper_bound(held: float, fires: bool) -> None:
    assert bool(exercised(partition(held, window=[65.0, 130.0]))) is fires


def test_the_window_is_predicted_from_the_heartbeat_when_the_client_declares_none() -> None:
    (f,) = exercised(partition(4.0, heartbeat=2))  # pika at 2 s: 7-14 s
    assert "(7–14 s at heartbeat 2 s)" in f.text and "hold it ≥ 19 s" in f.text
    assert exercised(partition(14.0, heartbeat=2)) == []


@pytest.mark.parametrize(("held", "fires"), [(15.5, True), (16.0, False)])
def test_an_open_ended_window_uses_its_lower_bound_plus_one(held: float, fires: bool) -> None:
    fs = exercised(partition(held, library="kombu", heartbeat=10, window=[15.0, None]))
    assert bool(fs) is fires
    if fires:
        assert "kombu's detection window (15 s or later at heartbeat 10 s)" in fs[0].text


@pytest.mark.parametrize(("held", "fires"), [(4.0, True), (9.9, True), (10.0, False)])
def test_heartbeats_off_is_judged_against_max_block(held: float, fires: bool) -> None:
    fs = exercised(partition(held, heartbeat=0), max_block_s=10.0)
    assert bool(fs) is fires
    if fires:
        assert "max_block_s (10 s), and pika runs with heartbeats off" in fs[0].text
        assert "enable the client's heartbeat" in fs[0].text


def test_an_unknown_library_with_a_heartbeat_gets_two_missed_heartbeats() -> None:
    (f,) = exercised(partition(4.0, library="my-client", heartbeat=5))
    assert "two missed heartbeats of my-client (10 s at heartbeat 5 s" in f.text
    assert exercised(partition(10.0, library="my-client", heartbeat=5)) == []


def test_a_client_that_noticed_anyway_was_exercised() -> None:
    h = HistoryBuilder()
    h.start("consumer-0", heartbeat_s=60, heartbeat_window_s=[65.0, 130.0])
    h.start("publisher-0", heartbeat_s=60, heartbeat_window_s=[65.0, 130.0], role="publisher")
    h.at(1.0).publish("publisher-0", "p0-0")
    h.consume("consumer-0", "p0-0")
    h.fault_start("partition", window=0, silent=True, t=2.0)
    h.info("publisher-0", "p0-1", error="confirm timeout", t=4.0)
    h.fault_stop("partition", window=0, t=6.0)
    (f,) = exercised(h.at(7).finish())
    assert f.text.count("pika's detection window") == 1  # the consumer, which noticed nothing


def test_only_the_targeted_role_is_judged() -> None:
    h = HistoryBuilder()
    h.start("consumer-0", heartbeat_s=2, heartbeat_window_s=[7.0, 14.0])
    h.start("publisher-0", library="aio-pika", heartbeat_s=60, heartbeat_window_s=[183.0, 213.0])
    h.at(1.0).publish("publisher-0", "p0-0")
    h.consume("consumer-0", "p0-0")
    h.fault_start("partition", window=0, silent=True, params={"target": "consumer"}, t=2.0)
    h.fault_stop("partition", window=0, t=22.0)
    assert exercised(h.at(23).finish()) == []


def test_a_loud_fault_is_always_exercised() -> None:
    assert exercised(partition(1.0, window=[65.0, 130.0], silent=False)) == []


def test_the_held_time_is_the_effect_not_the_harness_calls() -> None:
    h = HistoryBuilder()
    h.start("consumer-0", heartbeat_s=2, heartbeat_window_s=[7.0, 14.0])
    h.at(1.0).consume("consumer-0", "x")
    h.fault_start("partition", window=0, silent=True, t=2.0)
    effect(h, "partition", "start", "rules installed", t=8.0)  # the rules went in 6 s late
    h.fault_stop("partition", window=0, t=18.0)  # 16 s of fault.start..stop, 10 s of effect
    (f,) = exercised(h.at(19).finish())
    assert "the 10.0 s partition" in f.text


# -- no_overlap ---------------------------------------------------------------------------------------
def alarm(effect_at: float | None, stop: float = 5.0) -> HistoryBuilder:
    """Traffic at ~0.5-0.6 s; a 3 s memory alarm from t=2.0 whose effect came at ``effect_at``."""
    h = clean_run(per_publisher=2)
    h.fault_start("memory-alarm", window=0, t=2.0)
    if effect_at is not None:
        effect(h, "memory-alarm", "start", "alarm visible", t=effect_at)
    h.fault_stop("memory-alarm", window=0, t=stop)
    return h


def test_an_alarm_that_took_effect_at_heal_after_traffic_ended_never_overlapped() -> None:
    (f,) = no_overlap(ctx_of(alarm(5.0).at(6).finish()))
    assert (f.rule, f.effect, f.headline) == ("no_overlap", "unknown", "no overlap")
    assert f.text.startswith("no overlap: the fault never overlapped client traffic: memory-alarm took effect at "
                             "t=+5.0s (the harness started it at t=+2.0s), traffic ran t=+0.5s–t=+0.5s")


def test_a_fault_in_effect_during_traffic_overlaps() -> None:
    h = alarm(2.5)
    h.at(3.0).publish("publisher-0", "p0-2")
    h.at(6.0).consume("consumer-0", "p0-2")
    assert no_overlap(ctx_of(h.at(7).finish())) == []


def test_a_fault_with_no_effect_recorded_is_measured_from_its_start() -> None:
    h = alarm(None)
    h.at(2.5).publish("publisher-0", "p0-2")
    assert no_overlap(ctx_of(h.at(6).finish(drained=["p0-2"]))) == []
    (f,) = no_overlap(ctx_of(alarm(None).at(6).finish()))
    assert "memory-alarm started at t=+2.0s (no effect recorded)" in f.text


def test_no_fault_or_no_traffic_is_not_no_overlap() -> None:
    assert no_overlap(ctx_of(clean_run().finish())) == []
    h = HistoryBuilder()
    h.start("consumer-0")
    h.fault_start("memory-alarm", window=0, t=2.0)
    h.fault_stop("memory-alarm", window=0, t=5.0)
    assert no_overlap(ctx_of(h.at(6).finish())) == []


# -- fault windows ------------------------------------------------------------------------------------
def test_windows_pair_by_window_index_with_their_effects() -> None:
    h = HistoryBuilder()
    h.fault_start("partition", window=0, silent=True, params={"target": "consumer"}, t=1.0)
    h.fault_start("partition", window=1, silent=True, t=2.0)
    effect(h, "partition", "start", "rules installed", t=2.5, window=1)
    h.fault_stop("partition", window=1, t=3.0)
    effect(h, "partition", "heal", "rules removed", t=3.2, window=1)  # seen after the heal returned
    h.fault_stop("partition", window=0, t=4.0)
    w0, w1 = fault_windows(fold_events(h.events(), 30.0))
    assert (w0.window, w0.target, w0.observed, w0.effect_s) == (0, "consumer", False, pytest.approx(3.0))
    assert (w1.target, w1.effect_start_t - h.t0, w1.effect_end_t - h.t0) == ("all", 2.5, pytest.approx(3.2))
    assert [e["effect"] for e in w1.effects] == ["rules installed", "rules removed"]
    assert w1.targets("publisher") and not w0.targets("publisher")


def test_old_histories_without_window_pair_by_name() -> None:
    h = HistoryBuilder()
    h.fault_start("connection-cut", t=1.0)
    h.fault_stop("connection-cut", t=2.0)
    h.fault_start("connection-cut", t=3.0)
    idx = fold_events(h.events(), 30.0)
    a, b = fault_windows(idx)
    assert (a.heal_t - h.t0, b.heal_t) == (1.0 + 1.0, None)
    assert last_heal_t([a, b]) is None and silent_windows(idx) == []


def test_queue_absent_windows_from_effects_and_from_the_fault() -> None:
    h = HistoryBuilder()
    h.fault_start("queue-delete", window=0, t=1.0)
    effect(h, "queue-delete", "start", "queue deleted", t=1.5)
    effect(h, "queue-delete", "heal", "queue declared", t=3.0)
    h.fault_stop("queue-delete", window=0, t=3.1)
    h.fault_start("queue-delete", window=1, t=5.0)  # an older history: no effects
    h.fault_stop("queue-delete", window=1, t=6.0)
    h.fault_start("queue-delete", window=2, t=8.0)
    effect(h, "queue-delete", "start", "queue deleted", t=8.2, window=2)  # never declared again
    got = [(a - h.t0, None if b is None else b - h.t0) for a, b in queue_absent_windows(fold_events(h.events(), 30))]
    assert got == [(1.5, 3.0), (5.0, 6.0), (pytest.approx(8.2), None)]
