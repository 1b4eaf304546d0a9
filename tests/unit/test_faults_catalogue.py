"""The fault catalogue without a broker: parameters, specs, and what start/heal ask of the
proxy server and the broker (through fakes that record calls)."""

from __future__ import annotations

from typing import Any

import pytest

from harness.env.backend import Capabilities, NodeState, pid_state
from harness.errors import ChaosError
from harness.faults.base import FaultContext
from harness.faults.catalogue.consumer_timeout import parse_previous
from harness.faults.registry import faults, parse


class NotFound(Exception):
    status = 404


class FakeToxiproxy:
    """Toxiproxy API semantics that matter to faults: names unique per proxy, 404 when absent,
    400 "invalid toxic type" for types the server does not know."""

    def __init__(self, known_types: set[str] | None = None) -> None:
        self.toxics: dict[str, dict[str, dict[str, Any]]] = {}
        self.enabled: dict[str, bool] = {}
        self.known = known_types

    def add_toxic(self, proxy: str, type: str, attributes: dict[str, Any], stream: str = "downstream",
                  toxicity: float = 1.0, name: str | None = None) -> dict[str, Any]:
        if self.known is not None and type not in self.known:
            raise RuntimeError("toxiproxy answered 400: invalid toxic type")
        name = name or f"{type}_{stream}"
        on = self.toxics.setdefault(proxy, {})
        if name in on:
            raise RuntimeError("toxiproxy answered 409: toxic already exists")
        on[name] = {"type": type, "attributes": attributes, "stream": stream, "toxicity": toxicity}
        return on[name]

    def remove_toxic(self, proxy: str, name: str) -> None:
        if name not in self.toxics.get(proxy, {}):
            raise NotFound("toxiproxy answered 404: toxic not found")
        del self.toxics[proxy][name]

    def set_enabled(self, proxy: str, enabled: bool) -> None:
        self.enabled[proxy] = enabled

    def all(self) -> dict[str, dict[str, Any]]:
        return {f"{p}/{n}": t for p, ts in self.toxics.items() for n, t in ts.items()}


class FakeMgmt:
    def __init__(self, conns: list[dict[str, Any]]) -> None:
        self.conns = conns
        self.closed: list[str] = []
        self.deleted: list[tuple[str, str]] = []

    def connections(self, vhost: str | None = None) -> list[dict[str, Any]]:
        return [c for c in self.conns if vhost is None or c["vhost"] == vhost]

    def close_connection(self, name: str, reason: str = "") -> None:
        self.closed.append(name)

    def delete_queue(self, vhost: str, name: str) -> None:
        self.deleted.append((vhost, name))

    def queue(self, vhost: str, name: str) -> dict[str, Any] | None:
        return None if (vhost, name) in self.deleted else {"name": name, "durable": True}


class FakeBroker:
    """The backend operations faults use, acting like a node: stop/kill take it down, start
    brings it up, pause/resume stop and continue it (``node_state`` answers from that model,
    or from the kernel for a real ``pid``, see the pause test at the end)."""

    kind = "fake"

    def __init__(self, conns: list[dict[str, Any]] | None = None, ctl_out: str = "") -> None:
        self.capabilities = Capabilities(process=True, ctl=True)
        self.calls: list[tuple[Any, ...]] = []
        self.pid: int | None = 2**31 - 1  # no such process: the model, not the kernel, answers
        self.paused = False
        self.mgmt = FakeMgmt(conns or [])
        self.ctl_out = ctl_out
        self.alarms: set[str] = set()

    def stop_node(self, timeout: float = 60) -> float:
        self.calls.append(("stop_node",))
        self.pid = None
        return 0.0

    def start_node(self, timeout: float | None = None) -> float:
        self.calls.append(("start_node",))
        self.pid = 2**31 - 2
        return 0.0

    def kill_node(self) -> None:
        self.calls.append(("kill_node",))
        self.pid = None

    def pause(self) -> None:
        self.calls.append(("pause",))
        self.paused = True

    def resume(self) -> None:
        self.calls.append(("resume",))
        self.paused = False

    def node_state(self, node: str | None = None) -> NodeState:
        if self.pid is None:
            return "down"
        real = pid_state(self.pid)
        if real != "down":  # a real process (the pause test): the kernel's view
            return real
        return "paused" if self.paused else "running"

    def ctl(self, *args: str, timeout: float = 30) -> str:
        """Alarm evals act like the node: the watermark/limit raises or clears the alarm, and
        the answer lists the alarms (what the fault's effect observation reads)."""
        self.calls.append(("ctl", *args))
        expr = args[1] if len(args) > 1 and args[0] == "eval" else ""
        if "set_vm_memory_high_watermark(" in expr:
            self.alarms.discard("memory") if float(expr.split("(")[1].split(")")[0]) > 0.1 \
                else self.alarms.add("memory")
        if "set_disk_free_limit(" in expr:
            self.alarms.discard("disk") if int(expr.split("(")[1].split(")")[0]) < 10**12 \
                else self.alarms.add("disk")
        if "get_alarms" in expr:
            return "[" + ",".join(f"{{{{resource_limit,{a},'n@h'}},[]}}" for a in sorted(self.alarms)) + "]\n"
        return self.ctl_out

    def amqp_url(self, vhost: str, host: str | None = None, port: int | None = None) -> str:
        return f"amqp://guest:guest@127.0.0.1:1/{vhost}"


