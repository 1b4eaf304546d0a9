"""Fault timelines without a broker: building, the string form, seeds, and that execution always
ends healed (fake faults record what was done to them)."""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass
from typing import ClassVar

import pytest

from harness.errors import ChaosError
from harness.faults.base import Fault, FaultContext
from harness.faults.registry import parse as parse_fault
from harness.faults.timeline import Timeline, fault_spec
from harness.history import HistoryWriter

LOG: list[tuple[float, str, str]] = []


@dataclass
class Rec(Fault):
    """Records start/heal; ``fail_start``/``fail_heal`` raise (heal only the first time)."""

    tag: str = "a"
    fail_start: bool = False
    fail_heal: bool = False

    name: ClassVar[str] = "rec"
    description: ClassVar[str] = "records"
    family: ClassVar[str] = "test"

    def start(self, ctx: FaultContext) -> None:
        LOG.append((time.monotonic(), "start", self.tag))
        if self.fail_start:
            raise RuntimeError(f"start {self.tag} failed half-way")

    def heal(self, ctx: FaultContext) -> None:
        LOG.append((time.monotonic(), "heal", self.tag))
        if self.fail_heal:
            self.fail_heal = False
            raise RuntimeError(f"heal {self.tag} failed")


@dataclass
class Rec2(Rec):
    name: ClassVar[str] = "rec2"


@pytest.fixture(autouse=True)
def _clear():
    LOG.clear()


@pytest.fixture
def nemesis(tmp_path):
    w = HistoryWriter(tmp_path / "nemesis.jsonl", "nemesis", "nemesis")
    yield w
    w.close()


def events(w: HistoryWriter) -> list[dict]:
    return [json.loads(line) for line in w.path.read_text().splitlines()]


CTX = FaultContext(broker=None, toxiproxy=None, proxies={}, vhost="v", queue="q", run_id="r")  # type: ignore[arg-type]


# ---- the string form -----------------------------------------------------------------
@pytest.mark.parametrize(("text", "spec", "length"), [
    ("broker-restart@2+5", "broker-restart@2+5", 7),
    ("broker-restart @ 2s + 5s", "broker-restart@2+5", 7),
    ("latency:latency_ms=200,stream=both@1+3,reset-peer@6+1",
     "latency:latency_ms=200,stream=both@1+3,reset-peer@6+1", 7),
    ("cycle(connection-cut,every=10,for=3,times=4)",
     "connection-cut@0+3,connection-cut@10+3,connection-cut@20+3,connection-cut@30+3", 33),
    ("cycle(jitter:latency_ms=50,jitter_ms=10,every=5,for=2,times=2,start=1)",
     "jitter:latency_ms=50,jitter_ms=10@1+2,jitter:latency_ms=50,jitter_ms=10@6+2", 8),
    ("latency@0+4,connection-cut@2+1", "latency@0+4,connection-cut@2+1", 4),  # overlapping faults
    ("force-close@3+0", "force-close@3+0", 3),
])
def test_parse_round_trips_to_explicit_windows(text, spec, length):
    tl = Timeline.parse(text)
    assert tl.spec() == spec
    assert tl.length_s == length
    assert Timeline.parse(tl.spec()).spec() == spec


def test_bare_fault_needs_a_default_hold():
    tl = Timeline.parse("latency:latency_ms=5,stream=both", hold_s=4)
    assert tl.spec() == "latency:latency_ms=5,stream=both@0+4"
    with pytest.raises(ChaosError, match="has no time"):
        Timeline.parse("latency")


