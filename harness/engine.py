"""One run: a client strategy × a fault timeline on a shared environment, judged from its history.

The sequence (every step leaves an event, so the history alone explains the run):
  setup   fresh vhost + durable queue + one proxy per client role
  warmup  consumer connects, publisher starts publishing
  fault   the fault timeline (one fault held for ``fault_s``, or any timeline in the syntax of
          docs/faults.md: windows, cycles, seeded random); it always ends healed
  settle  publisher finishes; the consumer catches up until the queue is empty and nothing has
          been delivered for ``settle_s`` (bounded by ``settle_timeout_s``)
  drain   consumer stopped (SIGTERM); the harness's trusted reader empties what is left
  check   merge the per-process files, run the checker, write results.json
A harness failure anywhere (broker never came back, a client could not start) ends the run
early with verdict ``unknown`` and the reason; the cell still gets its results.json.
"""

from __future__ import annotations

import contextlib
import random
import re
import secrets
import threading
import time
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from harness import __version__, results
from harness.clients.protocol import ClientConfig
from harness.clients.registry import get as get_strategy
from harness.clients.supervisor import ClientProcess, HistoryTail, strategy_command
from harness.env import procs, trusted
from harness.env.environment import Environment
from harness.errors import FaultUnavailable, HarnessFailure
from harness.faults.base import Fault, FaultContext, KernelLink
from harness.faults.timeline import Timeline
from harness.history import HistoryWriter, merge

QUEUE = "rabbit-chaos.q"


@dataclass
class RunSpec:
    client: str
    fault: str = "none"
    seed: int | None = None
    count: int = 1000
    rate: float = 100.0
    warmup_s: float = 2.0
    fault_s: float = 4.0
    settle_s: float = 2.0
    settle_timeout_s: float = 60.0
    connect_timeout_s: float = 20.0
    grace_s: float = 5.0
    #: consumer processing time per message (the same for every client, so cells compare)
    work_s: float = 0.0
    params: dict[str, Any] = field(default_factory=dict)
    #: overrides of the checker's CheckOptions (e.g. {"hang_window_s": 5}); recorded in results
    check_options: dict[str, Any] = field(default_factory=dict)

    @property
    def publish_timeout_s(self) -> float:
        nominal = self.count / self.rate if self.rate else self.count / 500
        return self.warmup_s + self.fault_s + 2 * nominal + 90


def new_run_id(client: str, timeline: Timeline) -> str:
    """``<UTC time>-<client>-<fault names>-<random>``, safe as a directory and vhost name."""
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
    names = list(dict.fromkeys(w.fault.name for w in timeline.windows)) or ["none"]
    label = re.sub(r"[^A-Za-z0-9+_.-]+", "-", "+".join(names))[:48]
    client_label = re.sub(r"[^A-Za-z0-9+_.-]+", "-", client)[:40]
    return f"{stamp}-{client_label}-{label}-{secrets.token_hex(2)}"


def timeline_for(spec: RunSpec, seed: int | None) -> Timeline:
    """The run's fault timeline: ``spec.fault`` in the timeline syntax (docs/faults.md); a bare
    fault is held from 0 for ``fault_s``; "none" is the empty timeline (the control run)."""
    if spec.fault.strip() == "none":
        return Timeline([], seed=seed, source="none")
    return Timeline.parse(spec.fault, hold_s=spec.fault_s, seed=seed)


