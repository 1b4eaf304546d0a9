"""The local cluster's parts that need no broker: port layout (nodes, proxies, slots never
collide; one node's numbering unchanged), node names and config, the Backend contract, the
failover management API, conn.node tracking, and reaping a killed run's cluster records."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from harness.env import procs
from harness.env.backend import Backend, Capabilities
from harness.env.cluster import (
    MAX_NODES,
    FailoverManagement,
    LocalCluster,
    check_nodes,
    node_name,
    node_ports,
    reap_local,
)
from harness.env.environment import Environment
from harness.env.management import Management
from harness.errors import ChaosError, HarnessFailure
from harness.history import HistoryWriter, read_events
from harness.run.phases import Sampler

BASE = 25400


def test_node_one_keeps_the_single_nodes_ports_and_others_sit_far_above() -> None:
    assert node_ports(BASE, 0) == node_ports(BASE, 0).from_base(BASE)
    assert [node_ports(BASE, i).amqp for i in range(3)] == [BASE, BASE + 300, BASE + 310]
    assert {node_ports(BASE, i).epmd for i in range(3)} == {BASE + 3}  # one epmd
    assert node_name(BASE, 2) == "rabbit_chaos_25400_c@localhost"


@pytest.mark.parametrize("nodes", [1, 3, MAX_NODES])
def test_no_port_collides_across_nodes_proxy_api_and_every_slot(tmp_path: Path, nodes: int) -> None:
    env = Environment(tmp_path, BASE, nodes=nodes)
    used: list[int] = [BASE + 4]  # the proxy API
    for i in range(nodes):
        p = node_ports(BASE, i)
        used += [p.amqp, p.dist, p.management]
    used.append(BASE + 3)
    for slot in range(17):  # slot 0 + up to 16 jobs
        used += list(env.proxy_ports(slot).values())
    assert len(used) == len(set(used))
    assert max(used) < 32768  # below the kernel's ephemeral range


def test_one_node_proxy_numbering_is_unchanged(tmp_path: Path) -> None:
    env = Environment(tmp_path, BASE)
    env.proxy_slot = 2
    assert env.proxy_listen(0) == f"127.0.0.1:{BASE + 5 + 4}"
    assert env.proxy_listen(1) == f"127.0.0.1:{BASE + 5 + 5}"
    assert env.proxy_ports(1) == {"publisher proxy (slot 1)": BASE + 7, "consumer proxy (slot 1)": BASE + 8}


def test_a_cluster_slot_holds_two_ports_per_node(tmp_path: Path) -> None:
    env = Environment(tmp_path, BASE, nodes=3)
    env.proxy_slot = 1
    ports = [int(env.proxy_listen(i, k).rpartition(":")[2]) for k in range(3) for i in range(2)]
    assert ports == list(range(BASE + 5 + 6, BASE + 5 + 12))
    with pytest.raises(HarnessFailure):
        env.proxy_listen(0, 3)


def test_environment_picks_the_cluster_for_nodes_above_one(tmp_path: Path) -> None:
    env = Environment(tmp_path, BASE, nodes=3)
    assert isinstance(env.broker, LocalCluster)
    assert env.broker.capabilities == Capabilities(process=True, ctl=True, nodes=3)
    assert isinstance(env.broker, Backend)
    assert env.broker.state_dir == (tmp_path / "cluster").resolve()


@pytest.mark.parametrize("nodes", [0, MAX_NODES + 1])
def test_a_node_count_out_of_range_is_a_user_error(tmp_path: Path, nodes: int) -> None:
    with pytest.raises(ChaosError) as info:
        check_nodes(nodes)
    assert f"give 1 (one node) to {MAX_NODES}" in (info.value.fix or "")


def test_nodes_need_the_local_backend(tmp_path: Path) -> None:
    with pytest.raises(ChaosError) as info:
        Environment(tmp_path, BASE, backend="compose", nodes=3)
    assert "needs the local backend" in info.value.problem


def test_cluster_nodes_share_a_cookie_and_only_joiners_discover_the_seed(tmp_path: Path) -> None:
    c = LocalCluster(tmp_path / "cluster", BASE, nodes=3)
    assert [n.name for n in c.nodes()] == [node_name(BASE, i) for i in range(3)]
    assert [n.upstream for n in c.nodes()] == [f"127.0.0.1:{node_ports(BASE, i).amqp}" for i in range(3)]
    assert {m.cookie for m in c.members} == {c.cookie}
    assert all(not m.own_epmd for m in c.members)
    assert "peer_discovery_backend" not in c.members[0].extra_conf  # the seed boots alone
    for m in c.members[1:]:
        assert f"classic_config.nodes.1 = {node_name(BASE, 0)}" in m.extra_conf
    assert all("cluster_partition_handling = pause_minority" in m.extra_conf for m in c.members)
    assert c.member(None) is c.members[0]
    with pytest.raises(HarnessFailure, match="no node"):
        c.member("rabbit@elsewhere")


class Member(Management):
    def __init__(self, name: str, fails: bool) -> None:
        super().__init__(f"http://{name}.invalid", "guest", "guest")
        self.name, self.fails, self.asked = name, fails, 0

    def _req(self, method: str, path: str, ok: tuple[int, ...] = (200, 201, 204), **kw: Any) -> Any:
        self.asked += 1
        if self.fails:
            raise HarnessFailure(f"{self.name} down")
        return [{"name": self.name}]


def test_failover_management_uses_the_node_that_answers_and_sticks_to_it() -> None:
    api = FailoverManagement([Management("http://a.invalid", "g", "g")])
    a, b = Member("a", True), Member("b", False)
    api.members = [a, b]
    assert api.vhosts() == ["b"]
    assert api.vhosts() == ["b"]
    assert (a.asked, b.asked) == (1, 2)  # the down node cost one try, not one per call
    b.fails = True
    with pytest.raises(HarnessFailure, match="down"):
        api.vhosts()


def _conn(name: str, node: str, at: int = 1) -> dict[str, Any]:
    return {"client_properties": {"connection_name": name}, "node": node, "connected_at": at}


def test_sampler_writes_conn_node_when_a_client_moves_or_goes(tmp_path: Path) -> None:
    w = HistoryWriter(tmp_path / "h.jsonl", "harness", "harness")
    s = Sampler(None, "rc-run", w, "run", ("consumer-0", "publisher-0"))  # type: ignore[arg-type]
    s.track_nodes([])  # nobody yet: nothing to say
    s.track_nodes([_conn("run/consumer-0", "a"), _conn("run/harness", "a"), _conn("other/publisher-0", "b")])
    s.track_nodes([_conn("run/consumer-0", "a")])  # unchanged: no event
    s.track_nodes([_conn("run/consumer-0", "a", 1), _conn("run/consumer-0", "b", 2)])  # mid-failover: newest
    s.track_nodes([])
    w.close()
    events, problems = read_events(tmp_path / "h.jsonl")
    assert problems == []  # valid against the history schema (conn.node)
    got = [(e["proc"], e["node"]) for e in events if e["kind"] == "conn.node"]
    assert got == [("consumer-0", "a"), ("consumer-0", "b"), ("consumer-0", None)]


def test_reap_local_kills_a_killed_runs_cluster_nodes_and_epmd(tmp_path: Path) -> None:
    """Records as a SIGKILLed cluster run leaves them (owner gone): each node's and the epmd's
    process is killed, whichever shape the next run chooses."""
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    sleepers = []
    for rec in ("cluster/pids.json", "cluster/a/pids.json", "cluster/b/pids.json", "broker/pids.json"):
        p = subprocess.Popen(["sleep", "300"], start_new_session=True)
        sleepers.append(p)
        r = procs.PidRecord(tmp_path / rec)
        os.environ[procs.RECORD_OWNER] = str(dead.pid)
        try:
            r.add("proc", p.pid, "sleep 300", pgid=p.pid)
        finally:
            del os.environ[procs.RECORD_OWNER]
    reaped = reap_local(tmp_path)
    assert len(reaped) == 4
    for p in sleepers:
        assert p.wait(timeout=5) != 0
    assert not list(tmp_path.rglob("pids.json"))


@pytest.mark.parametrize("cmd", [["run", "--client", "pika-best"], ["matrix", "--clients", "pika-best"]])
def test_cli_refuses_a_cluster_fault_on_one_node_before_any_boot(tmp_path: Path, cmd: list[str]) -> None:
    from typer.testing import CliRunner

    from harness.cli import app

    flag = "--fault" if cmd[0] == "run" else "--faults"
    res = CliRunner().invoke(app, [*cmd, flag, "node-partition", "--state-dir", str(tmp_path / "s"),
                                   "--reports-dir", str(tmp_path / "r"), "--base-port", str(BASE)])
    assert res.exit_code == 2, res.output
    assert "node-partition needs a cluster" in res.output and "--nodes 3" in res.output
    assert not (tmp_path / "s").exists()  # nothing booted, nothing written


def test_config_takes_nodes(tmp_path: Path) -> None:
    from harness.config import load

    (tmp_path / "c.toml").write_text("nodes = 3\n")
    assert load(tmp_path / "c.toml").nodes == 3
    (tmp_path / "c.toml").write_text("nodes = 8\n")
    with pytest.raises(ChaosError, match="nodes"):
        load(tmp_path / "c.toml")


def test_an_interrupted_parallel_boot_cancels_every_node_before_raising(tmp_path: Path,
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """Ctrl-C while the nodes boot in threads: each node stops waiting (its ``cancel``), so the
    environment's stop() that follows finds every process the boot started."""
    import threading

    c = LocalCluster(tmp_path / "cluster", BASE, nodes=3)
    real_join, seen = threading.Thread.join, []

    def join(self: threading.Thread, timeout: float | None = None) -> None:
        seen.append(self.name)
        if len(seen) == 1:
            raise KeyboardInterrupt
        real_join(self, timeout)

    monkeypatch.setattr(threading.Thread, "join", join)
    with pytest.raises(KeyboardInterrupt):
        c._in_parallel(lambda m: m.cancel.wait(10))
    assert all(m.cancel.is_set() for m in c.members)


