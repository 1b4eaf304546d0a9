"""no failover (harness.checker.rules.no_failover): on a cluster, a client that lost its node under
a single-node fault must resume on another node within max_failover_s while the fault lasts. A
single-host client that waits for its node (and comes back only after the heal) fails; one that
moves within a second passes with its failover time; a fault shorter than max_failover_s cannot
tell them apart (not exercised); one node, or nothing to do, judges nothing."""

from __future__ import annotations

from typing import Any

import pytest

from harness.checker import CheckOptions, CheckResult, check
from harness.checker.builder import HistoryBuilder, clean_run

N1, N2, N3 = "rabbit-1@localhost", "rabbit-2@localhost", "rabbit-3@localhost"
CLIENTS = ("publisher-0", "consumer-0")


def node(h: HistoryBuilder, proc: str, name: str | None, t: float) -> None:
    """The harness's conn.node for ``proc`` (None: no connection)."""
    h.emit(proc, "conn.node", t=t, role="harness", node=name)


def partition(h: HistoryBuilder, start: float, stop: float, on: str = N1, fault: str = "node-partition",
              window: int = 0) -> None:
    """A node fault window on ``on``: fault.start, its start effect 1 s later, its heal effect and stop."""
    h.fault_start(fault, t=start, window=window, params={"node": 1})
    h.emit("nemesis", "fault.effect", t=start + 1.0, fault=fault, action="start", effect="node partitioned",
           window=window, observed=True, node=on, peers=[n for n in (N1, N2, N3) if n != on])
    h.emit("nemesis", "fault.effect", t=stop - 0.1, fault=fault, action="heal", effect="node rejoined",
           window=window, observed=True, node=on)
    h.fault_stop(fault, t=stop, window=window)


def cluster_run(hold: float = 30.0, back_at: float | None = None, moves_to: str | None = None,
                publisher_done: bool = False, ready: int = 50, **kw: Any) -> HistoryBuilder:
    """Both clients on node 1; the node is partitioned away at t=3 (fault.start 2) for ``hold`` s;
    both lose their connection at 3.1. They come back at ``back_at`` (default: 0.3 s after the
    heal), on ``moves_to`` (default: node 1 again), and publish and consume there. The queue
    holds ``ready`` messages meanwhile; ``publisher_done``: the publisher finished before the fault."""
    h = clean_run(per_publisher=5)
    for p in CLIENTS:
        h.emit(p, "conn.open", t=0.2)
        node(h, p, N1, 0.3)
    if publisher_done:
        h.at(1.0).exit("publisher-0")
        h.proc_exit("publisher-0")
    partition(h, 2.0, 2.0 + hold, **kw)
    stop = 2.0 + hold
    lost = ("consumer-0",) if publisher_done else CLIENTS
    for p in lost:
        h.conn(p, "lost", t=3.1, error="ConnectionClosedByBroker: (320, CONNECTION_FORCED)")
        node(h, p, None, 3.5)
    for s in range(4, int(stop) + 3, 2):
        h.at(float(s)).sample(ready, consumers=0 if back_at is None or s < back_at else 1)
    back = stop + 0.3 if back_at is None else back_at
    for p in lost:
        h.emit(p, "conn.open", t=back)
        node(h, p, moves_to or N1, back + 0.5)
    h.at(back + 0.1)
    if not publisher_done:
        h.publish("publisher-0", "p0-50")
        h.consume("consumer-0", "p0-50")
    else:
        h.consume("consumer-0", "p0-4", redelivered=True)
    return h.at(stop + 5).finish()


def run(h: HistoryBuilder, nodes: int | None = 3, **opts: Any) -> CheckResult:
    return check(h.events(), options=CheckOptions(queue_type="quorum", nodes=nodes, **opts))


def rules(r: CheckResult) -> list[str]:
    return [f["rule"] for f in r.findings]


def test_a_single_host_client_back_only_after_the_heal_fails_no_failover() -> None:
    r = run(cluster_run(hold=30.0))
    assert r.verdict == "fail" and r.headline == "no failover", r.reasons
    assert rules(r) == ["no_failover", "no_failover"]
    pub, con = r.reasons
    assert pub.startswith(f"no failover: publisher-0 stayed off the cluster for 29.3 s while {N2} and {N3} served "
                          f"(its node {N1} was partitioned away at t=+3.0s; it lost its connection at t=+3.1s); "
                          "it came back only after the heal at t=+31.9s (at t=+32.4s)"), pub
    assert "it had not finished publishing" in pub and "amqp_urls" in pub
    assert con.startswith("no failover: consumer-0 stayed off the cluster for 29.3 s"), con
    assert "the queue held 50 ready messages at t=+4.0s" in con
    assert "failover_s" not in r.metrics
    assert [(f["proc"], f["judged"], f["failed"]) for f in r.metrics["failovers"]] == [
        ("publisher-0", True, True), ("consumer-0", True, True)]