@pytest.mark.parametrize(("text", "problem", "fix"), [
    ("", "empty timeline", "broker-restart@2+5"),
    ("nope@1+2", "unknown fault 'nope'", "choose one of"),
    ("latency:latency_ms=5,reset-peer@6+1", "'latency:latency_ms=5' has no time", "latency:latency_ms=5@0+5"),
    ("latency@1", "cannot read its time '@1'", "FAULT@START+HOLD"),
    ("latency@a+2", "'a' is not a number of seconds", "latency@2+5"),
    ("latency@1+-2", "'-2' is not a number of seconds", "FAULT@START+HOLD"),
    ("latency@1+2,,reset-peer@3+1", "empty item", "single commas"),
    ("cycle(latency,every=10,for=3", "'(' without its ')'", "close it"),
    ("latency@1+2)", "')' without its '('", "cycle("),
    ("cycle(latency,every=10,times=2)", "missing for=", "cycle(connection-cut,every=10,for=3,times=4)"),
    ("cycle(every=10,for=3,times=2)", "names no fault", "cycle("),
    ("cycle(latency,every=2,for=3,times=2)", "for=3 must be between 0 and every=2", "heal before"),
    ("cycle(latency,every=2,for=1,times=0)", "times=0 must be at least 1", "cycle("),
    ("cycle(latency,every=2,for=1,times=two)", "'two' is not a whole number", "cycle("),
    ("cycle(latency,every=0,for=0,times=1)", "every=0 must be > 0", "cycle("),
    ("cycle(latency,every=5,every=5,for=1,times=1)", "every= given twice", "once"),
    ("random(faults=latency)", "missing duration=", "random(faults=latency|connection-cut,seed=7,duration=30)"),
    ("random(duration=3)", "missing faults=", "random(faults=latency|connection-cut,seed=7,duration=30)"),
    ("random(faults=latency,duration=3,bogus=1)", "unknown argument 'bogus=1'", "its arguments: faults"),
    ("random(faults=latency,bogus=1,duration=3)", "unknown argument 'bogus=1'", "its arguments: faults"),
    ("random(faults=latency:latency_ms=1,bogus=1,duration=3)", "'latency' has no parameter 'bogus'", "its parameters"),
    ("latency,latency_ms=1@0+1", "a fault's parameters follow ':'", "latency:latency_ms=1@0+1"),
    ("random(faults=latency||reset-peer,duration=3)", "empty choice", "single |"),
    ("random(faults=latency,duration=10,for=5..1)", "MIN above MAX", "for=1..5"),
    ("random(faults=latency,duration=0)", "duration=0 must be > 0", "duration=30"),
    ("latency@0+5,latency@3+5", "fault 'latency' overlaps itself", "heal before the next"),
    ("broker-restart@0+5,broker-pause@3+1", "broker process faults overlap", "heal before the other"),
    ("cycle(latency,every=5,for=2,times=2)x", "text after the closing", "commas"),
])
def test_every_mistake_gets_one_clear_error(text, problem, fix):
    with pytest.raises(ChaosError) as info:
        Timeline.parse(text, seed=1)
    assert problem in info.value.problem
    assert fix in (info.value.fix or "")


def test_random_is_reproducible_from_its_seed():
    text = "random(faults=latency|connection-cut|jitter:latency_ms=9,jitter_ms=3,duration=60,for=0.5..3,gap=1..4)"
    a, b = Timeline.parse(text, seed=7), Timeline.parse(text, seed=7)
    assert a.spec() == b.spec() and a.seed == 7
    assert Timeline.parse(text, seed=8).spec() != a.spec()
    assert {w.fault.name for w in a.windows} == {"latency", "connection-cut", "jitter"}
    assert all(w.fault.params()["jitter_ms"] == 3 for w in a.windows if w.fault.name == "jitter")
    # one fault at a time, within the duration, gaps and holds within their ranges
    prev_stop = 0.0
    for w in a.windows:
        assert 1 - 1e-9 <= w.start - prev_stop <= 4.05
        assert w.hold <= 3.05 and w.stop <= 60
        prev_stop = w.stop
    # the seed in the text wins over the one given; without either, one is drawn and recorded
    assert Timeline.parse(text.replace("duration", "seed=7,duration"), seed=99).spec() == a.spec()
    drawn = Timeline.parse(text)
    assert drawn.seed is not None
    assert Timeline.parse(text, seed=drawn.seed).spec() == drawn.spec()


def test_random_builder_matches_the_string_form():
    built = Timeline.random(["latency", "connection-cut"], seed=3, duration=20)
    assert built.spec() == Timeline.parse("random(faults=latency|connection-cut,seed=3,duration=20)").spec()
    assert "(seed 3)" in built.describe()


def test_builders():
    lat = parse_fault("latency:latency_ms=20")
    assert Timeline.single(lat, 4).spec() == "latency:latency_ms=20@0+4"
    assert Timeline.single(lat, 4, at=1).length_s == 5
    cut = parse_fault("connection-cut")
    tl = Timeline.from_steps([(2, "start", lat), (7, "heal", lat), (3, "start", cut), (4, "heal", cut)])
    assert tl.spec() == "latency:latency_ms=20@2+5,connection-cut@3+1"
    cycled = Timeline.cycle(cut, every=4, hold=1, times=3).spec()
    assert cycled == "connection-cut@0+1,connection-cut@4+1,connection-cut@8+1"
    windows = Timeline.cycle(cut, every=4, hold=1, times=2).windows
    assert windows[0].fault is not windows[1].fault  # one instance per window
    both = Timeline.combine(Timeline.single(lat, 4), Timeline.of((cut, 1, 2)))
    assert both.spec() == "latency:latency_ms=20@0+4,connection-cut@1+1"
    assert both.describe() == "latency:latency_ms=20 0→4 s; connection-cut 1→2 s"
    with pytest.raises(ChaosError, match="never heals"):
        Timeline.from_steps([(2, "start", lat)])
    with pytest.raises(ChaosError, match="was not started"):
        Timeline.from_steps([(2, "heal", lat)])
    assert fault_spec(parse_fault("reset-peer:timeout_ms=5")) == "reset-peer:timeout_ms=5"


