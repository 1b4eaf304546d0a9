"""The backend contract (harness/env/backend.py) without a broker: every backend class satisfies
the Protocol, capabilities decide what the engine refuses up front (with the reason and the fix),
the process faults drive a NullBackend through the right node operations and record their
effects, and the consumers that used to probe with getattr (conformance's log files, the matrix
child's management URL) get typed answers."""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any, ClassVar

import pytest

from harness.engine import check_available
from harness.env.backend import Backend, Capabilities, NodeInfo, NullBackend, NullManagement, check_node, pid_state
from harness.env.compose import BROKER_CONTAINER, NODE, ComposeBroker
from harness.env.external import ExternalBroker
from harness.env.local import LocalBroker
from harness.errors import FaultUnavailable, HarnessFailure
from harness.faults.base import Fault, FaultContext, Scope
from harness.faults.registry import faults, parse


def _backend(kind: str, tmp_path: Path) -> Any:
    """One instance of a backend class, built without booting or connecting anything."""
    if kind == "local":
        return LocalBroker(tmp_path / "local", base_port=25200)
    if kind == "external":
        return ExternalBroker("amqp://bob:pw@127.0.0.1:1/")
    if kind == "compose":
        return ComposeBroker(client=object())
    if kind == "cluster":
        if importlib.util.find_spec("harness.env.cluster") is None:
            pytest.skip("no LocalCluster yet (harness/env/cluster.py)")
        from harness.env.cluster import LocalCluster

        return LocalCluster(tmp_path / "cluster", base_port=25210)
    return NullBackend()


def _missing(backend: Any) -> list[str]:
    """The contract's members ``backend`` lacks (named in the failure, so the fix is obvious)."""
    members = [m for m in dir(Backend) if not m.startswith("_")] + list(Backend.__annotations__)
    return sorted({m for m in members if not hasattr(backend, m)})


@pytest.mark.parametrize("kind", ["local", "external", "compose", "cluster", "null"])
def test_every_backend_satisfies_the_protocol(kind: str, tmp_path: Path) -> None:
    backend = _backend(kind, tmp_path)
    typed: Backend = backend  # mypy: harness/env/backend.py checks each class the same way
    assert isinstance(typed, Backend), f"{type(backend).__name__} lacks {_missing(backend)}"
    assert isinstance(typed.capabilities, Capabilities)
    nodes = typed.nodes()
    assert nodes and all(isinstance(n, NodeInfo) and ":" in n.upstream for n in nodes)
    assert typed.capabilities.nodes == len(nodes)
    assert isinstance(typed.log_files(), list)


def test_a_class_missing_an_operation_is_not_a_backend() -> None:
    class Partial:
        kind, user, password = "partial", "u", "p"
        capabilities = Capabilities()

        def start(self) -> Partial:
            return self

    assert not isinstance(Partial(), Backend)


# ---- capabilities --------------------------------------------------------------------------
def test_capabilities_grant_only_backend_needs() -> None:
    single = Capabilities(process=True, ctl=False, nodes=1)
    assert single.lacks(frozenset({"process", "ctl", "cluster", "proxy", "kernel", "admin"})) == ["cluster", "ctl"]
    assert Capabilities(process=True, ctl=True, nodes=3).lacks(frozenset({"process", "ctl", "cluster"})) == []
    assert not Capabilities(nodes=1).gives("cluster") and Capabilities(nodes=2).gives("cluster")


def test_the_real_backends_say_what_they_give() -> None:
    assert ExternalBroker("amqp://bob:pw@127.0.0.1:1/").capabilities == Capabilities(process=False, ctl=False)
    assert ComposeBroker(client=object()).capabilities == Capabilities(process=True, ctl=True)


def _env(backend: Any) -> Any:
    return SimpleNamespace(broker=backend)


@pytest.mark.parametrize("name", ["broker-restart", "broker-crash", "broker-pause"])
def test_a_backend_without_process_control_is_refused_up_front(name: str) -> None:
    backend = NullBackend(kind="external", capabilities=Capabilities(process=False, ctl=False))
    with pytest.raises(FaultUnavailable) as info:
        check_available(parse(name), _env(backend))
    assert "control of the broker process" in info.value.problem
    assert "which the external backend does not give" in info.value.problem
    assert "local or compose" in (info.value.fix or "")
    assert backend.calls == []  # refused before anything touched the broker


@pytest.mark.parametrize("name", ["memory-alarm", "disk-alarm", "consumer-timeout"])
def test_a_backend_without_rabbitmqctl_is_refused_up_front(name: str) -> None:
    with pytest.raises(FaultUnavailable, match="rabbitmqctl"):
        check_available(parse(name), _env(NullBackend(capabilities=Capabilities(process=True, ctl=False))))


@dataclass
class _NodeKill(Fault):
    """A stand-in for helper D's cluster faults: what they declare is what the engine checks."""

    name: ClassVar[str] = "node-kill-test"
    description: ClassVar[str] = "test only"
    needs: ClassVar[frozenset[str]] = frozenset({"process", "cluster"})
    scope: ClassVar[Scope] = "broker"