def test_the_same_client_passes_today_without_the_rule() -> None:
    """The gap the rule closes: measured from the heal, the single-host client recovered at once."""
    r = run(cluster_run(hold=30.0), max_failover_s=None)
    assert r.verdict == "pass", r.reasons
    assert "failovers" not in r.metrics


def test_a_client_that_moves_to_another_node_within_a_second_passes_with_its_failover_time() -> None:
    r = run(cluster_run(hold=30.0, back_at=4.0, moves_to=N2))
    assert r.verdict == "pass", r.reasons
    assert r.metrics["failover_s"] == pytest.approx({"publisher-0": 1.0, "consumer-0": 1.0}, abs=0.01)
    assert [(f["proc"], f["resumed_on"], f["failed"]) for f in r.metrics["failovers"]] == [
        ("publisher-0", N2, False), ("consumer-0", N2, False)]


def test_a_failover_slower_than_max_failover_fails_even_before_the_heal() -> None:
    r = run(cluster_run(hold=30.0, back_at=18.1, moves_to=N3))
    assert r.headline == "no failover", r.reasons
    assert "it resumed at t=+18.2s on rabbit-3@localhost, later than max_failover_s 10 s" in r.reasons[0]
    assert run(cluster_run(hold=30.0, back_at=18.1, moves_to=N3), max_failover_s=20.0).verdict == "pass"


def test_back_on_its_own_node_before_the_heal_effect_is_no_failover() -> None:
    """As measured on the real cluster: the partitioned node served again a moment before the
    nemesis saw every peer list it (the heal effect), and the single-host client reconnected to it
    in between. conn.node places it on its own node: it waited for that node."""
    r = run(cluster_run(hold=30.0, back_at=31.0, moves_to=N1))
    assert r.headline == "no failover", r.reasons
    assert ("it came back only when its node did, at t=+31.1s, on rabbit-1@localhost; the heal took effect at "
            "t=+31.9s") in r.reasons[0]


def test_a_fault_shorter_than_max_failover_judges_nothing_and_says_so() -> None:
    r = run(cluster_run(hold=8.0))
    assert "no_failover" not in rules(r)
    assert r.verdict == "unknown" and r.headline == "not exercised", r.reasons
    assert r.reasons == [
        "not exercised: the 6.9 s node-partition healed before max_failover_s 10 s had passed for publisher-0 "
        "(lost its node at t=+3.1s), consumer-0 (lost its node at t=+3.1s), who came back only after the heal: a "
        "node fault shorter than max_failover_s cannot show a failover (a single-host client passes like one that "
        "moves to another node): hold it ≥ 16 s (--fault-for) or lower --max-failover"]


def test_a_short_fault_that_a_client_failed_over_in_is_exercised() -> None:
    r = run(cluster_run(hold=8.0, back_at=4.0, moves_to=N2))
    assert r.verdict == "pass", r.reasons
    assert r.metrics["failover_s"] == pytest.approx({"publisher-0": 1.0, "consumer-0": 1.0}, abs=0.01)


def test_one_node_or_an_unknown_node_count_judges_nothing() -> None:
    for nodes in (1, None):
        r = run(cluster_run(hold=30.0), nodes=nodes)
        assert r.verdict == "pass", (nodes, r.reasons)
        assert "failovers" not in r.metrics


def test_nothing_to_do_is_not_needed() -> None:
    """The publisher finished before the fault and the queue was empty: the consumer had nothing
    to fail over for."""
    r = run(cluster_run(hold=30.0, publisher_done=True, ready=0))
    assert r.verdict == "pass", r.reasons
    assert r.metrics["failover_not_needed"] == {"consumer-0": "no work left when its failover deadline passed"}
    # with messages ready it had work
    assert run(cluster_run(hold=30.0, publisher_done=True, ready=7)).headline == "no failover"


def test_a_short_fault_with_nothing_to_do_is_not_called_unexercised() -> None:
    r = run(cluster_run(hold=8.0, publisher_done=True, ready=0))
    assert r.verdict == "pass", r.reasons