def ctx(broker: Any = None, tp: FakeToxiproxy | None = None) -> FaultContext:
    return FaultContext(broker=broker or FakeBroker(), toxiproxy=tp or FakeToxiproxy(),  # type: ignore[arg-type]
                        proxies={"publisher": "run-publisher", "consumer": "run-consumer"},
                        vhost="rc-run", queue="rabbit-chaos.q", run_id="run")


EXPECTED = {
    "latency", "jitter", "bandwidth", "slow-close", "timeout", "reset-peer", "slicer", "limit-data",
    "packet-loss", "connection-cut", "partition", "broker-restart", "broker-crash", "broker-pause",
    "force-close", "memory-alarm", "disk-alarm", "queue-delete", "consumer-timeout", "heartbeat-starvation",
}


def test_catalogue_is_complete_and_every_fault_is_described():
    assert set(faults()) >= EXPECTED
    for name in EXPECTED:
        cls = faults()[name]
        assert cls.description and "\n" not in cls.description, name
        assert cls.family, name
        assert cls.needs & {"proxy", "process", "admin"}, name
        cls()  # every parameter has a default


@pytest.mark.parametrize(("name", "needs"), [
    ("latency", {"proxy"}), ("partition", {"proxy"}), ("heartbeat-starvation", {"proxy"}),
    ("broker-crash", {"process"}), ("broker-pause", {"process"}), ("force-close", {"admin"}),
    # rabbitmqctl on the node: unavailable (reported up front) on the external backend
    ("memory-alarm", {"admin", "ctl"}), ("disk-alarm", {"admin", "ctl"}), ("consumer-timeout", {"admin", "ctl"}),
])
def test_needs(name, needs):
    assert faults()[name].needs == frozenset(needs)


def test_partition_and_packet_loss_descriptions_say_what_they_are():
    assert "not a Toxiproxy toxic" in faults()["partition"].description
    assert "real toxiproxy-server" in faults()["partition"].description
    assert "corrupts the AMQP stream" in faults()["packet-loss"].description
    assert "lost" in faults()["queue-delete"].description


def test_param_specs_show_literal_choices_and_defaults():
    specs = {n: (t, d) for n, t, d in faults()["latency"].param_specs()}
    assert specs["latency_ms"] == ("int", 1000)
    assert specs["stream"] == ("upstream|downstream|both", "downstream")
    assert specs["target"] == ("all|publisher|consumer", "all")


@pytest.mark.parametrize(("spec", "params"), [
    ("latency:latency_ms=200,stream=both", {"latency_ms": 200, "target": "all", "stream": "both", "toxicity": 1.0}),
    ("jitter:latency_ms=50,jitter_ms=20", {"latency_ms": 50, "jitter_ms": 20, "target": "all",
                                           "stream": "downstream", "toxicity": 1.0}),
    ("packet-loss:loss_rate=0.5,correlation=0.25", {"loss_rate": 0.5, "correlation": 0.25, "target": "all",
                                                    "stream": "downstream", "toxicity": 1.0}),
    ("memory-alarm", {"watermark": 0.0, "restore": 0.4}),
    ("force-close:target=publisher", {"target": "publisher", "reason": "rabbit-chaos force-close"}),
])
def test_specs_parse_typed(spec, params):
    assert parse(spec).params() == params


