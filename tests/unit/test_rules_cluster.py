"""Queue types and clusters (harness.checker.cluster, the lost and stranded rules): whose doing a
lost confirmed message is -- the broker's (quorum queue, single-node faults), the queue type's
(classic queue confirmed while its only node was down) or the client's -- and each client's node
over time from conn.node."""

from __future__ import annotations

from harness.checker import CheckOptions, CheckResult, check
from harness.checker.builder import HistoryBuilder, clean_run

N1, N2, N3 = "rabbit-1@localhost", "rabbit-2@localhost", "rabbit-3@localhost"


def run(h: HistoryBuilder, queue_type: str | None, nodes: int | None = 3) -> CheckResult:
    return check(h.events(), options=CheckOptions(queue_type=queue_type, nodes=nodes))


def node_fault(h: HistoryBuilder, fault: str, node: str | None, start: float, stop: float, window: int = 0) -> None:
    """A node fault window with its effects (``node`` in the effects' extra, as the cluster faults write it)."""
    extra = {} if node is None else {"node": node}
    h.fault_start(fault, t=start, window=window)
    h.emit("nemesis", "fault.effect", t=start + 0.1, fault=fault, action="start", effect="node down", window=window,
           observed=True, **extra)
    h.emit("nemesis", "fault.effect", t=stop - 0.1, fault=fault, action="heal", effect="node up", window=window,
           observed=True, **extra)
    h.fault_stop(fault, t=stop, window=window)


def killed(lose: tuple[str, ...] = (), during: tuple[str, ...] = (), fault: str = "node-kill",
           node: str | None = N2) -> HistoryBuilder:
    """10 messages delivered, a node fault at 1.0-3.0 s; ``lose``: confirmed at 0.9 s (before the
    fault), never seen again; ``during``: confirmed at 2.0 s (the node down), never seen again."""
    h = clean_run(per_publisher=10)
    h.at(0.9)
    for i in lose:
        h.publish("publisher-0", i)
    node_fault(h, fault, node, 1.0, 3.0)
    h.at(2.0)
    for i in during:
        h.publish("publisher-0", i)
    h.at(3.5).publish("publisher-0", "p0-99")
    h.consume("consumer-0", "p0-99")
    return h.at(4).finish()


def test_quorum_node_kill_all_delivered_passes() -> None:
    r = run(killed(), "quorum")
    assert r.verdict == "pass", r.reasons
    assert r.counts.lost_by_broker == 0 and r.metrics["queue_type"] == "quorum" and r.metrics["nodes"] == 3
    assert r.metrics["node_faults"] == [{"fault": "node-kill", "nodes": [N2], "start_s": 1.1, "end_s": 2.9,
                                         "down": True}]


def test_quorum_confirmed_lost_under_a_single_node_fault_is_the_brokers() -> None:
    r = run(killed(lose=("p0-50", "p0-51")), "quorum")
    assert r.verdict == "fail" and r.headline == "broker lost"
    c = r.counts
    assert (c.lost, c.lost_confirmed, c.lost_by_broker, c.lost_queue_node_down) == (2, 2, 2, 0)
    assert [(f["rule"], f["category"], f["owner"]) for f in r.findings] == [("lost", "lost_by_broker", "broker")]
    assert r.reasons[0].startswith("the broker lost 2 confirmed messages from a quorum queue during a single-node "
                                   f"fault (node-kill of {N2} at t=+1.1s–+2.9s)")
    assert "A broker finding, not the client's (e.g. p0-50, p0-51)" in r.reasons[0]
    assert r.examples["lost_by_broker"] == ["p0-50", "p0-51"]


def test_quorum_loss_beside_an_unconfirmed_loss_keeps_the_clients_part() -> None:
    h = killed(lose=("p0-50",))
    h.at(3.6).publish("publisher-0", "p0-60", confirmed=False)
    r = run(h, "quorum")
    assert [(f["category"], f["owner"], f["count"]) for f in r.findings] == [
        ("lost_by_broker", "broker", 1), ("lost_unconfirmed", "client", 1)]
    assert r.headline == "broker lost"


