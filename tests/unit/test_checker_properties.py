"""Property tests: clean histories pass; injected anomalies are all found, and nothing else is.

A clean history: publishers invoke and get a publish.ok for each message (confirmed or not),
consumers receive every message once in global publish order, the drain finds nothing, run.end.
Anomalies are injected into disjoint sets of messages, each with a known expected count.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from hypothesis import given, settings
from hypothesis import strategies as st

from harness.checker import check
from harness.checker.builder import HistoryBuilder
from harness.history import Event, validate_event

STEP = 0.01


@dataclass
class Plan:
    publishers: int
    consumers: int
    order: list[tuple[int, int]]  # (publisher, seq) in global publish order
    confirmed: list[bool]
    drop: set[int] = field(default_factory=set)  # delivery removed -> lost
    strand: set[int] = field(default_factory=set)  # delivery removed, drain finds it -> stranded
    redeliver: set[int] = field(default_factory=set)  # extra delivery, redelivered=true
    resend: set[int] = field(default_factory=set)  # extra invoke + ok + unflagged delivery
    swap: set[int] = field(default_factory=set)  # k: swap deliveries k and next(k) of its publisher
    unexpected: int = 0  # deliveries of ids never published


def mid(plan: Plan, k: int) -> str:
    p, seq = plan.order[k]
    return f"p{p}-{seq}"


def build(plan: Plan) -> list[Event]:
    h = HistoryBuilder(step=STEP)
    h.phase("warmup")
    for c in range(plan.consumers):
        h.start(f"consumer-{c}")
    for p in range(plan.publishers):
        h.start(f"publisher-{p}")
    n = len(plan.order)
    deliveries = list(range(n))  # message index delivered at slot k
    for k in plan.swap:
        j = next_of_same_publisher(plan, k)
        deliveries[k], deliveries[j] = deliveries[j], deliveries[k]
    for k in range(n):
        p, _ = plan.order[k]
        h.publish(f"publisher-{p}", mid(plan, k), confirmed=plan.confirmed[k])
    for k in range(n):  # after every publish, so a swapped delivery never precedes its invoke
        m = deliveries[k]
        if m not in plan.drop and m not in plan.strand:
            h.consume(f"consumer-{k % plan.consumers}", mid(plan, m))
    for k in sorted(plan.resend):
        p, _ = plan.order[k]
        h.publish(f"publisher-{p}", mid(plan, k))
        h.deliver("consumer-0", mid(plan, k), redelivered=False)
    for k in sorted(plan.redeliver):
        h.deliver(f"consumer-{k % plan.consumers}", mid(plan, k), redelivered=True)
    for u in range(plan.unexpected):
        h.deliver("consumer-0", f"stray-{u}")
    h.finish(drained=[mid(plan, k) for k in sorted(plan.strand)])
    return h.events()


def next_of_same_publisher(plan: Plan, k: int) -> int:
    p, _ = plan.order[k]
    return next(j for j in range(k + 1, len(plan.order)) if plan.order[j][0] == p)


@st.composite
def plans(draw: st.DrawFn, inject: bool = True) -> Plan:
    publishers = draw(st.integers(1, 3))
    consumers = draw(st.integers(1, 2))
    counts = [draw(st.integers(1, 12)) for _ in range(publishers)]
    seqs = [0] * publishers
    order: list[tuple[int, int]] = []
    pool = [p for p in range(publishers) for _ in range(counts[p])]
    for p in draw(st.permutations(pool)):
        order.append((p, seqs[p]))
        seqs[p] += 1
    confirmed = [draw(st.booleans()) for _ in order]
    plan = Plan(publishers, consumers, order, confirmed)
    if not inject:
        return plan
    free = list(range(len(order)))
    free = draw(st.permutations(free))

    def take(max_n: int) -> set[int]:
        nonlocal free
        n = draw(st.integers(0, min(max_n, len(free))))
        got, free = set(free[:n]), free[n:]
        return got

    # swaps first: both messages of a pair must be otherwise untouched, pairs disjoint
    swaps: set[int] = set()
    used: set[int] = set()
    for k in draw(st.lists(st.sampled_from(range(len(order))), max_size=3)):
        try:
            j = next_of_same_publisher(plan, k)
        except StopIteration:
            continue
        if not {k, j} & used:
            swaps.add(k)
            used |= {k, j}
    plan.swap = swaps
    free = [k for k in free if k not in used]
    plan.drop = take(3)
    plan.strand = take(3)
    plan.redeliver = take(3)
    plan.resend = take(2)
    plan.unexpected = draw(st.integers(0, 2))
    return plan


@settings(max_examples=150, deadline=None)
@given(plans(inject=False))
def test_clean_histories_pass(plan: Plan) -> None:
    evs = build(plan)
    assert all(not validate_event(e) for e in evs)
    r = check(evs)
    assert r.verdict == "pass", r.reasons
    assert r.reasons == [] and r.notes == []
    c = r.counts
    assert c.published == c.acknowledged == c.delivered == len(plan.order)
    assert c.confirmed == sum(plan.confirmed)
    for k in ("lost", "stranded", "unexpected", "duplicated", "recovered", "reordered"):
        assert getattr(c, k) == 0


@settings(max_examples=300, deadline=None)
@given(plans())
def test_injected_anomalies_are_found_and_nothing_else(plan: Plan) -> None:
    r = check(build(plan))
    c = r.counts
    lost_conf = {k for k in plan.drop if plan.confirmed[k]}
    assert c.lost == len(plan.drop)
    assert c.lost_confirmed == len(lost_conf)
    assert c.lost_unconfirmed == len(plan.drop) - len(lost_conf)
    assert c.stranded == len(plan.strand)
    assert c.unexpected == plan.unexpected
    assert c.duplicated_redelivery == len(plan.redeliver)
    assert c.duplicated_resend == len(plan.resend)
    assert c.duplicated == len(plan.redeliver) + len(plan.resend)
    assert c.reordered == len(plan.swap)
    assert c.recovered == 0
    assert set(r.examples.get("lost_confirmed", [])) == {mid(plan, k) for k in lost_conf}
    assert set(r.examples.get("stranded", [])) == {mid(plan, k) for k in plan.strand}
    failing = bool(plan.drop or plan.strand or plan.unexpected)
    assert r.verdict == ("fail" if failing else "pass"), r.reasons
    # every reason is about an injected anomaly; nothing else is reported
    expected_reasons = (bool(lost_conf) + bool(plan.drop - lost_conf) + bool(plan.strand)
                        + bool(plan.unexpected))
    assert len(r.reasons) == expected_reasons, r.reasons
    expected_notes = (bool(plan.redeliver or plan.resend) + bool(plan.swap))
    assert len(r.notes) == expected_notes, r.notes


@settings(max_examples=100, deadline=None)
@given(plans(), st.randoms(use_true_random=False))
def test_event_order_does_not_change_the_judgement(plan: Plan, rnd) -> None:  # type: ignore[no-untyped-def]
    evs = build(plan)
    shuffled = list(evs)
    rnd.shuffle(shuffled)
    a, b = check(evs), check(shuffled)
    assert a.verdict == b.verdict and a.counts == b.counts


@settings(max_examples=100, deadline=None)
@given(plans(), st.data())
def test_cutting_the_history_never_passes(plan: Plan, data: st.DataObject) -> None:
    evs = build(plan)
    cut = data.draw(st.integers(0, len(evs) - 1))
    r = check(evs[:cut])
    assert r.verdict in ("fail", "unknown")


@settings(max_examples=200, deadline=None)
@given(st.lists(st.fixed_dictionaries({
    "t": st.floats(0, 100, allow_nan=False),
    "kind": st.sampled_from(["publish.invoke", "publish.ok", "publish.fail", "publish.info", "deliver", "ack",
                             "drain", "drain.done", "run.end", "client.start", "client.exit", "proc.exit",
                             "fault.start", "fault.stop", "queue.sample", "conn.lost", "weird"]),
    "id": st.sampled_from(["a", "b", "c"]),
    "proc": st.sampled_from(["publisher-0", "consumer-0", "harness", "nemesis", "drain"]),
}), max_size=40))
def test_arbitrary_event_soup_never_raises_and_never_passes_without_evidence(soup: list[Event]) -> None:
    r = check(soup)
    assert r.verdict in ("pass", "fail", "unknown")
    if r.verdict == "pass":
        assert any(e["kind"] == "run.end" for e in soup) and any(e["kind"] == "drain.done" for e in soup)