@pytest.mark.parametrize(("spec", "problem"), [
    ("packet-loss:loss_rate=1.5", "loss_rate=1.5 is out of range"),
    ("jitter:latency_ms=10,jitter_ms=20", "jitter_ms=20 is out of range"),
    ("latency:toxicity=2", "toxicity=2.0 is out of range"),
    ("bandwidth:rate_kbps=0", "rate_kbps=0 is out of range"),
    ("latency:latency_ms=-1", "latency_ms=-1 is out of range"),
    ("heartbeat-starvation:stream=both", "stream='both' is not one of upstream, downstream"),
    ("consumer-timeout:tick_ms=10", "tick_ms=10 is out of range"),
])
def test_bad_values_get_one_clear_error(spec, problem):
    with pytest.raises(ChaosError) as info:
        parse(spec)
    assert problem in info.value.problem
    assert info.value.fix


# ---- toxic faults ------------------------------------------------------------------------
@pytest.mark.parametrize(("spec", "toxic_type", "attributes", "streams"), [
    ("latency:latency_ms=200", "latency", {"latency": 200, "jitter": 0}, {"downstream"}),
    ("jitter", "latency", {"latency": 100, "jitter": 100}, {"downstream"}),
    ("bandwidth:rate_kbps=5", "bandwidth", {"rate": 5}, {"upstream", "downstream"}),
    ("slow-close", "slow_close", {"delay": 5000}, {"upstream", "downstream"}),
    ("timeout", "timeout", {"timeout": 0}, {"upstream", "downstream"}),
    ("slicer", "slicer", {"average_size": 16, "size_variation": 8, "delay": 1000}, {"downstream"}),
    ("limit-data:bytes=5", "limit_data", {"bytes": 5}, {"downstream"}),
    ("packet-loss", "packet_loss", {"loss_rate": 0.1, "correlation": 0.0}, {"downstream"}),
    ("heartbeat-starvation:heartbeat_s=2", "latency", {"latency": 16000, "jitter": 0}, {"downstream"}),
    ("partition", "hold", {}, {"upstream", "downstream"}),
])
def test_toxic_faults_add_named_toxics_and_heal_removes_exactly_them(spec, toxic_type, attributes, streams):
    tp = FakeToxiproxy()
    tp.add_toxic("run-consumer", "latency", {"latency": 1}, name="users_own")  # must survive heal
    c = ctx(tp=tp)
    fault = parse(spec)
    fault.start(c)
    added = {k: v for k, v in tp.all().items() if not k.endswith("users_own")}
    assert {v["stream"] for v in added.values()} == streams
    assert {k.split("/")[0] for k in added} == {"run-publisher", "run-consumer"}
    assert all(v["type"] == toxic_type and v["attributes"] == attributes for v in added.values())
    assert all(k.split("/")[1].startswith("rabbit_chaos_") for k in added)
    fault.heal(c)
    fault.heal(c)  # idempotent
    assert list(tp.all()) == ["run-consumer/users_own"]


def test_two_faults_on_the_same_toxic_type_overlap_and_heal_independently():
    tp = FakeToxiproxy()
    c = ctx(tp=tp)
    lat, jit = parse("latency"), parse("jitter")
    lat.start(c)
    jit.start(c)
    lat.heal(c)
    assert {k.split("/")[1] for k in tp.all()} == {"rabbit_chaos_jitter_downstream"}
    jit.heal(c)
    assert tp.all() == {}


def test_target_selects_one_proxy():
    tp = FakeToxiproxy()
    parse("latency:target=publisher").start(ctx(tp=tp))
    assert [k.split("/")[0] for k in tp.all()] == ["run-publisher"]


def test_heal_before_start_is_a_noop_and_other_errors_propagate():
    tp = FakeToxiproxy()
    parse("bandwidth").heal(ctx(tp=tp))  # nothing added: 404s are "already healed"

    class Down(FakeToxiproxy):
        def remove_toxic(self, proxy: str, name: str) -> None:
            raise ConnectionRefusedError("proxy API unreachable")

    with pytest.raises(ConnectionRefusedError):
        parse("bandwidth").heal(ctx(tp=Down()))


