"""The fold computes exactly what the loop it replaced computed (``fold_reference.py``, frozen).

Every field of :class:`Fold` is compared, in order where order is kept (dict insertion order,
list order), by identity for the events it refers to, and by type and ``repr`` for numbers (so a
``5`` is not a ``5.0`` and a ``-0.0`` not a ``0.0``). A history the old loop could not fold must
fail with the same exception, type and message. Histories: the benchmark's synthetic runs, the
property tests' plans (clean, with anomalies, shuffled, cut), crafted edge cases, and an event
soup with missing fields, odd types, ties and repeated objects. Then whole checks, old fold against
new, must give identical results.
"""

from __future__ import annotations

import math
import random
import sys
from collections.abc import Callable, Sequence
from dataclasses import fields
from pathlib import Path
from typing import Any

import fold_reference as ref
import pytest
import queue_reference
from hypothesis import given, settings
from hypothesis import strategies as st

import harness.checker as checker
from harness.bench.checker import synthetic
from harness.checker.builder import HistoryBuilder, clean_run
from harness.checker.fold import fold_events
from harness.history import Event

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "unit"))
from test_checker_properties import build, plans

HANG = 30.0
#: the reference's fields: the new Fold has each, as a field or a property (``pub_of`` and
#: ``delivered`` are built from ``pos_of``/``first`` and the delivered flags)
FIELDS = [f.name for f in fields(ref.Fold)]


def norm(x: Any) -> Any:
    """A comparable form: events by identity, containers with their order, numbers with their type."""
    if isinstance(x, dict):
        if "t" in x and "kind" in x:
            return ("event", id(x))
        return ("dict", [(norm(k), norm(v)) for k, v in x.items()])
    if isinstance(x, (list, tuple)):
        return (type(x).__name__, [norm(v) for v in x])
    if isinstance(x, (set, frozenset)):
        return ("set", sorted(map(repr, x)))  # sets have no order worth keeping
    if isinstance(x, float):
        return ("float", repr(x))
    if isinstance(x, (bool, int)):
        return (type(x).__name__, x)
    return x


def outcome(fold: Callable[[Sequence[Event], float], Any], events: Sequence[Event], hang: float) -> Any:
    try:
        f = fold(events, hang)
    except Exception as exc:  # noqa: BLE001 - the exception is what is compared
        return ("raised", type(exc).__name__, str(exc))
    return {name: norm(getattr(f, name)) for name in FIELDS if name != "events"} | {
        "events": [id(e) for e in f.events], "per_proc": norm(f.per_proc), "ends": norm(f.invoke_ends()),
        # ok_of is now built from ok flags by position: first-invoke order, not first-ok order, and
        # keyed by the invoke's id object (7, where the ok said 7.0); no reader depends on either.
        # Equal as mappings (dict equality: keys equal, values equal, order ignored)
        "ok_of": ("mapping", f.ok_of)}


def unalias(events: Sequence[Event]) -> list[Event]:
    """The list with every repeat of an event object replaced by a copy. The reference took an
    invoke object seen twice for one invoke (``setdefault(i, ev) is not ev``), a history file's
    two equal lines for a re-send; the fold now says re-send for both
    (:func:`test_a_repeated_invoke_object_is_a_resend`), so they are compared on distinct objects."""
    seen: set[int] = set()
    out = []
    for ev in events:
        if id(ev) in seen and isinstance(ev, dict):
            ev = dict(ev)
        seen.add(id(ev))
        out.append(ev)
    return out


def assert_same(events: Sequence[Event], hang: float = HANG) -> None:
    events = unalias(events)
    old = outcome(ref.fold_events, events, hang)
    new = outcome(fold_events, events, hang)
    if old != new and isinstance(old, dict) and isinstance(new, dict):
        diff = {k: (old[k], new[k]) for k in old if old[k] != new[k]}
        pytest.fail(f"fields differ: {str(diff)[:2000]}")
    assert old == new


def test_every_field_of_the_reference_is_readable() -> None:
    new = fold_events([], HANG)
    for name in FIELDS:
        getattr(new, name)