def test_a_cluster_fault_on_one_node_is_refused_with_the_flag_that_fixes_it() -> None:
    with pytest.raises(FaultUnavailable) as info:
        check_available(_NodeKill(), _env(NullBackend(kind="local")))
    assert info.value.problem == ("fault 'node-kill-test' needs a cluster (two nodes or more), which the local "
                                  "backend does not give (it runs 1 node)")
    assert info.value.fix is not None and "--nodes 3" in info.value.fix
    check_available(_NodeKill(), _env(NullBackend(capabilities=Capabilities(True, True, 3),
                                                  node_names=["a@h", "b@h", "c@h"])))


def test_process_comes_before_cluster_when_both_are_missing() -> None:
    """--nodes 3 would not help an external broker: the refusal names the process first."""
    with pytest.raises(FaultUnavailable, match="control of the broker process"):
        check_available(_NodeKill(), _env(ExternalBroker("amqp://bob:pw@127.0.0.1:1/")))


def test_every_catalogue_fault_asks_only_for_needs_the_engine_knows() -> None:
    known = {"proxy", "kernel", "admin", "process", "ctl", "cluster"}
    for name, cls in faults().items():
        assert cls.needs <= known, (name, cls.needs - known)


# ---- process faults on a NullBackend -------------------------------------------------------
def _ctx(backend: NullBackend) -> FaultContext:
    return FaultContext(broker=backend, toxiproxy=None,  # type: ignore[arg-type]  # process faults need no proxy
                        proxies={}, vhost="rc-run", queue="q", run_id="run")


@pytest.mark.parametrize(("name", "op", "down"), [("broker-restart", "stop_node", "broker down"),
                                                   ("broker-crash", "kill_node", "broker down")])
def test_stop_and_crash_take_the_node_down_and_heal_starts_it_once(name: str, op: str, down: str) -> None:
    backend = NullBackend()
    c = _ctx(backend)
    fault = parse(name)
    with c.acting(fault, "start"):
        fault.start(c)
    assert backend.node_state() == "down"
    with c.acting(fault, "heal"):
        fault.heal(c)
        fault.heal(c)  # idempotent: the node runs, nothing to start
    assert [call for call, _ in backend.calls] == [op, "start_node"]
    assert [(e.action, e.effect, e.observed) for e in c.effects] == [
        ("start", down, True), ("heal", "broker up", True), ("heal", "broker up", True)]


def test_pause_and_resume_are_observed_and_heal_is_idempotent() -> None:
    backend = NullBackend()
    c = _ctx(backend)
    fault = parse("broker-pause")
    fault.start(c)
    assert backend.node_state() == "paused"
    fault.heal(c)
    fault.heal(c)
    assert [call for call, _ in backend.calls] == ["pause", "resume", "resume"]
    assert [(e.effect, e.observed) for e in c.effects] == [
        ("broker paused", True), ("broker resumed", True), ("broker resumed", True)]


def test_heal_after_a_start_that_never_happened_starts_nothing() -> None:
    backend = NullBackend()
    parse("broker-crash").heal(_ctx(backend))
    assert backend.calls == []


def test_a_process_fault_started_directly_on_a_backend_without_process_is_refused() -> None:
    backend = NullBackend(kind="external", capabilities=Capabilities(process=False))
    with pytest.raises(FaultUnavailable, match="external backend lacks"):
        parse("broker-crash").start(_ctx(backend))
    assert backend.calls == []


# ---- NullBackend keeps the contract's promises ---------------------------------------------
def test_null_backend_refuses_what_its_capabilities_deny() -> None:
    backend = NullBackend(capabilities=Capabilities(process=False, ctl=False))
    for op in (backend.stop_node, backend.start_node, backend.kill_node, backend.pause, backend.resume):
        with pytest.raises(HarnessFailure, match="no process control"):
            op()
    with pytest.raises(HarnessFailure, match="no rabbitmqctl"):
        backend.ctl("status")
    assert backend.node_state() == "unknown"


def test_node_names_are_checked_and_none_means_the_first() -> None:
    backend = NullBackend(capabilities=Capabilities(True, True, 2), node_names=["a@h", "b@h"])
    backend.kill_node("b@h")
    assert (backend.node_state(), backend.node_state("b@h")) == ("running", "down")
    with pytest.raises(HarnessFailure, match="not 'c@h'"):
        backend.pause("c@h")
    with pytest.raises(HarnessFailure, match="not running"):
        backend.pause("b@h")
    assert check_node(["a@h"], None) == "a@h"