def test_quorum_loss_with_no_node_fault_stays_the_clients() -> None:
    """A proxy fault never touches the queue's replicas: a confirmed loss then is far likelier the
    client's bookkeeping (a confirm mapped to the wrong id) than the broker's."""
    h = clean_run(per_publisher=3)
    h.fault_start("connection-cut", t=1.0)
    h.at(1.5).publish("publisher-0", "p0-50")
    h.fault_stop("connection-cut", t=2.0)
    r = run(h.at(3).finish(), "quorum")
    assert r.headline == "lost" and r.counts.lost_by_broker == 0
    assert [f["owner"] for f in r.findings] == ["client"]


def test_quorum_loss_with_two_nodes_down_at_once_is_not_called_the_brokers() -> None:
    h = clean_run(per_publisher=3)
    h.at(0.9).publish("publisher-0", "p0-50")
    node_fault(h, "node-kill", N2, 1.0, 3.0, window=0)
    node_fault(h, "node-stop", N3, 1.5, 3.5, window=1)
    r = run(h.at(4).finish(), "quorum")
    assert r.headline == "lost" and r.counts.lost_by_broker == 0
    assert any("2 nodes were hit at once" in n for n in r.notes), r.notes


def test_quorum_loss_with_auto_ack_consumers_is_not_called_the_brokers() -> None:
    h = HistoryBuilder()
    h.start("consumer-0")
    h.start("publisher-0")
    h.at(0.5)
    for k in range(3):
        h.publish("publisher-0", f"p0-{k}")
        h.deliver("consumer-0", f"p0-{k}")  # no acks: auto-ack
    h.at(0.9).publish("publisher-0", "p0-50")
    node_fault(h, "node-kill", N2, 1.0, 3.0)
    r = run(h.at(4).finish(), "quorum")
    assert r.headline == "lost" and r.counts.lost_by_broker == 0
    assert any("auto-ack" in n for n in r.notes), r.notes


def test_an_unknown_queue_type_attributes_nothing() -> None:
    r = run(killed(lose=("p0-50",)), None)
    assert r.headline == "lost" and r.counts.lost_by_broker == 0 and r.counts.lost_queue_node_down == 0
    assert [f["owner"] for f in r.findings] == ["client"]


def test_classic_confirmed_while_its_node_was_down_is_the_queue_types() -> None:
    """The documented classification (docs/checker.md "Queue types and clusters"): fail -- the run
    lost confirmed data -- but owned by the configuration, headline "lost (classic queue)"."""
    h = killed(during=("p0-70", "p0-71"))
    h.sample(0, t=0.2, node=N2)  # the management API shows the queue on the node that is killed
    r = run(h, "classic")
    assert r.verdict == "fail" and r.headline == "lost (classic queue)"
    c = r.counts
    assert (c.lost, c.lost_confirmed, c.lost_queue_node_down, c.lost_by_broker) == (2, 2, 2, 0)
    assert [(f["category"], f["owner"]) for f in r.findings] == [("lost_queue_node_down", "config")]
    assert r.reasons[0].startswith("lost 2 messages the broker confirmed while the classic queue's node was down "
                                   f"(node-kill of {N2} at t=+1.1s–+2.9s): a classic queue lives on one node and "
                                   "is not replicated")
    assert "The queue type's doing, not the client's" in r.reasons[0]


def test_classic_confirmed_before_its_node_went_down_and_lost_stays_the_clients() -> None:
    """A durable classic queue keeps persistent messages across its node's restart: what was
    confirmed before the kill and lost was transient (the client's choice)."""
    h = killed(lose=("p0-50",), during=("p0-70",))
    h.sample(0, t=0.2, node=N2)
    r = run(h, "classic")
    assert [(f["category"], f["owner"], f["count"]) for f in r.findings] == [
        ("lost_confirmed", "client", 1), ("lost_queue_node_down", "config", 1)]
    assert r.headline == "lost"  # the client's own loss leads
    assert "the classic queue's node was down (node-kill of" in r.reasons[0]
    assert "were not persistent" in r.reasons[0]


def test_classic_fault_on_another_node_attributes_nothing() -> None:
    h = killed(during=("p0-70",))
    h.sample(0, t=0.2, node=N1)  # the queue lives on rabbit-1; rabbit-2 was killed
    r = run(h, "classic")
    assert r.headline == "lost" and r.counts.lost_queue_node_down == 0
    assert r.reasons == ["lost 1 message confirmed by the broker (e.g. p0-70)"]