@pytest.mark.parametrize("n", [0, 1, 50, 400, 5000, 40_000])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_synthetic_histories(n: int, seed: int) -> None:
    evs = synthetic(n, seed=seed)[:n] if n < 10 else synthetic(n, seed=seed)
    assert_same(evs)
    assert_same(evs, hang=0.0025)  # every ok is slow
    assert_same(evs, hang=-1.0)


def test_synthetic_shuffled_and_cut() -> None:
    evs = synthetic(3000, seed=5)
    rnd = random.Random(5)
    for _ in range(5):
        cut = evs[: rnd.randrange(len(evs))]
        assert_same(cut)
        shuffled = list(cut)
        rnd.shuffle(shuffled)
        assert_same(shuffled)


@settings(max_examples=200, deadline=None)
@given(plans(), st.randoms(use_true_random=False), st.data())
def test_property_plans(plan: Any, rnd: random.Random, data: st.DataObject) -> None:
    evs = build(plan)
    assert_same(evs)
    shuffled = list(evs)
    rnd.shuffle(shuffled)
    assert_same(shuffled)
    assert_same(evs[: data.draw(st.integers(0, len(evs)))])


# -- crafted edge cases ---------------------------------------------------------------------------
def crafted() -> dict[str, list[Event]]:
    out: dict[str, list[Event]] = {}
    out["empty"] = []
    h = HistoryBuilder()
    h.invoke("publisher-0", "a")
    out["single"] = h.events()

    h = clean_run(2, 2, 3)
    h.ok("publisher-0", "ghost")  # outcome, never invoked
    h.info("publisher-1", "ghost2")
    h.fail("publisher-1", "ghost3")
    out["orphans"] = h.finish().events()

    h = HistoryBuilder()
    h.start("publisher-0")
    h.ok("publisher-0", "x")  # outcome before its invoke: an orphan, then a normal publish
    h.invoke("publisher-0", "x")
    h.ok("publisher-0", "x")
    h.deliver("consumer-0", "y")  # delivered before its invoke: unexpected at the time
    h.invoke("publisher-0", "y")
    h.deliver("consumer-0", "y")
    out["outcome_before_invoke"] = h.finish().events()

    h = HistoryBuilder()
    h.start("publisher-0")
    h.start("consumer-0")
    h.invoke("publisher-0", "r")
    h.info("publisher-0", "r")  # before the re-send: paired with the first invoke
    h.deliver("consumer-0", "r")
    h.deliver("consumer-0", "r")  # duplicate before the re-send: unflagged
    h.invoke("publisher-0", "r")  # re-send
    h.ok("publisher-0", "r")  # after it: a re-send outcome
    h.deliver("consumer-0", "r")  # duplicate after the re-send: resend
    h.deliver("consumer-0", "r", redelivered=True)
    h.invoke("publisher-0", "r")  # third invoke, never answered
    h.at(100.0).ok("publisher-0", "r")  # slow (latest invoke)
    h.fail("publisher-0", "r")  # a second outcome for one invoke
    out["resends"] = h.finish().events()

    h = HistoryBuilder()
    h.start("publisher-0")
    h.publish("publisher-0", "u", confirmed=False)
    h.ok("publisher-0", "u", confirmed=True)
    h.publish("publisher-0", "v", confirmed=True)
    h.ok("publisher-0", "v", confirmed=False)
    h.publish("publisher-0", "w", confirmed=False)
    h.ok("publisher-0", "w", confirmed=0)
    out["unconfirmed_then_confirmed"] = h.finish().events()

    h = clean_run(1, 1, 4)
    h.drain("p0-1")
    h.drain("p0-1")
    h.drain("zz")
    out["drains"] = h.finish(drained=["p0-3"]).events()

    h = HistoryBuilder()
    h.start("publisher-0")
    h.start("publisher-1")
    for k in range(6):
        h.invoke(f"publisher-{k % 2}", f"m{k}")
    for k in (1, 0, 3, 2, 5, 4, 0):  # reordered, plus a duplicate of m0
        h.deliver(f"consumer-{k % 2}", f"m{k}")
    h.at(50.0).ok("publisher-0", "m0")  # slow, hang window 30
    h.ok("publisher-1", "m1")
    out["reorders_and_slow"] = h.finish().events()

    h = HistoryBuilder(step=0.0)  # every event at one time: ties everywhere
    h.invoke("publisher-0", "a")
    h.ok("publisher-0", "a")
    h.deliver("consumer-0", "a")
    h.invoke("publisher-0", "a")
    h.deliver("consumer-0", "a")
    h.info("publisher-0", "a")
    h.ok("publisher-0", "b")
    h.invoke("publisher-0", "b")
    h.deliver("consumer-0", "b")
    h.invoke("publisher-1", "c")
    h.deliver("consumer-1", "c")
    out["ties"] = h.events()

    h = HistoryBuilder()
    h.emit("harness", "weird.kind")
    h.emit("harness", "run.phase", phase="warmup")
    h.invoke("publisher-0", "a")
    h.emit("harness", "other.weird")
    h.ack("consumer-0", "a")
    out["unknown_kinds"] = h.events()

    h = HistoryBuilder()
    h.invoke("publisher-0", "a")
    h.invoke("publisher-0", "b")
    h.emit("publisher-0", "publish.ok", id="a")  # no "confirmed"
    h.emit("publisher-0", "publish.invoke")  # no "id"
    out["malformed"] = h.events()
    return out