def test_null_backend_vhosts_and_management_need_no_network() -> None:
    backend = NullBackend()
    backend.create_vhost("rc-x")
    assert backend.vhosts == {"rc-x"}
    backend.delete_vhost("rc-x")
    assert backend.vhosts == set()
    mgmt = backend.mgmt
    assert isinstance(mgmt, NullManagement)
    assert mgmt.connections("rc-x") == [] and mgmt.queue("rc-x", "q") is None
    assert mgmt.versions() == {"broker": None, "erlang": None}


def test_pid_state_reads_the_kernel() -> None:
    import os
    import signal
    import subprocess
    import sys

    assert pid_state(None) == "down" and pid_state(2**31 - 1) == "down"
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        assert pid_state(child.pid) == "running"
        os.kill(child.pid, signal.SIGSTOP)
        backend = NullBackend()
        backend.node_state = lambda node=None: pid_state(child.pid)  # type: ignore[method-assign]
        from harness.faults.catalogue.broker_process import await_state

        assert await_state(_ctx(backend), "paused")
        os.kill(child.pid, signal.SIGCONT)
        assert await_state(_ctx(backend), "running")
    finally:
        child.kill()
        child.wait()
    assert pid_state(child.pid) == "down"


# ---- the external and compose backends -----------------------------------------------------
class _RecordingMgmt(NullManagement):
    pass


def test_external_vhosts_go_through_its_management_api() -> None:
    b = ExternalBroker("amqp://bob:pw@mq.example:5673/", management_url="http://mq.example:15673")
    b.mgmt = _RecordingMgmt()
    b.create_vhost("rc-1")
    b.delete_vhost("rc-1")
    assert b.mgmt.calls == [("PUT", "/vhosts/rc-1"), ("PUT", "/permissions/rc-1/bob"),  # type: ignore[attr-defined]
                            ("DELETE", "/vhosts/rc-1")]
    assert b.nodes() == [NodeInfo("rabbit@mq.example", "mq.example:5673")]
    with pytest.raises(HarnessFailure, match="not 'rabbit@other'"):
        b.node_state("rabbit@other")


def test_external_preflight_checks_only_the_harness_ports() -> None:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        ExternalBroker("amqp://bob:pw@127.0.0.1:1/").preflight()
        with pytest.raises(Exception, match=str(port)):
            ExternalBroker("amqp://bob:pw@127.0.0.1:1/").preflight({"proxy API": port})


def test_compose_is_one_node_behind_its_own_toxiproxy() -> None:
    from test_backends import FakeDocker  # tests/unit is on sys.path, as for timing_context

    fake = FakeDocker()
    b = ComposeBroker(client=fake)
    b.mgmt = _RecordingMgmt()
    assert b.nodes() == [NodeInfo(NODE, "rabbitmq:5672")]
    assert b.toxiproxy_url == "http://127.0.0.1:8474" and b.log_files() == []
    b.create_vhost("rc-1")
    assert ("PUT", "/vhosts/rc-1") in b.mgmt.calls  # type: ignore[attr-defined]
    b.ctl("status", node=NODE)
    with pytest.raises(HarnessFailure, match="not 'rabbit@elsewhere'"):
        b.kill_node("rabbit@elsewhere")
    assert fake.calls == [("exec", BROKER_CONTAINER, ("rabbitmqctl", "status"))]


# ---- consumers that used to probe ----------------------------------------------------------
def test_conformance_watcher_reads_the_backends_log_files(tmp_path: Path) -> None:
    from harness.clients.conformance import ConnectionWatcher

    log = tmp_path / "rabbit.log"
    log.write_text("old line\n")
    (tmp_path / "rabbit_upgrade.log").write_text("")

    @dataclass
    class WithLogs(NullBackend):
        def log_files(self) -> list[Path]:
            return sorted(tmp_path.glob("*.log"))

    watcher = ConnectionWatcher(WithLogs())
    assert watcher.logs == {log: len("old line\n")}
    with log.open("a") as fh:
        fh.write("connection <0.1.0> (127.0.0.1:1 -> 127.0.0.1:2 - run/publisher-0): user 'guest' "
                 "authenticated and granted access to vhost 'rc-run'\n")
    assert [c["client_properties"] for c in watcher.in_vhost("rc-run")] == [{"connection_name": "run/publisher-0"}]
    assert ConnectionWatcher(NullBackend()).logs == {}


def test_matrix_child_gets_the_external_management_url_from_the_contract() -> None:
    from harness.run.parallel import attach_info

    b = ExternalBroker("amqp://bob:pw@127.0.0.1:1/", management_url="http://127.0.0.1:2/")
    env = SimpleNamespace(broker=b, backend="external", state_dir=Path("/tmp/rc-hB"), base_port=25200, nodes=1,
                          proxy_server=None)
    info = attach_info(env)  # type: ignore[arg-type]
    assert info["management_url"] == "http://127.0.0.1:2"
    env_local = SimpleNamespace(broker=NullBackend(), backend="local", state_dir=Path("/tmp/rc-hB"), nodes=1,
                                base_port=25200, proxy_server=None)
    assert attach_info(env_local)["management_url"] is None  # type: ignore[arg-type]