def test_a_client_that_gave_up_is_left_to_gave_up() -> None:
    """As aio-pika-plain on the real cluster: both roles exit on the first connection error."""
    h = clean_run(per_publisher=5)
    for p in CLIENTS:
        h.emit(p, "conn.open", t=0.2)
    partition(h, 2.0, 32.0)
    for p in CLIENTS:
        h.conn(p, "lost", t=3.1, error="ConnectionClosed: 320 CONNECTION_FORCED")
        h.at(3.15).exit(p, "error", ok=False, error="ConnectionClosed")
        h.proc_exit(p, 1, False)
    for s in range(4, 32, 2):
        h.at(float(s)).sample(5, consumers=0)
    r = run(h.at(35).finish(drained=("p0-4",)))
    assert r.headline == "gave up", r.reasons
    assert "no_failover" not in rules(r) and "failovers" not in r.metrics


def test_two_nodes_away_at_once_judges_nothing() -> None:
    """With two of three nodes away there is no majority to fail over to."""
    h = cluster_run(hold=30.0)
    partition(h, 2.5, 31.0, on=N2, fault="node-kill", window=1)
    r = run(h)
    assert "no_failover" not in rules(r), r.reasons


def test_a_client_on_another_node_that_never_lost_its_connection_is_not_judged() -> None:
    """Node 2 partitioned away: clients on node 1 carry on; nothing to measure."""
    h = clean_run(per_publisher=5)
    partition(h, 2.0, 32.0, on=N2)
    h.at(10).publish("publisher-0", "p0-60")
    h.consume("consumer-0", "p0-60")
    r = run(h.at(35).finish())
    assert r.verdict == "pass", r.reasons
    assert "failovers" not in r.metrics


def test_max_failover_is_a_deadline_of_the_config_and_the_cli() -> None:
    from harness.cli import verdict_line
    from harness.config import load

    assert load(None, {"max_failover_s": 5}).check_options() == {"max_failover_s": 5.0}
    doc = {"verdict": "pass", "client": "pika-best", "fault": "node-partition", "counts": {}, "timing": {},
           "metrics": {"failover_s": {"publisher-0": 0.4, "consumer-0": 0.85}}}
    assert " failover=0.85s " in verdict_line(doc)
    assert "failover=" not in verdict_line({**doc, "metrics": {}})


def test_node_faults_are_held_long_enough_to_judge_a_failover_by_default() -> None:
    """A bare node fault outlasts a client's loss + max_failover_s (10 s): 20 s; node-pause, silent,
    is held for the heartbeat window and then 15 s (the deadline runs from the client's notice)."""
    from harness.faults.registry import faults, parse
    from harness.run.holds import choose_hold

    cluster = {n: c.default_hold_s for n, c in faults().items() if c.family == "cluster"}
    assert cluster == dict.fromkeys(("leader-kill", "node-cut", "node-kill", "node-partition", "node-pause",
                                     "node-stop"), 20.0)
    assert min(cluster.values()) > CheckOptions().max_failover_s  # type: ignore[operator]
    start = {"proc": "consumer-0", "library": "pika", "heartbeat_s": 2, "heartbeat_window_s": [7, 14]}
    assert choose_hold(parse("node-pause"), None, {"consumer-0": start}, 10.0).seconds == 29.0  # 14 + 15
    assert choose_hold(parse("partition"), None, {"consumer-0": start}, 10.0).seconds == 19.0  # 14 + 5, as before


def classic(h: HistoryBuilder, **opts: Any) -> CheckResult:
    return check(h.events(), options=CheckOptions(queue_type="classic", nodes=3, **opts))


def test_a_classic_queue_taken_away_with_its_node_is_the_queue_types_wait_not_a_missing_failover() -> None:
    """leader-kill on a classic queue kills the queue's home node: on every node the queue answers
    "home node ... is down" until the heal, so nobody can resume work (measured: pika-best, which
    rotates over every node, came back only after the heal). Not judged; a note says why."""
    r = classic(cluster_run(hold=30.0, fault="leader-kill"))
    assert "no_failover" not in rules(r), r.reasons
    assert r.verdict == "pass", r.reasons
    assert any("failover not judged for leader-kill" in n and "classic queue lived on" in n
               and "not the client's" in n for n in r.notes), r.notes
    assert "failovers" not in r.metrics


def test_a_classic_queue_on_another_node_still_needs_the_client_to_fail_over() -> None:
    """The queue lived on node 2 (queue.sample node): the partitioned node 1 took nothing with it."""
    h = cluster_run(hold=30.0)
    h.at(1.0).sample(0, node=N2)
    r = classic(h)
    assert r.headline == "no failover" and rules(r) == ["no_failover", "no_failover"], r.reasons


def test_a_node_cut_never_takes_a_classic_queue_away() -> None:
    """node-cut leaves the node and its queues running: clients must reach them through another node."""
    r = classic(cluster_run(hold=30.0, fault="node-cut"))
    assert r.headline == "no failover", r.reasons