def test_classic_with_the_queues_node_not_recorded_counts_any_down_node() -> None:
    r = run(killed(during=("p0-70",)), "classic")
    assert r.counts.lost_queue_node_down == 1 and r.headline == "lost (classic queue)"
    assert "the queue node is not recorded: taken to be the one down" in r.reasons[0]


def test_classic_node_cut_does_not_take_the_queue_down() -> None:
    """node-cut removes the clients' path to a node; the node and its queue carry on."""
    r = run(killed(during=("p0-70",), fault="node-cut"), "classic")
    assert r.counts.lost_queue_node_down == 0 and r.headline == "lost"


def test_classic_stranded_under_its_nodes_fault_says_so_and_stays_the_clients() -> None:
    h = clean_run(per_publisher=3)
    node_fault(h, "node-stop", N2, 1.0, 3.0)
    h.at(3.5).publish("publisher-0", "p0-9")
    r = run(h.at(4).finish(drained=("p0-9",)), "classic")
    assert r.headline == "stranded"
    f = r.findings[0]
    assert f["owner"] == "client"
    assert "the classic queue's node was down (node-stop of rabbit-2@localhost" in f["text"]
    assert "consuming again then is the client's part" in f["text"]


def test_single_node_broker_crash_in_a_quorum_run_is_a_single_node_fault() -> None:
    r = run(killed(lose=("p0-50",), fault="broker-crash", node=None), "quorum", nodes=1)
    assert r.headline == "broker lost" and "broker-crash of one node" in r.reasons[0]


def test_duplicates_are_still_split_by_cause_in_a_cluster_run() -> None:
    h = killed()
    h.at(3.7).deliver("consumer-0", "p0-99", redelivered=True)
    r = run(h, "quorum")
    assert r.verdict == "pass" and r.counts.duplicated_redelivery == 1 and r.counts.duplicated_resend == 0


def test_nodes_timeline_from_conn_node() -> None:
    h = clean_run(per_publisher=3)
    h.emit("consumer-0", "conn.node", t=0.6, role="harness", node=N1)
    h.emit("publisher-0", "conn.node", t=0.6, role="harness", node=N2)
    h.emit("consumer-0", "conn.node", t=1.5, role="harness", node=None)
    h.emit("consumer-0", "conn.node", t=2.0, role="harness", node=N3)
    h.emit("consumer-0", "conn.node", t=2.5, role="harness", node=N3)  # seen again: one interval
    r = run(h.at(4).finish(), "quorum")
    assert r.verdict == "pass", r.reasons
    tl = r.metrics["nodes_timeline"]
    t0 = 0.0  # the first event is the warmup phase at the builder's start
    assert tl["consumer-0"][:2] == [{"node": N1, "start_s": 0.6 - t0, "end_s": 1.5},
                                    {"node": None, "start_s": 1.5, "end_s": 2.0}]
    assert tl["consumer-0"][2]["node"] == N3 and tl["consumer-0"][2]["start_s"] == 2.0
    assert tl["consumer-0"][2]["end_s"] >= 4.0
    assert [row["node"] for row in tl["publisher-0"]] == [N2]
    assert r.metrics["node_names"] == [N1, N2, N3]
    # conn.node is the harness's: it is no client event (lifetimes, detection, drops ignore it)
    assert set(r.metrics["clients"]) == {"consumer-0", "publisher-0"}
    assert r.timing.detection_s is None


def test_classic_leader_kill_names_the_queues_home_node() -> None:
    """leader-kill picks the queue's node itself: a later node-stop of another node is not the queue's."""
    h = clean_run(per_publisher=3)
    node_fault(h, "leader-kill", N1, 1.0, 3.0, window=0)
    node_fault(h, "node-stop", N2, 4.0, 6.0, window=1)
    h.at(5.0).publish("publisher-0", "p0-70")  # confirmed while rabbit-2 (not the queue's node) was down
    h.at(2.0).publish("publisher-0", "p0-71")  # confirmed while rabbit-1 (the queue's home) was down
    r = run(h.at(7).finish(), "classic")
    assert r.counts.lost_queue_node_down == 1 and r.examples["lost_queue_node_down"] == ["p0-71"]
    assert r.metrics["queue_nodes"] == [N1]
    assert [(f["category"], f["owner"]) for f in r.findings] == [("lost_confirmed", "client"),
                                                                 ("lost_queue_node_down", "config")]