def test_partition_on_a_real_toxiproxy_is_one_clear_error():
    tp = FakeToxiproxy(known_types={"latency", "timeout"})
    c = ctx(tp=tp)
    fault = parse("partition")
    with pytest.raises(ChaosError) as info:
        fault.start(c)
    assert "hold" in info.value.problem and "toxiproxy-server" in info.value.problem
    assert "embedded proxy" in (info.value.fix or "")
    fault.heal(c)  # safe after the failed start


# ---- process faults ----------------------------------------------------------------------
def test_crash_kills_and_heal_starts_once():
    b = FakeBroker()
    f = parse("broker-crash")
    f.start(ctx(b))
    f.heal(ctx(b))
    f.heal(ctx(b))
    assert b.calls == [("kill_node",), ("start_node",)]


def test_pause_heal_resumes_and_is_safe_twice():
    b = FakeBroker()
    f = parse("broker-pause")
    f.start(ctx(b))
    f.heal(ctx(b))
    f.heal(ctx(b))
    assert b.calls == [("pause",), ("resume",), ("resume",)]


def test_process_fault_on_a_backend_without_process_control_is_a_clear_error():
    b = FakeBroker()
    b.capabilities = Capabilities(process=False)
    with pytest.raises(ChaosError, match="control of the broker process"):
        parse("broker-crash").start(ctx(b))
    assert b.calls == []


# ---- admin faults ------------------------------------------------------------------------
def _conn(name: str | None, vhost: str = "rc-run") -> dict[str, Any]:
    return {"name": f"127.0.0.1:{abs(hash(name)) % 60000} -> 127.0.0.1:5672", "vhost": vhost,
            "user_provided_name": name, "client_properties": {"connection_name": name} if name else {}}


@pytest.mark.parametrize(("target", "closed"), [
    ("all", {"run/publisher-0", "run/consumer-0", "run/consumer-1", None}),
    ("publisher", {"run/publisher-0"}),
    ("consumer", {"run/consumer-0", "run/consumer-1"}),
])
def test_force_close_spares_the_harness_and_other_vhosts(target, closed):
    conns = [_conn(n) for n in ("run/harness", "run/drain", "run/settle", "run/publisher-0", "run/consumer-0",
                                "run/consumer-1", None)] + [_conn("run/publisher-0", vhost="other")]
    b = FakeBroker(conns)
    b.capabilities = Capabilities(process=True, ctl=False)  # through the management API
    parse(f"force-close:target={target}").start(ctx(b))
    by_id = {c["name"]: c["user_provided_name"] for c in conns if c["vhost"] == "rc-run"}
    assert {by_id[n] for n in b.mgmt.closed} == closed


def test_queue_delete_deletes_the_runs_queue(monkeypatch):
    from harness.faults.catalogue import broker_admin

    declared: list[tuple[str, str, str, str]] = []
    monkeypatch.setattr(broker_admin.trusted, "declare_queue", lambda *a: declared.append(a))
    b = FakeBroker()
    f = parse("queue-delete")
    f.start(ctx(b))
    f.heal(ctx(b))
    f.heal(ctx(b))
    assert b.mgmt.deleted == [("rc-run", "rabbit-chaos.q")]
    assert declared == [("amqp://guest:guest@127.0.0.1:1/rc-run", "rabbit-chaos.q", "run/harness", "classic")] * 2
    # a quorum run's queue comes back a quorum queue: the clients' redeclares (x-queue-type) agree
    declared.clear()
    quorum = ctx(b)
    quorum.queue_type = "quorum"
    f.heal(quorum)
    assert declared == [("amqp://guest:guest@127.0.0.1:1/rc-run", "rabbit-chaos.q", "run/harness", "quorum")]


