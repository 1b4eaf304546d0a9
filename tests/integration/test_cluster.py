"""The local three-node cluster against the real rabbitmq-server (slow: one cluster boot, ~10 s on
2 cores, plus a node kill, a partition and a client run): it forms on loopback only, node-kill and
node-partition take effect and heal, a client run gets per-node proxies and conn.node events, and
a SIGKILLed cluster run's nodes are reaped by the next run. Ports: RC_CLUSTER_BASE_PORT (25440)
.. +312; state: RC_CLUSTER_STATE (/tmp/rc-cluster-state)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from harness.env import procs
from harness.env.cluster import LocalCluster, node_name, node_ports
from harness.env.environment import Environment
from harness.errors import ChaosError
from harness.faults.base import FaultContext
from harness.faults.registry import parse

pytestmark = [pytest.mark.slow, pytest.mark.broker]
BASE_PORT = int(os.environ.get("RC_CLUSTER_BASE_PORT", "25440"))
STATE_DIR = Path(os.environ.get("RC_CLUSTER_STATE", "/tmp/rc-cluster-state"))
NAMES = [node_name(BASE_PORT, i) for i in range(3)]


def _ours_running() -> list[int]:
    """Every live process of a cluster at BASE_PORT: the three beams, their wrappers, the epmd."""
    frags = [f"RABBITMQ_NODENAME={n}" for n in NAMES] + [f"-port {BASE_PORT + 3}"]
    return [p for p in procs._pids() if any(procs.matches(p, f) for f in frags)]


def test_a_sigkilled_cluster_run_is_reaped_by_the_next() -> None:
    """First in the module: it boots its own cluster before the module's one (one at a time)."""
    state = STATE_DIR / "reap"
    script = textwrap.dedent(f"""
        from pathlib import Path
        from harness.env.environment import Environment
        env = Environment(Path({str(state)!r}), {BASE_PORT}, nodes=3)
        env.start()
        print("ready", flush=True)
        import time; time.sleep(600)
    """)
    owner = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        assert owner.stdout is not None and owner.stdout.readline().strip() == "ready"
        beams = [LocalCluster(state / "cluster", BASE_PORT).beam_pid(n) for n in NAMES]
        assert all(beams), beams
        os.kill(owner.pid, signal.SIGKILL)
        owner.wait()
        assert all(procs.alive(b) for b in beams if b), "SIGKILL of the owner leaves the nodes (until reaped)"
        # a run under another state dir is told the ports hold a leftover of ours, and where to reap it
        with pytest.raises(ChaosError) as info:
            Environment(STATE_DIR / "other", BASE_PORT, nodes=3).preflight()
        assert f"run with --state-dir {state.resolve()} to reap it" in (info.value.fix or ""), info.value
        nxt = Environment(state, BASE_PORT, nodes=3)
        nxt.preflight()  # the next run's first step: reaps the three nodes (and an epmd, if it outlived us)
        assert _ours_running() == []
        for i in range(3):
            p = node_ports(BASE_PORT, i)
            assert all(procs.port_free(port) for port in (p.amqp, p.dist, p.management, p.epmd))
    finally:
        owner.kill()
        from harness.env.cluster import reap_local

        reap_local(state)


@pytest.fixture(scope="module")
def env() -> Iterator[Environment]:
    e = Environment(STATE_DIR / "env", BASE_PORT, nodes=3)
    try:
        e.start()
        yield e
    finally:
        e.stop()
    assert _ours_running() == []


def test_the_cluster_forms_on_loopback_and_isolation_is_a_vhost(env: Environment) -> None:
    cluster = env.broker
    assert isinstance(cluster, LocalCluster)
    print(f"cluster boot {cluster.boot_s:.2f}s, formed by {cluster.formed_by}")
    assert cluster.running_nodes() == sorted(NAMES)
    assert set(cluster.formed_by.values()) <= {"classic_config", "join_cluster"}
    listening = subprocess.run(["ss", "-ltnpH"], capture_output=True, text=True).stdout
    ours = {p for i in range(3) for p in (node_ports(BASE_PORT, i).amqp, node_ports(BASE_PORT, i).dist,
                                          node_ports(BASE_PORT, i).management)} | {BASE_PORT + 3}
    for line in listening.splitlines():
        local_addr = line.split()[3]
        if int(local_addr.rpartition(":")[2]) in ours:
            assert local_addr.startswith(("127.0.0.1:", "[::1]:")), line
    t0 = time.monotonic()
    cluster.create_vhost("rc-isolation-probe")
    cluster.delete_vhost("rc-isolation-probe")
    print(f"vhost create+delete {time.monotonic() - t0:.3f}s")