def test_steps_heal_before_start_at_equal_times_but_instant_windows_start_first():
    tl = Timeline.parse("cycle(latency,every=2,for=2,times=2),force-close@2+0")
    assert [(s.at, s.action, tl.windows[s.window].fault.name) for s in tl.steps] == [
        (0, "start", "latency"), (2, "heal", "latency"), (2, "start", "force-close"),
        (2, "start", "latency"), (2, "heal", "force-close"), (4, "heal", "latency")]


def test_as_dict_records_windows_and_seed():
    d = Timeline.parse("random(faults=latency,seed=5,duration=10)").as_dict()
    assert d["seed"] == 5 and d["source"].startswith("random(")
    assert all(w["fault"] == "latency" and w["stop_s"] <= 10 for w in d["windows"])


# ---- execution -----------------------------------------------------------------------
def test_execute_runs_steps_on_time_and_writes_events(nemesis):
    tl = Timeline.of((Rec(tag="a"), 0.0, 0.2), (Rec2(tag="b"), 0.1, 0.3))
    t0 = time.monotonic()
    tl.execute(CTX, nemesis, threading.Event())
    assert [(k, tag) for _, k, tag in LOG] == [("start", "a"), ("start", "b"), ("heal", "a"), ("heal", "b")]
    for (t, _, _), planned in zip(LOG, (0, 0.1, 0.2, 0.3), strict=True):
        assert planned <= t - t0 < planned + 0.08
    evs = events(nemesis)
    assert [(e["kind"], e["fault"], e["step"]) for e in evs] == [
        ("fault.start", "rec", 0), ("fault.start", "rec2", 1), ("fault.stop", "rec", 2), ("fault.stop", "rec2", 3)]
    assert evs[0]["params"] == {"tag": "a", "fail_start": False, "fail_heal": False}
    assert not any(e.get("early") for e in evs)


def test_stop_event_ends_early_and_heals_what_is_active(nemesis):
    stop = threading.Event()
    tl = Timeline.of((Rec(tag="a"), 0.0, 5.0), (Rec2(tag="b"), 0.0, 6.0))
    threading.Timer(0.1, stop.set).start()
    t0 = time.monotonic()
    tl.execute(CTX, nemesis, stop)
    assert time.monotonic() - t0 < 1
    assert [(k, tag) for _, k, tag in LOG] == [("start", "a"), ("start", "b"), ("heal", "b"), ("heal", "a")]
    assert [e.get("early") for e in events(nemesis) if e["kind"] == "fault.stop"] == [True, True]


def test_a_failing_start_is_healed_with_the_others_and_raised(nemesis):
    tl = Timeline.of((Rec(tag="a"), 0.0, 5.0), (Rec2(tag="b", fail_start=True), 0.05, 5.0))
    with pytest.raises(RuntimeError, match="start b failed"):
        tl.execute(CTX, nemesis, threading.Event())
    assert [(k, tag) for _, k, tag in LOG] == [("start", "a"), ("start", "b"), ("heal", "b"), ("heal", "a")]
    kinds = [(e["kind"], e["fault"]) for e in events(nemesis)]
    assert kinds == [("fault.start", "rec"), ("fault.start", "rec2"), ("fault.stop", "rec2"), ("fault.stop", "rec")]


def test_a_failing_heal_is_retried_once_and_raised(nemesis):
    tl = Timeline.of((Rec(tag="a", fail_heal=True), 0.0, 0.05))
    with pytest.raises(RuntimeError, match="heal a failed"):
        tl.execute(CTX, nemesis, threading.Event())
    assert [(k, tag) for _, k, tag in LOG] == [("start", "a"), ("heal", "a"), ("heal", "a")]
    assert events(nemesis)[-1]["kind"] == "fault.stop"


def test_heal_errors_during_cleanup_do_not_hide_the_first_error_or_skip_other_heals(nemesis):
    tl = Timeline.of((Rec(tag="a", fail_heal=True), 0.0, 5.0), (Rec2(tag="b", fail_start=True), 0.0, 5.0))
    with pytest.raises(RuntimeError, match="start b failed") as info:
        tl.execute(CTX, nemesis, threading.Event())
    assert [(k, tag) for _, k, tag in LOG] == [("start", "a"), ("start", "b"), ("heal", "b"), ("heal", "a")]
    assert any("heal a failed" in n for n in info.value.__notes__)
    stops = [e for e in events(nemesis) if e["kind"] == "fault.stop"]
    assert [e.get("healed", True) for e in stops] == [True, False]