def _until(pred: Any, timeout: float, step: float = 0.1) -> bool:
    """Poll ``pred`` until true or ``timeout``; used to await events, never as a fixed sleep."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(step)
    return bool(pred())


class _Sampler(threading.Thread):
    """Samples queue depth and consumer count through the management API, 1 per second."""

    def __init__(self, env: Environment, vhost: str, writer: HistoryWriter) -> None:
        super().__init__(daemon=True, name="queue-sampler")
        self.env, self.vhost, self.writer = env, vhost, writer
        self.halt = threading.Event()

    def run(self) -> None:
        while not self.halt.wait(1.0):
            with contextlib.suppress(Exception):  # broker down during a fault: no sample
                q = self.env.broker.mgmt.queue(self.vhost, QUEUE)
                if q is not None:
                    self.writer.write("queue.sample", messages_ready=q.get("messages_ready", 0),
                                      messages_unacked=q.get("messages_unacknowledged", 0),
                                      consumers=q.get("consumers", 0))


def validate_fault(fault: str, fault_s: float) -> Timeline:
    """Parse a --fault value before anything starts (one clear ChaosError if it is wrong)."""
    return timeline_for(RunSpec(client="-", fault=fault, fault_s=fault_s), seed=0)


def check_timeline(timeline: Timeline, env: Environment) -> None:
    for w in timeline.windows:
        check_available(w.fault, env)


def check_available(fault: Fault, env: Environment) -> None:
    """Raise FaultUnavailable (with the reason) when this environment cannot inject ``fault``."""
    if "kernel" in fault.needs:
        from harness.env.netns import kernel_support

        reason = kernel_support()
        if reason:
            raise FaultUnavailable(f"fault {fault.name!r} is unavailable here: {reason}",
                                   "run as root with iproute2 and iptables installed, or choose a proxy fault")
    if "ctl" in fault.needs and not getattr(env.broker, "supports_ctl", False):
        raise FaultUnavailable(f"fault {fault.name!r} needs rabbitmqctl on the broker's node, "
                               f"which the {env.broker.kind} backend does not give",
                               "use the local or compose backend for alarms and consumer-timeout")
    if "process" in fault.needs and not env.broker.supports_process_faults:
        raise FaultUnavailable(f"fault {fault.name!r} needs control of the broker process, "
                               f"which the {env.broker.kind} backend does not give",
                               "use the local or compose backend for process faults")


class _KernelSetup:
    """The clients' namespace and the relay into it, for runs with a kernel fault."""

    def __init__(self, env: Environment, run_id: str) -> None:
        from harness.env.netns import ClientNetns

        self.netns = ClientNetns(env.state_dir, run_id[-4:])
        self.relay: Any = None

    def start(self, targets: dict[str, int], log: Path) -> KernelLink:
        import subprocess
        import sys

        self.netns.create()
        roles = list(targets)
        log.parent.mkdir(parents=True, exist_ok=True)
        out = open(log, "ab")  # noqa: SIM115
        self.relay = subprocess.Popen(
            [sys.executable, "-m", "harness.env.nsrelay", "--netns", self.netns.path,
             *[a for r in roles for a in ("--to", f"127.0.0.1:{targets[r]}")]],
            stdout=subprocess.PIPE, stderr=out, text=True, start_new_session=True, preexec_fn=procs.die_with_parent)
        out.close()
        line = self.relay.stdout.readline().split()
        if not line or line[0] != "ready":
            raise HarnessFailure(f"the namespace relay did not start (see {log})")
        return KernelLink(self.netns, dict(zip(roles, map(int, line[1:]), strict=True)))

    def stop(self) -> None:
        if self.relay is not None:
            self.relay.terminate()
            try:
                self.relay.wait(timeout=5)
            except Exception:  # noqa: BLE001
                self.relay.kill()
                self.relay.wait()
        self.netns.delete()


