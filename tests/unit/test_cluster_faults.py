"""Cluster faults (harness/faults/catalogue/cluster.py) against fakes: a NullBackend of three
nodes (models each node's state), a backend whose rabbitmqctl models the cookie partition, and a
fake Toxiproxy. No broker boots here; tests/integration/test_cluster.py does that (slow)."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest
from test_faults_catalogue import FakeToxiproxy

from harness.engine import check_available
from harness.env.backend import Capabilities, NullBackend
from harness.errors import ChaosError, FaultUnavailable
from harness.faults.base import FaultContext
from harness.faults.catalogue.cluster import _heal_expr, _partition_expr, erlang_atoms
from harness.faults.registry import faults, parse

NODES = ["rc_a@localhost", "rc_b@localhost", "rc_c@localhost"]
CLUSTER_FAULTS = {"node-kill", "node-stop", "node-pause", "leader-kill", "node-partition", "node-cut"}


def cluster(**kw: Any) -> NullBackend:
    return NullBackend(capabilities=Capabilities(process=True, ctl=True, nodes=3), node_names=list(NODES), **kw)


def ctx_for(broker: Any, tp: FakeToxiproxy | None = None, queue_type: str = "quorum") -> FaultContext:
    node_proxies = {n: {"publisher": f"run-publisher-n{i + 1}", "consumer": f"run-consumer-n{i + 1}"}
                    for i, n in enumerate(NODES)}
    return FaultContext(broker=broker, toxiproxy=tp or FakeToxiproxy(),  # type: ignore[arg-type]
                        proxies={"publisher": "run-publisher", "consumer": "run-consumer"}, vhost="rc-run",
                        queue="rabbit-chaos.q", run_id="run", queue_type=queue_type, node_proxies=node_proxies)


def run(spec: str, c: FaultContext) -> tuple[Any, list[tuple[str, str, bool, Any]]]:
    fault = parse(spec)
    with c.acting(fault, "start"):
        fault.start(c)
    with c.acting(fault, "heal"):
        fault.heal(c)
    return fault, [(e.action, e.effect, e.observed, e.extra.get("node")) for e in c.effects]


def test_the_cluster_family_is_registered_broker_scoped_and_needs_a_cluster() -> None:
    found = {n: f for n, f in faults().items() if f.family == "cluster"}
    assert set(found) == CLUSTER_FAULTS
    for name, cls in found.items():
        assert "cluster" in cls.needs, name
        assert cls.scope == "broker", name
        assert cls.description and "\n" not in cls.description, name


@pytest.mark.parametrize("name", sorted(CLUSTER_FAULTS))
def test_one_node_is_refused_up_front_with_the_fix(name: str) -> None:
    env = SimpleNamespace(broker=NullBackend())  # one node, process and ctl
    with pytest.raises(FaultUnavailable) as info:
        check_available(parse(name), env)  # type: ignore[arg-type]
    assert "needs a cluster" in info.value.problem
    assert "--nodes 3" in (info.value.fix or "")


@pytest.mark.parametrize("name", sorted(CLUSTER_FAULTS))
def test_a_cluster_is_accepted(name: str) -> None:
    check_available(parse(name), SimpleNamespace(broker=cluster()))  # type: ignore[arg-type]


@pytest.mark.parametrize(("spec", "node", "down", "up"), [
    ("node-kill", NODES[0], "node down", "node up"),
    ("node-kill:node=3", NODES[2], "node down", "node up"),
    ("node-stop:node=2", NODES[1], "node down", "node up"),
    ("node-pause", NODES[0], "node paused", "node resumed"),
])
def test_node_faults_act_on_the_chosen_node_and_heal_it(spec: str, node: str, down: str, up: str) -> None:
    b = cluster()
    _, effects = run(spec, ctx_for(b))
    assert effects == [("start", down, True, node), ("heal", up, True, node)]
    assert b.node_state(node) == "running"
    assert all(b.node_state(n) == "running" for n in NODES)
    acted = [(op, args) for op, args in b.calls if op in ("kill_node", "stop_node", "pause", "start_node", "resume")]
    assert all(args == (node,) for _, args in acted), acted


def test_heal_is_idempotent_and_safe_without_start() -> None:
    b = cluster()
    c = ctx_for(b)
    fault = parse("node-kill:node=2")
    fault.heal(c)  # never started: the node runs, nothing is started
    assert ("start_node", (NODES[1],)) not in b.calls
    fault.start(c)
    fault.heal(c)
    fault.heal(c)
    assert [a for op, a in b.calls if op == "start_node"] == [(NODES[1],)]


def test_node_pause_is_silent() -> None:
    assert parse("node-pause").silences()
    assert not parse("node-kill").silences()


def test_a_node_index_beyond_the_cluster_names_the_range() -> None:
    with pytest.raises(ChaosError) as info:
        parse("node-kill:node=4").start(ctx_for(cluster()))
    assert "3 nodes" in info.value.problem and "node=1..3" in (info.value.fix or "")
    with pytest.raises(ChaosError):
        parse("node-kill:node=0")


class QueueMgmt:
    def __init__(self, info: dict[str, Any] | None) -> None:
        self.info = info

    def queue(self, vhost: str, name: str) -> dict[str, Any] | None:
        return self.info


def test_leader_kill_kills_the_quorum_leader() -> None:
    b = cluster(mgmt=QueueMgmt({"type": "quorum", "leader": NODES[1], "node": NODES[1]}))  # type: ignore[arg-type]
    _, effects = run("leader-kill", ctx_for(b))
    assert effects == [("start", "leader node down", True, NODES[1]), ("heal", "node up", True, NODES[1])]


def test_leader_kill_on_a_classic_queue_kills_its_home_node_and_says_so() -> None:
    b = cluster(mgmt=QueueMgmt({"type": "classic", "node": NODES[2]}))  # type: ignore[arg-type]
    c = ctx_for(b, queue_type="classic")
    run("leader-kill", c)
    start = c.effects[0]
    assert start.extra["node"] == NODES[2] and start.extra["queue_role"] == "home"
    assert "classic queue: no leader" in start.effect


def test_leader_kill_heal_without_start_does_nothing() -> None:
    b = cluster()
    parse("leader-kill").heal(ctx_for(b))
    assert not any(op == "start_node" for op, _ in b.calls)


class PartitionBackend(NullBackend):
    """rabbitmqctl eval modelled as the cookie method does: after the partition expression on a
    node, its peers no longer list it in nodes() and it stops serving (pause_minority); the heal
    expression undoes both."""

    isolated: set[str]

    def ctl(self, *args: str, node: str | None = None, timeout: float = 30.0) -> str:
        super().ctl(*args, node=node, timeout=timeout)
        expr = args[1] if len(args) > 1 else ""
        if "disconnect_node" in expr:
            self.isolated.add(str(node))
            return "ok\n"
        if "net_kernel:connect_node" in expr:
            self.isolated.discard(str(node))
            return "ok\n"
        if expr == "nodes().":
            if node in self.isolated:
                return "[]\n"
            # as Erlang prints them: bare atoms (a@h needs no quotes), the CLI's own node quoted
            seen = [n for n in self.node_names if n != node and n not in self.isolated]
            return "[" + ",\n ".join([*seen, "'rabbitmqcli-1-x@localhost'"]) + "]\n"
        if expr == "rabbit:is_running().":
            return "false\n" if node in self.isolated else "true\n"
        return ""


def test_node_partition_isolates_then_rejoins_the_node() -> None:
    b = PartitionBackend(capabilities=Capabilities(process=True, ctl=True, nodes=3), node_names=list(NODES))
    b.isolated = set()
    c = ctx_for(b)
    fault = parse("node-partition:node=2")
    with c.acting(fault, "start"):
        fault.start(c)
    assert b.isolated == {NODES[1]}
    with c.acting(fault, "heal"):
        fault.heal(c)
    assert b.isolated == set()
    assert [(e.action, e.effect, e.observed, e.extra["node"]) for e in c.effects] == [
        ("start", "node partitioned", True, NODES[1]),
        ("start", "minority node paused", True, NODES[1]),
        ("heal", "node rejoined", True, NODES[1]),
    ]
    assert c.effects[0].extra["peers"] == [NODES[0], NODES[2]]
    evals = [a[2] for op, a in b.calls if op == "ctl" and a[0] == NODES[1] and a[1] == "eval"]
    assert "disconnect_node" in evals[0]
    assert any("net_kernel:connect_node" in e for e in evals[1:])


def test_printed_erlang_node_lists_parse_bare_or_quoted() -> None:
    assert erlang_atoms("[rc_a@localhost,\n 'rc-b@localhost']\n") == {"rc_a@localhost", "rc-b@localhost"}
    assert erlang_atoms("[]\n") == set()


def test_partition_erlang_quotes_node_names_and_uses_a_fresh_cookie() -> None:
    one, two = _partition_expr(NODES[:2]), _partition_expr(NODES[:2])
    assert "['rc_a@localhost', 'rc_b@localhost']" in one
    assert "erlang:set_cookie(P, Bad)" in one and "erlang:disconnect_node(P)" in one
    assert one != two  # a random cookie each time: never one the node could hold
    heal = _heal_expr(NODES[1:])
    assert heal.startswith("C = erlang:get_cookie(),") and "net_kernel:connect_node(P)" in heal


def test_node_cut_disables_that_nodes_proxies_only() -> None:
    tp = FakeToxiproxy()
    tp.proxy = lambda name: {"enabled": tp.enabled.get(name, True)}  # type: ignore[attr-defined]
    c = ctx_for(cluster(), tp)
    fault = parse("node-cut:node=2")
    with c.acting(fault, "start"):
        fault.start(c)
    assert tp.enabled == {"run-consumer-n2": False, "run-publisher-n2": False}
    with c.acting(fault, "heal"):
        fault.heal(c)
    assert tp.enabled == {"run-consumer-n2": True, "run-publisher-n2": True}
    assert [(e.effect, e.observed, e.extra["node"]) for e in c.effects] == [
        ("node cut off from clients", True, NODES[1]), ("node reachable again", True, NODES[1])]