def test_keyboard_interrupt_still_ends_healed(nemesis):
    class Interrupting(threading.Event):
        def wait(self, timeout: float | None = None) -> bool:
            if LOG:
                raise KeyboardInterrupt
            return False

    tl = Timeline.of((Rec(tag="a"), 0.0, 5.0), (Rec2(tag="b"), 1.0, 5.0))
    with pytest.raises(KeyboardInterrupt):
        tl.execute(CTX, nemesis, Interrupting())
    assert [(k, tag) for _, k, tag in LOG] == [("start", "a"), ("heal", "a")]


def test_real_faults_through_a_timeline_leave_no_toxic(nemesis):
    from test_faults_catalogue import FakeToxiproxy, ctx

    tp = FakeToxiproxy()
    c = ctx(tp=tp)
    seen: list[int] = []

    class Probe(threading.Event):
        def wait(self, timeout: float | None = None) -> bool:
            seen.append(len(tp.all()))
            return False

    Timeline.parse("latency@0+2,jitter@1+2,partition@1.5+0.1,bandwidth@4+1").execute(c, nemesis, Probe())
    assert seen == [0, 2, 4, 8, 4, 2, 0, 4]
    assert tp.all() == {}


@dataclass
class Effecting(Fault):
    """Records an effect at start and at heal (the first observed, the second only requested)."""

    name: ClassVar[str] = "effecting"
    description: ClassVar[str] = "records effects"
    family: ClassVar[str] = "test"

    def start(self, ctx: FaultContext) -> None:
        ctx.effect("thing down", observed=True, count=2)

    def heal(self, ctx: FaultContext) -> None:
        ctx.effect("thing up", observed=False)


def test_effects_are_written_between_start_and_stop_bound_to_window_and_action(nemesis):
    c = FaultContext(broker=None, toxiproxy=None, proxies={}, vhost="v", queue="q", run_id="r")  # type: ignore[arg-type]
    Timeline.of((Rec(tag="a"), 0.0, 0.0), (Effecting(), 0.0, 0.0)).execute(c, nemesis, _Instant())
    evs = [(e["kind"], e["fault"], e.get("action"), e.get("effect"), e.get("window"), e.get("observed"))
           for e in events(nemesis) if e["fault"] == "effecting"]
    assert evs == [("fault.start", "effecting", None, None, 1, None),
                   ("fault.effect", "effecting", "start", "thing down", 1, True),
                   ("fault.effect", "effecting", "heal", "thing up", 1, False),
                   ("fault.stop", "effecting", None, None, 1, None)]
    effect = next(e for e in events(nemesis) if e["kind"] == "fault.effect")
    assert effect["count"] == 2 and effect["role"] == "nemesis"
    assert c.on_effect is None  # the sink is the timeline's only while it runs


def test_an_early_heal_records_its_effect_too(nemesis):
    c = FaultContext(broker=None, toxiproxy=None, proxies={}, vhost="v", queue="q", run_id="r")  # type: ignore[arg-type]
    stop = threading.Event()
    stop.set()  # ends before the first step: nothing started, nothing healed
    Timeline.of((Effecting(), 0.0, 5.0)).execute(c, nemesis, stop)
    assert c.effects == []

    class AfterStart(threading.Event):
        def wait(self, timeout: float | None = None) -> bool:
            return bool(c.effects)  # the stop comes once the start took effect

    Timeline.of((Effecting(), 0.0, 5.0)).execute(c, nemesis, AfterStart())
    assert [(e.action, e.effect, e.window) for e in c.effects] == [("start", "thing down", 0), ("heal", "thing up", 0)]
    assert [e["kind"] for e in events(nemesis)][-2:] == ["fault.effect", "fault.stop"]


class _Instant(threading.Event):
    def wait(self, timeout: float | None = None) -> bool:
        return False


def test_a_bare_fault_is_marked_and_can_be_held_for_another_time():
    tl = Timeline.parse("partition", hold_s=4)
    assert tl.bare and tl.hold_reason is None
    fault = tl.windows[0].fault
    longer = tl.held_for(21.0, "silent fault: pika detection window 7-14 s + 7 s margin")
    assert longer.spec() == "partition@0+21" and longer.windows[0].fault is fault and longer.bare
    assert longer.as_dict()["hold_reason"].startswith("silent fault")
    explicit = Timeline.parse("partition@0+4")
    assert not explicit.bare and "hold_reason" not in explicit.as_dict()
    with pytest.raises(ChaosError, match="bare fault"):
        explicit.held_for(10, "no")