def run_cell(env: Environment, spec: RunSpec, reports_dir: Path, command: list[str] | None = None) -> dict[str, Any]:
    """Run one cell and return its results dict (also written to reports/<run-id>/results.json).

    Raises FaultUnavailable before anything starts when the fault cannot run here."""
    strategy = get_strategy(spec.client) if command is None else None
    seed = spec.seed if spec.seed is not None else random.SystemRandom().randrange(2**31)
    timeline = timeline_for(spec, seed)
    check_timeline(timeline, env)
    run_id = new_run_id(spec.client, timeline)
    run_dir = results.run_dir(reports_dir, run_id)
    hist_dir = run_dir / "history"
    vhost = f"rc-{run_id}"
    t_start = time.monotonic()
    harness = HistoryWriter(hist_dir / "harness.jsonl", "harness", "harness")
    nemesis = HistoryWriter(hist_dir / "nemesis.jsonl", "nemesis", "nemesis")
    drainer = HistoryWriter(hist_dir / "drain.jsonl", "drain", "drain")
    clients: list[ClientProcess] = []
    proxies: dict[str, str] = {}
    harness_error: str | None = None
    marks: dict[str, float | None] = {"start": None, "fault_start": None, "fault_stop": None}
    sampler: _Sampler | None = None
    assert env.toxiproxy is not None
    tp = env.toxiproxy
    broker = env.broker
    direct_url = broker.amqp_url(vhost)
    ctx: FaultContext | None = None
    needs_kernel = any("kernel" in w.fault.needs for w in timeline.windows)
    kernel = _KernelSetup(env, run_id) if needs_kernel else None
    stop_timeline = threading.Event()
    try:
        harness.write("run.phase", phase="setup", run_id=run_id, seed=seed)
        broker.mgmt.create_vhost(vhost, broker.user)
        trusted.declare_queue(direct_url, QUEUE, f"{run_id}/harness")
        for i, role in enumerate(("publisher", "consumer")):
            name = f"{run_id}-{role}"
            tp.create_proxy(name, listen=env.proxy_listen(i), upstream=broker.proxy_upstream)
            proxies[role] = name
        ctx = FaultContext(broker=broker, toxiproxy=tp, proxies=proxies, vhost=vhost, queue=QUEUE, run_id=run_id)
        ports = {role: env.client_port(tp.proxy(name)["listen"]) for role, name in proxies.items()}
        prefix: list[str] = []
        if kernel is not None:
            ctx.kernel = kernel.start(ports, run_dir / "logs" / "nsrelay.log")
            ports = dict(ctx.kernel.ports)  # clients connect to the relay inside their namespace
            prefix = ctx.kernel.netns.exec_prefix()
        for role, index in (("consumer", 0), ("publisher", 0)):
            port = ports[role]
            cfg = ClientConfig(
                run_id=run_id, proc=f"{role}-{index}", role=role,  # type: ignore[arg-type]
                amqp_url=broker.amqp_url(vhost, host="127.0.0.1", port=int(port)), queue=QUEUE,
                history=str(hist_dir / f"{role}-{index}.jsonl"), count=spec.count, rate=spec.rate,
                id_prefix=f"p{index}-", grace_s=spec.grace_s, work_s=spec.work_s, params=spec.params,
            )
            cmd = prefix + (command or strategy_command(spec.client))
            clients.append(ClientProcess(cfg, cmd, run_dir, harness, env.client_record))
        consumer, publisher = clients
        tails = {c.proc: HistoryTail(Path(c.cfg.history)) for c in clients}

        # warmup: consumer first, so nothing is published before anyone listens
        harness.write("run.phase", phase="warmup")
        marks["start"] = time.monotonic()
        sampler = _Sampler(env, vhost, harness)
        sampler.start()
        consumer.start()
        if not _until(lambda: tails[consumer.proc].count("conn.open") > 0 or not consumer.running(),
                      spec.connect_timeout_s):
            raise HarnessFailure(f"consumer did not connect within {spec.connect_timeout_s:.0f}s "
                                 f"(see logs/{consumer.proc}.log)")
        if not consumer.running():
            raise HarnessFailure(f"consumer exited before the run started (code {consumer.returncode()}; "
                                 f"see logs/{consumer.proc}.log)")
        publisher.start()
        _until(lambda: not publisher.running(), spec.warmup_s)

        # fault: the timeline always ends healed, whatever happens (Timeline.execute)
        harness.write("run.phase", phase="fault", timeline=timeline.spec())
        marks["fault_start"] = time.monotonic()
        if timeline.windows:
            timeline.execute(ctx, nemesis, stop_timeline)
        else:
            stop_timeline.wait(spec.fault_s)  # the control run: same length, nothing injected
        marks["fault_stop"] = time.monotonic()
        harness.write("run.phase", phase="healed")

        # settle: the publisher finishes, the consumer catches up
        harness.write("run.phase", phase="settle")
        remaining_publish = max(0.0, spec.publish_timeout_s - (time.monotonic() - (marks["start"] or 0.0)))
        if publisher.wait(remaining_publish) is None:
            # a publisher that never finishes is evidence too (the checker's hang rule sees it)
            publisher.abort(f"still publishing after {spec.publish_timeout_s:.0f}s: stopped by the harness",
                            spec.grace_s)
        _settle(consumer, tails[consumer.proc], direct_url, spec, run_id)

        harness.write("run.phase", phase="drain")
        if consumer.running():
            consumer.stop(spec.grace_s)
        sampler.halt.set()
        trusted.drain(direct_url, QUEUE, drainer, f"{run_id}/drain")
    except HarnessFailure as exc:
        harness_error = str(exc)
    except Exception as exc:  # noqa: BLE001 - any harness bug must end as `unknown`, not a crash
        harness_error = f"harness error: {type(exc).__name__}: {exc}"
    finally:
        if sampler is not None:
            sampler.halt.set()
        for c in clients:
            if c.running():
                c.abort("the run was aborted by a harness failure", spec.grace_s)
        if ctx is not None and harness_error is not None:
            for w in timeline.windows:  # heal is idempotent: make sure nothing stays broken
                with contextlib.suppress(Exception):
                    w.fault.heal(ctx)
        if harness_error is not None:
            harness.write("run.phase", phase="aborted", error=harness_error)
        else:
            harness.write("run.end")
        if kernel is not None:
            kernel.stop()
        for p in proxies.values():
            with contextlib.suppress(Exception):
                tp.delete_proxy(p)
        with contextlib.suppress(Exception):
            broker.mgmt.delete_vhost(vhost)
        for writer in (harness, nemesis, drainer):
            writer.close()

    events, problems = merge(sorted(hist_dir.glob("*.jsonl")), run_dir / "history.jsonl")
    from harness.checker import CheckOptions, check

    verdict = results.as_dict(check(events, problems, CheckOptions(**spec.check_options)))
    if harness_error is not None and verdict["verdict"] == "pass":  # belt and braces: never a false pass
        verdict["verdict"] = "unknown"
    if harness_error is not None and harness_error not in verdict["reasons"]:
        verdict["reasons"].append(harness_error)
    t_end = time.monotonic()
    timeline_s = (marks["fault_stop"] - marks["start"]) if marks["fault_stop"] and marks["start"] else None
    doc = {
        "run_id": run_id,
        "client": spec.client,
        "fault": spec.fault,
        "seed": seed,
        "verdict": verdict["verdict"],
        "reasons": verdict["reasons"],
        "counts": verdict["counts"],
        "timing": {**verdict.get("timing", {}), "wall_s": round(t_end - t_start, 3),
                   "timeline_s": round(timeline_s, 3) if timeline_s else None},
        "versions": {**env.versions(), "client_library": strategy.library if strategy else "custom",
                     "client_library_version": strategy.version if strategy else None,
                     "rabbit_chaos": __version__},
        "metrics": verdict.get("metrics", {}),
        "notes": verdict.get("notes", []),
        "examples": verdict.get("examples", {}),
        "spec": asdict(spec),
        "fault_description": "; ".join(dict.fromkeys(w.fault.description for w in timeline.windows))
                             or "no fault: the control run",
        "timeline": timeline.as_dict(),
        "client_description": strategy.description if strategy else " ".join(command or []),
        "started_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    results.write(run_dir, doc, reports_dir)
    return doc


def _settle(consumer: ClientProcess, tail: HistoryTail, url: str, spec: RunSpec, run_id: str) -> None:
    """Wait until the queue is empty and the consumer has been quiet for ``settle_s``."""
    deadline = time.monotonic() + spec.settle_timeout_s
    last_count, last_change = -1, time.monotonic()
    while time.monotonic() < deadline and consumer.running():
        n = tail.count("deliver")
        now = time.monotonic()
        if n != last_count:
            last_count, last_change = n, now
        elif now - last_change >= spec.settle_s:
            depth = trusted.queue_depth(url, QUEUE, f"{run_id}/settle")
            if depth == 0:
                return
            last_change = now  # messages wait but nothing moves: keep waiting until the bound
        time.sleep(0.1)