@pytest.mark.parametrize("name", list(crafted()))
def test_crafted_histories(name: str) -> None:
    evs = crafted()[name]
    for hang in (HANG, 0.0, -1.0):
        assert_same(evs, hang)
        assert_same(list(reversed(evs)), hang)


def test_numbers_of_every_type_and_repeated_objects() -> None:
    inv = {"t": 1, "wall": 0, "pid": 1, "proc": "p", "role": "publisher", "kind": "publish.invoke", "id": "a"}
    ok = {"t": 3.0, "wall": 0, "pid": 1, "proc": "p", "role": "publisher", "kind": "publish.ok", "id": "a",
          "confirmed": True}
    inv2 = {**inv, "t": 3, "id": "b"}
    ok2 = {**ok, "t": 5, "id": "b"}
    dl = {"t": 6.0, "wall": 0, "pid": 2, "proc": "c", "role": "consumer", "kind": "deliver", "id": "b",
          "redelivered": False}
    dla = {**dl, "t": 6, "id": "a"}
    assert_same([inv, ok, inv2, ok2, dl, dla])  # waits 2.0 and 2: the first is kept
    assert_same([inv, inv, ok, ok, dl, dl, dla])  # one object twice
    assert_same([{**inv, "t": True}, {**ok, "t": 2}])
    assert_same([{**inv, "t": math.nan}, ok])
    assert_same([inv, {**ok, "t": math.nan}, dl])
    assert_same([{**inv, "t": math.inf}, {**ok, "t": math.inf}])
    assert_same([{**inv, "t": "1"}, {**ok, "t": "2"}])
    assert_same([{**inv, "t": "1"}])
    assert_same([{**inv, "proc": None}, ok])
    assert_same([inv2, {**inv, "proc": None}, ok, dla, dl])
    assert_same([{**dl, "proc": None}, dl, {**dl, "proc": None, "id": "z"}])
    assert_same([{**inv, "id": 7}, {**ok, "id": 7.0}])
    assert_same([{**inv, "id": ["x"]}])
    assert_same([inv, "not an event"])  # type: ignore[list-item]


def test_a_repeated_invoke_object_is_a_resend() -> None:
    inv = {"t": 1.0, "wall": 0, "pid": 1, "proc": "p", "role": "publisher", "kind": "publish.invoke", "id": "a"}
    f = fold_events([inv, inv], HANG)
    assert f.invokes == {"a": 2} and f.resend_evs == [inv] and f.per_proc == {"p": 1}
    copy = unalias([inv, inv])
    g = fold_events(copy, HANG)
    assert g.invokes == {"a": 2} and g.resend_evs == [copy[1]] and g.pending == {"a": copy[1]}