def test_alarms_set_and_restore_once_each_in_one_eval_that_reads_the_alarms():
    b = FakeBroker()
    mem, disk = parse("memory-alarm"), parse("disk-alarm")
    c = ctx(b)
    mem.heal(c)  # never started: nothing to restore
    for f in (mem, disk):
        f.start(c)
        f.heal(c)
        f.heal(c)
    exprs = [call[2] for call in b.calls]
    assert exprs == ["_ = vm_memory_monitor:set_vm_memory_high_watermark(0.0), rabbit_alarm:get_alarms().",
                     "_ = vm_memory_monitor:set_vm_memory_high_watermark(0.4), rabbit_alarm:get_alarms().",
                     f"_ = rabbit_disk_monitor:set_disk_free_limit({10**15}), rabbit_alarm:get_alarms().",
                     "_ = rabbit_disk_monitor:set_disk_free_limit(50000000), rabbit_alarm:get_alarms()."]
    assert [(e.effect, e.observed, e.extra["alarm"]) for e in c.effects] == [
        ("alarm visible", True, "memory"), ("alarm cleared", True, "memory"),
        ("alarm visible", True, "disk"), ("alarm cleared", True, "disk")]


def test_an_alarm_the_broker_does_not_list_at_once_is_polled_for():
    class Lagging(FakeBroker):
        reads = 0

        def ctl(self, *args: str, timeout: float = 30) -> str:
            out = super().ctl(*args)
            self.reads += 1
            return "[]\n" if self.reads < 3 else out  # the first two answers lag behind

    b = Lagging()
    c = ctx(b)
    parse("memory-alarm").start(c)
    assert b.reads == 3 and b.calls[-1] == ("ctl", "eval", "rabbit_alarm:get_alarms().")
    assert [(e.effect, e.observed) for e in c.effects] == [("alarm visible", True)]


def test_alarm_heal_after_a_failed_start_still_restores():
    class Flaky(FakeBroker):
        def ctl(self, *args: str, timeout: float = 30) -> str:
            super().ctl(*args)
            if "(0.0)" in args[1]:
                raise TimeoutError("rabbitmqctl timed out (maybe it did set it)")
            return "[]\n"

    b = Flaky()
    f = parse("memory-alarm")
    with pytest.raises(TimeoutError):
        f.start(ctx(b))
    f.heal(ctx(b))
    assert b.calls[-1] == ("ctl", "eval", "_ = vm_memory_monitor:set_vm_memory_high_watermark(0.4), "
                                          "rabbit_alarm:get_alarms().")


def test_ctl_fault_on_a_backend_without_rabbitmqctl_is_a_clear_error():
    b = FakeBroker()
    b.capabilities = Capabilities(process=False, ctl=False)
    with pytest.raises(ChaosError, match="admin interface") as info:
        parse("memory-alarm").start(ctx(b))
    assert "fake backend" in info.value.problem and "--backend local" in (info.value.fix or "")
    assert b.calls == []


def test_consumer_timeout_restores_what_was_there():
    b = FakeBroker(ctl_out="[1800000,undefined]\n")
    f = parse("consumer-timeout:timeout_ms=500")
    f.start(ctx(b))
    f.heal(ctx(b))
    f.heal(ctx(b))
    (_, _, set_expr), (_, _, restore_expr) = b.calls
    assert "set_env(rabbit, consumer_timeout, 500)" in set_expr
    assert "set_env(rabbit, channel_tick_interval, 1000)" in set_expr
    assert restore_expr == ("application:set_env(rabbit, consumer_timeout, 1800000), "
                            "application:unset_env(rabbit, channel_tick_interval), ok.")


def test_consumer_timeout_parses_only_plain_terms():
    assert parse_previous("[infinity,5000]\n") == {"consumer_timeout": "infinity", "channel_tick_interval": "5000"}
    with pytest.raises(Exception, match="unexpected answer"):
        parse_previous("[1, os:cmd(\"rm\")]")


# ---- effects: every fault says when it took effect ---------------------------------------
class FakeNetns:
    """iptables in a namespace: -C answers whether the INPUT jump is installed."""

    def __init__(self) -> None:
        self.jumps: set[str] = set()

    def iptables(self, *args: str, check: bool = True) -> Any:
        import subprocess

        op, chain = args[0], args[-1]
        code = 0
        if args[1:3] == ("INPUT", "-j"):
            if op == "-C":
                code = 0 if chain in self.jumps else 1
            elif op == "-I":
                self.jumps.add(chain)
            elif op == "-D":
                code = 0 if chain in self.jumps else 1
                self.jumps.discard(chain)
        return subprocess.CompletedProcess(list(args), code)