def _ctx(env: Environment) -> FaultContext:
    assert env.toxiproxy is not None
    return FaultContext(broker=env.broker, toxiproxy=env.toxiproxy, proxies={}, vhost="/", queue="none",
                        run_id="probe")


def test_node_kill_takes_the_node_down_and_heal_brings_it_back(env: Environment) -> None:
    cluster = env.broker
    assert isinstance(cluster, LocalCluster)
    ctx, fault = _ctx(env), parse("node-kill:node=2")
    with ctx.acting(fault, "start"):
        fault.start(ctx)
    assert cluster.running_nodes() == sorted([NAMES[0], NAMES[2]])
    with ctx.acting(fault, "heal"):
        fault.heal(ctx)
    assert [(e.effect, e.observed, e.extra["node"]) for e in ctx.effects] == [
        ("node down", True, NAMES[1]), ("node up", True, NAMES[1])]
    assert cluster.running_nodes() == sorted(NAMES)


def test_node_partition_pauses_the_minority_and_heal_rejoins_it(env: Environment) -> None:
    cluster = env.broker
    assert isinstance(cluster, LocalCluster)
    ctx, fault = _ctx(env), parse("node-partition:node=3")
    t0 = time.monotonic()
    with ctx.acting(fault, "start"):
        fault.start(ctx)
    # the majority lists the isolated node as not running; the node itself stopped serving AMQP
    assert cluster.running_nodes() == sorted(NAMES[:2])
    assert procs.port_free(node_ports(BASE_PORT, 2).amqp)
    assert NAMES[2] not in cluster.ctl("eval", "nodes().", node=NAMES[0])
    t1 = time.monotonic()
    with ctx.acting(fault, "heal"):
        fault.heal(ctx)
    print(f"partition observed in {ctx.effects[0].t - t0:.2f}s, minority paused {ctx.effects[1].t - t0:.2f}s, "
          f"rejoined {ctx.effects[2].t - t1:.2f}s after heal began")
    assert [(e.effect, e.observed) for e in ctx.effects] == [
        ("node partitioned", True), ("minority node paused", True), ("node rejoined", True)]
    assert cluster.running_nodes() == sorted(NAMES)


def test_a_client_run_on_the_cluster_gets_every_node_and_conn_node_events(env: Environment, tmp_path: Path) -> None:
    from harness.engine import RunSpec, run_cell

    doc = run_cell(env, RunSpec(client="pika-best", fault="node-kill", count=300, queue_type="quorum"), tmp_path)
    run_dir = tmp_path / doc["run_id"]
    consumer_cfg = json.loads(next((run_dir / "config").glob("consumer*")).read_text())
    assert len(consumer_cfg["amqp_urls"]) == 3 and consumer_cfg["amqp_urls"][0] == consumer_cfg["amqp_url"]
    events = [json.loads(line) for line in (run_dir / "history.jsonl").read_text().splitlines()]
    effects = [e for e in events if e["kind"] == "fault.effect"]
    assert [(e["effect"], e["node"]) for e in effects] == [("node down", NAMES[0]), ("node up", NAMES[0])]
    moves = [(e["proc"], e["node"]) for e in events if e["kind"] == "conn.node"]
    assert ("consumer-0", NAMES[0]) in moves  # seen on node 1 before the kill
    assert doc["verdict"] != "unknown", doc["reasons"]
    print(f"pika-best x node-kill (quorum): {doc['verdict']} {doc['headline']!r} lost={doc['counts'].get('lost')} "
          f"moves={moves}")