def test_chaos_nodes_out_of_range_is_a_usage_error(pytester: pytest.Pytester) -> None:
    pytester.makepyfile("def test_x():\n    pass\n")
    res = pytester.runpytest("--chaos-nodes", "9")
    assert res.ret == pytest.ExitCode.USAGE_ERROR
    res.stderr.fnmatch_lines(["*--chaos-nodes*invalid choice*"])


@pytest.mark.parametrize(("procs_", "where"), [(("consumer-0",), {"node": "a", "leader": "a"}), ((), {})])
def test_queue_samples_name_the_queues_node_on_a_cluster_only(tmp_path: Path, procs_: tuple[str, ...],
                                                               where: dict[str, str]) -> None:
    from types import SimpleNamespace

    mgmt = SimpleNamespace(queue=lambda v, q: {"messages_ready": 1, "messages_unacknowledged": 0, "consumers": 1,
                                               "node": "a", "leader": "a"},
                           connections=lambda v: [])
    env = SimpleNamespace(broker=SimpleNamespace(mgmt=mgmt))
    w = HistoryWriter(tmp_path / "h.jsonl", "harness", "harness")
    Sampler(env, "rc-run", w, "run", procs_).sample()  # type: ignore[arg-type]
    w.close()
    events, problems = read_events(tmp_path / "h.jsonl")
    assert problems == []
    (sample,) = [e for e in events if e["kind"] == "queue.sample"]
    assert {k: sample[k] for k in ("node", "leader") if k in sample} == where