#: fault -> (start effect, observed, heal effect, observed) with the fakes above
EFFECTS = {
    "latency": ("toxic added", False, "toxic removed", False),
    "jitter": ("toxic added", False, "toxic removed", False),
    "bandwidth": ("toxic added", False, "toxic removed", False),
    "slow-close": ("toxic added", False, "toxic removed", False),
    "timeout": ("toxic added", False, "toxic removed", False),
    "slicer": ("toxic added", False, "toxic removed", False),
    "limit-data": ("toxic added", False, "toxic removed", False),
    "packet-loss": ("toxic added", False, "toxic removed", False),
    "heartbeat-starvation": ("toxic added", False, "toxic removed", False),
    "reset-peer": ("toxic added", False, "toxic removed", False),
    "connection-cut": ("proxy disabled", False, "proxy enabled", False),
    "partition": ("hold applied", False, "hold released", False),
    "broker-restart": ("broker down", True, "broker up", True),
    "broker-crash": ("broker down", True, "broker up", True),
    "broker-pause": ("broker paused", True, "broker resumed", True),
    "force-close": ("connections closed", True, "nothing to heal", True),
    "memory-alarm": ("alarm visible", True, "alarm cleared", True),
    "disk-alarm": ("alarm visible", True, "alarm cleared", True),
    "queue-delete": ("queue deleted", True, "queue declared", True),
    "consumer-timeout": ("timeout lowered", True, "timeout restored", True),
    "kernel-loss": ("rules installed", True, "rules removed", True),
    "kernel-blackhole": ("rules installed", True, "rules removed", True),
    "kernel-oneway": ("rules installed", True, "rules removed", True),
    "kernel-reset": ("rules installed", True, "rules removed", True),
}


def test_every_fault_of_the_catalogue_has_its_effects_listed_here():
    # the cluster family needs a cluster to act on: its effects are tested in test_cluster_faults.py
    assert set(EFFECTS) == {n for n, f in faults().items() if f.family != "cluster"} - {"none"}


@pytest.mark.parametrize("name", sorted(EFFECTS))
def test_every_fault_records_its_start_and_heal_effect(name, monkeypatch):
    from harness.faults.base import KernelLink
    from harness.faults.catalogue import broker_admin

    monkeypatch.setattr(broker_admin.trusted, "declare_queue", lambda *a: None)
    b = FakeBroker(conns=[_conn("run/publisher-0")],
                   ctl_out='[<<"run/publisher-0">>,<<"run/consumer-0">>]\n' if name == "force-close"
                   else "[1800000,undefined]\n")
    c = ctx(b)
    c.kernel = KernelLink(FakeNetns(), {"publisher": 1, "consumer": 2})  # type: ignore[arg-type]
    fault = parse(name)
    with c.acting(fault, "start", 3):
        fault.start(c)
    with c.acting(fault, "heal", 3):
        fault.heal(c)
    start, s_obs, heal, h_obs = EFFECTS[name]
    assert [(e.fault, e.action, e.window, e.effect, e.observed) for e in c.effects] == [
        (name, "start", 3, start, s_obs), (name, "heal", 3, heal, h_obs)]
    if name == "force-close":
        assert c.effects[0].extra == {"count": 2}


def test_effects_outside_a_bound_action_are_still_recorded():
    c = ctx()
    parse("latency").start(c)
    assert [(e.fault, e.action, e.window) for e in c.effects] == [("?", "start", None)]


def test_default_holds_say_which_faults_need_longer():
    holds = {name: cls.default_hold_s for name, cls in faults().items()}
    assert holds["memory-alarm"] == holds["disk-alarm"] == 20.0
    assert holds["heartbeat-starvation"] == 130.0
    assert holds["connection-cut"] == holds["partition"] == 4.0


def test_pause_observes_the_process_stopped_and_running_again():
    import os
    import signal
    import subprocess
    import sys

    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])

    class Real(FakeBroker):
        def pause(self) -> None:
            os.kill(child.pid, signal.SIGSTOP)

        def resume(self) -> None:
            os.kill(child.pid, signal.SIGCONT)

    b = Real()
    b.pid = child.pid
    c = ctx(b)
    try:
        fault = parse("broker-pause")
        fault.start(c)
        fault.heal(c)
    finally:
        child.kill()
        child.wait()
    assert [(e.effect, e.observed) for e in c.effects] == [("broker paused", True), ("broker resumed", True)]