EVENT = st.fixed_dictionaries(
    {"t": st.one_of(st.integers(0, 5), st.floats(0, 5, allow_nan=False), st.sampled_from([0.5, 1.0, 2.0])),
     "kind": st.sampled_from(["publish.invoke", "publish.ok", "publish.fail", "publish.info", "deliver", "ack",
                              "drain", "drain.done", "run.end", "client.start", "queue.sample", "conn.lost",
                              "weird"]),
     "proc": st.sampled_from(["publisher-0", "publisher-1", "consumer-0", "consumer-1", "harness"])},
    optional={"id": st.sampled_from(["a", "b", "c", "d"]), "confirmed": st.booleans(),
              "redelivered": st.booleans()})


@settings(max_examples=500, deadline=None)
@given(st.lists(EVENT, max_size=40), st.data())
def test_event_soup(soup: list[Event], data: st.DataObject) -> None:
    for ev in soup:  # mostly well formed: the fields a kind needs, with a few left out
        if ev["kind"] != "ack" and "id" not in ev and data.draw(st.integers(0, 9)):
            ev["id"] = "a"
        if ev["kind"] == "publish.ok" and "confirmed" not in ev and data.draw(st.integers(0, 9)):
            ev["confirmed"] = True
    if soup and data.draw(st.booleans()):  # repeat some events (the same objects)
        soup += data.draw(st.lists(st.sampled_from(soup), max_size=4))
    assert_same(soup)
    assert_same(sorted(soup, key=lambda e: e["t"]))
    assert_same(sorted(soup, key=lambda e: e["t"]), hang=0.5)


# -- whole checks: old fold against new -----------------------------------------------------------
def check_with(fold: Callable[[Sequence[Event], float], Any], judge: Callable[..., Any],
               events: list[Event]) -> dict[str, Any]:
    saved = checker.fold_events, checker.judge
    checker.fold_events, checker.judge = fold, judge  # type: ignore[assignment]
    try:
        return checker.check(events).to_dict()
    finally:
        checker.fold_events, checker.judge = saved  # type: ignore[assignment]


def assert_same_check(evs: list[Event]) -> None:
    old = check_with(ref.fold_events, queue_reference.judge, evs)
    assert old == check_with(fold_events, checker.judge, evs)


@pytest.mark.parametrize("name", [*crafted(), "synthetic", "synthetic_slow"])
def test_whole_check_results_are_identical(name: str) -> None:
    if name.startswith("synthetic"):
        evs = synthetic(8000, seed=3)
        if name == "synthetic_slow":
            evs = [*evs[:100], *({**e, "t": e["t"] + 40.0} for e in evs[100:])]
    else:
        evs = crafted()[name]
    assert_same_check(evs)


def test_an_ok_before_its_invoke_keeps_its_confirmation() -> None:
    """The ok flags are by position, and an ok that came before any invoke of its id has none yet:
    it waits in ``ok_orphan`` and is folded into the flag when the invoke comes (a confirmed ok
    wins over a later unconfirmed one, in either order)."""
    base = {"wall": 0, "pid": 1, "proc": "p", "role": "publisher"}
    ok_a = {**base, "t": 1.0, "kind": "publish.ok", "id": "a", "confirmed": True}
    inv_a = {**base, "t": 2.0, "kind": "publish.invoke", "id": "a"}
    ok_a2 = {**base, "t": 3.0, "kind": "publish.ok", "id": "a", "confirmed": False}
    ok_z = {**base, "t": 4.0, "kind": "publish.ok", "id": "z", "confirmed": False}  # never invoked
    events = [ok_a, inv_a, ok_a2, ok_z]
    f = fold_events(events, HANG)
    assert f.orphan_outcomes == 2 and f.ok_orphan == {"z": False}
    assert f.ok_of == {"a": True, "z": False}
    assert f.confirmed("a") and not f.confirmed("z") and f.acked("z") and not f.acked("y")
    assert (f.n_acked(), f.n_confirmed(), f.unacked()) == (2, 1, set())
    assert_same(events)
