"""The phases of one run. Each is a function of the shared :class:`Run`; its docstring says what
it waits for and what it records. :func:`harness.engine.run_cell` calls them in order.

Every phase leaves events in the harness's own history (``run.phase``, ``settle.end``,
``proc.signal``, ``queue.sample``) or the nemesis's (``fault.start``/``effect``/``stop``), so the
history alone explains the run.
"""

from __future__ import annotations

import contextlib
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from harness import __version__, results
from harness.clients.protocol import ClientConfig
from harness.clients.registry import Strategy
from harness.clients.supervisor import ClientProcess, HistoryTail, strategy_command
from harness.env import procs, trusted
from harness.env.environment import Environment
from harness.errors import HarnessFailure
from harness.faults.base import DEFAULT_HOLD_S, FaultContext, KernelLink
from harness.faults.timeline import Timeline
from harness.history import HistoryWriter, merge
from harness.run.holds import choose_hold
from harness.run.settle import EXITED, SettleWatch
from harness.run.spec import RunSpec

QUEUE = "rabbit-chaos.q"


class Sampler(threading.Thread):
    """Samples queue depth and consumer count through the management API, 1 per second.

    On a cluster (``procs`` given) each sample also names the queue's ``node`` (and a quorum queue's
    ``leader``), and the sampler lists the run vhost's connections each second and
    writes ``conn.node`` (proc, node) whenever a client's connection (named ``<run_id>/<proc>``)
    is seen on another node than last time, or is gone (node null): which node each client was
    on when, for the report. One node is not sampled for this: there is nowhere else to be."""

    def __init__(self, env: Environment, vhost: str, writer: HistoryWriter, run_id: str = "",
                 procs: tuple[str, ...] = ()) -> None:
        super().__init__(daemon=True, name="queue-sampler")
        self.env, self.vhost, self.writer = env, vhost, writer
        self.run_id, self.procs = run_id, procs
        #: proc -> the node its connection was last seen on (None: seen gone)
        self.on_node: dict[str, str | None] = {}
        self.halt = threading.Event()

    def run(self) -> None:
        while not self.halt.wait(1.0):
            self.sample()

    def sample(self) -> None:
        """One sample: queue statistics, then (cluster) where each client's connection is."""
        mgmt = self.env.broker.mgmt
        with contextlib.suppress(Exception):  # broker down during a fault: no sample
            q = mgmt.queue(self.vhost, QUEUE)
            if q is not None:
                # on a cluster, where the queue lives (a classic queue's home node; a quorum queue's
                # leader): harness.checker.cluster tells a queue-node fault from another node's
                where = {k: q[k] for k in ("node", "leader") if self.procs and isinstance(q.get(k), str)}
                self.writer.write("queue.sample", messages_ready=q.get("messages_ready", 0),
                                  messages_unacked=q.get("messages_unacknowledged", 0),
                                  consumers=q.get("consumers", 0), **where)
        if self.procs:
            with contextlib.suppress(Exception):  # no node's API answered: nothing known, nothing written
                self.track_nodes(mgmt.connections(self.vhost))

    def track_nodes(self, conns: list[dict[str, Any]]) -> None:
        """Write ``conn.node`` for each client whose node changed since the last listing. A client
        with connections on two nodes at once (mid-failover) is placed on its newest one."""
        from harness.faults.catalogue._admin import connection_name

        newest: dict[str, tuple[int, str]] = {}
        for c in conns:
            run_id, _, proc = connection_name(c).partition("/")
            node = c.get("node")
            if run_id != self.run_id or proc not in self.procs or not isinstance(node, str):
                continue
            at = c.get("connected_at")
            at = at if isinstance(at, int) else 0
            if proc not in newest or at >= newest[proc][0]:
                newest[proc] = (at, node)
        for proc in self.procs:
            now = newest[proc][1] if proc in newest else None
            if proc not in self.on_node and now is None:
                continue  # never seen yet: not connected so far, nothing has changed
            if self.on_node.get(proc, "") != now:
                self.on_node[proc] = now
                self.writer.write("conn.node", proc=proc, node=now)


class KernelSetup:
    """The clients' namespace and the relay into it, for runs with a kernel fault."""

    def __init__(self, env: Environment, run_id: str) -> None:
        from harness.env.netns import ClientNetns

        self.netns = ClientNetns(env.state_dir, run_id[-4:])
        self.relay: Any = None

    def start(self, targets: dict[str, int], log: Path) -> KernelLink:
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


@dataclass
class Outcome:
    """How the phases ended: normally, with a harness failure, or interrupted by a signal."""

    error: str | None = None
    interrupted: KeyboardInterrupt | None = None
    signame: str | None = None

    @property
    def why(self) -> str:
        if self.signame is not None:
            return f"interrupted by {self.signame}"
        return "the run was aborted by a harness failure"


@dataclass
class Run:
    """What the phases share: one run's identity, environment, writers, clients and faults."""

    env: Environment
    spec: RunSpec
    run_id: str
    seed: int
    timeline: Timeline
    run_dir: Path
    reports_dir: Path
    strategy: Strategy | None
    command: list[str] | None
    harness: HistoryWriter
    nemesis: HistoryWriter
    drainer: HistoryWriter
    t_start: float = field(default_factory=time.monotonic)
    clients: list[ClientProcess] = field(default_factory=list)
    tails: dict[str, HistoryTail] = field(default_factory=dict)
    proxies: dict[str, str] = field(default_factory=dict)
    #: every proxy the run created (a cluster: one per role and node), for teardown
    all_proxies: list[str] = field(default_factory=list)
    ctx: FaultContext | None = None
    kernel: KernelSetup | None = None
    sampler: Sampler | None = None
    stop_timeline: threading.Event = field(default_factory=threading.Event)
    marks: dict[str, float] = field(default_factory=dict)
    settled: dict[str, Any] | None = None
    drained: bool = False

    @property
    def hist_dir(self) -> Path:
        return self.run_dir / "history"

    @property
    def vhost(self) -> str:
        return f"rc-{self.run_id}"

    @property
    def direct_url(self) -> str:
        return self.env.broker.amqp_url(self.vhost)

    @property
    def consumer(self) -> ClientProcess:
        return self.clients[0]

    @property
    def publisher(self) -> ClientProcess:
        return self.clients[1]

    def phase(self, name: str, **fields: Any) -> None:
        self.harness.write("run.phase", phase=name, **fields)

    def depth(self) -> int | None:
        return trusted.queue_depth(self.direct_url, QUEUE, f"{self.run_id}/settle")


def setup(run: Run) -> None:
    """Fresh vhost, durable queue, one proxy per client role (on a cluster, per role and node),
    the kernel namespace when a fault needs it, and the client processes (not started). Waits
    for: nothing but these calls. Records: ``run.phase setup`` (run id, seed)."""
    env, spec = run.env, run.spec
    if env.toxiproxy is None:
        raise HarnessFailure("the environment has no fault proxy")
    tp, broker = env.toxiproxy, env.broker
    run.phase("setup", run_id=run.run_id, seed=run.seed)
    broker.create_vhost(run.vhost)
    trusted.declare_queue(run.direct_url, QUEUE, f"{run.run_id}/harness", spec.queue_type)
    nodes = broker.nodes()
    node_proxies: dict[str, dict[str, str]] = {}
    for i, role in enumerate(("publisher", "consumer")):
        for k, node in enumerate(nodes):  # node 1's keeps the one-node name: role faults act on it
            name = f"{run.run_id}-{role}" + (f"-n{k + 1}" if k else "")
            tp.create_proxy(name, listen=env.proxy_listen(i, k), upstream=node.upstream)
            run.all_proxies.append(name)
            node_proxies.setdefault(node.name, {})[role] = name
        run.proxies[role] = f"{run.run_id}-{role}"
    run.ctx = ctx = FaultContext(broker=broker, toxiproxy=tp, proxies=run.proxies, vhost=run.vhost, queue=QUEUE,
                                 run_id=run.run_id, queue_type=spec.queue_type, node_proxies=node_proxies)
    ports = {role: env.client_port(tp.proxy(name)["listen"]) for role, name in run.proxies.items()}
    #: role -> every node's proxy port, node 1 first (ClientConfig.amqp_urls on a cluster)
    node_ports = {role: [env.client_port(tp.proxy(node_proxies[n.name][role])["listen"]) for n in nodes]
                  for role in run.proxies} if len(nodes) > 1 else {}
    prefix: list[str] = []
    if any("kernel" in w.fault.needs for w in run.timeline.windows):
        run.kernel = KernelSetup(env, run.run_id)
        ctx.kernel = run.kernel.start(ports, run.run_dir / "logs" / "nsrelay.log")
        ports = dict(ctx.kernel.ports)  # clients connect to the relay inside their namespace
        prefix = ctx.kernel.netns.exec_prefix()
        node_ports = {}  # the relay carries node 1's proxies only: a kernel fault's clients see one node
    for role in ("consumer", "publisher"):
        url = broker.amqp_url(run.vhost, host="127.0.0.1", port=int(ports[role]))
        cfg = ClientConfig(
            run_id=run.run_id, proc=f"{role}-0", role=role,  # type: ignore[arg-type]
            amqp_url=url, queue=QUEUE,
            amqp_urls=[broker.amqp_url(run.vhost, host="127.0.0.1", port=p) for p in node_ports.get(role, [])],
            history=str(run.hist_dir / f"{role}-0.jsonl"), count=spec.count, rate=spec.rate,
            id_prefix="p0-", grace_s=spec.grace_s, work_s=spec.work_s, params=spec.params,
            queue_type=spec.queue_type,  # type: ignore[arg-type]  # validated up front (harness.config)
        )
        cmd = prefix + (run.command or strategy_command(spec.client))
        run.clients.append(ClientProcess(cfg, cmd, run.run_dir, run.harness, env.client_record))
    run.tails = {c.proc: HistoryTail(Path(c.cfg.history)) for c in run.clients}


def warmup(run: Run) -> None:
    """Consumer first (nothing is published before anyone listens), then the publisher; traffic
    flows for ``warmup_s``. Waits for: the consumer's ``conn.open`` (``connect_timeout_s``), then
    ``warmup_s`` (or the publisher finishing). Records: ``run.phase warmup``, ``queue.sample``s
    from here on. A consumer that cannot connect is a harness failure (the run is unknown)."""
    spec, consumer, publisher = run.spec, run.consumer, run.publisher
    run.phase("warmup")
    run.marks["start"] = time.monotonic()
    cluster = len(run.ctx.node_proxies) > 1 if run.ctx is not None else False
    run.sampler = Sampler(run.env, run.vhost, run.harness, run.run_id,
                          tuple(c.proc for c in run.clients) if cluster else ())
    run.sampler.start()
    consumer.start()
    tail = run.tails[consumer.proc]
    if not _until(lambda: tail.count("conn.open") > 0 or not consumer.running(), spec.connect_timeout_s):
        raise HarnessFailure(f"consumer did not connect within {spec.connect_timeout_s:.0f}s "
                             f"(see logs/{consumer.proc}.log)")
    if not consumer.running():
        raise HarnessFailure(f"consumer exited before the run started (code {consumer.returncode()}; "
                             f"see logs/{consumer.proc}.log)")
    publisher.start()
    _until(lambda: not publisher.running(), spec.warmup_s)


def choose_holds(run: Run) -> None:
    """A bare fault's hold (harness.run.holds): the user's, the fault's default, or for a silent
    fault the targeted clients' detection window + margin. Waits for: each targeted running
    client's ``client.start`` (its declared ``heartbeat_window_s``), only when that matters, up
    to ``connect_timeout_s``. Records: the timeline's ``hold_reason`` (results.json)."""
    tl = run.timeline
    if not tl.bare or run.spec.fault_s is not None or not tl.windows[0].fault.silences():
        return  # held as timeline_for chose: the user's duration or the fault's default
    fault = tl.windows[0].fault
    role = fault.targets_role()
    targeted = [c for c in run.clients if role in ("all", c.cfg.role)]
    _until(lambda: all(run.tails[c.proc].count("client.start") or not c.running() for c in targeted),
           run.spec.connect_timeout_s)
    from harness.checker.model import CheckOptions

    max_block_s = float(run.spec.check_options.get("max_block_s", CheckOptions().max_block_s))
    hold = choose_hold(fault, None, {c.proc: run.tails[c.proc].started for c in targeted}, max_block_s)
    run.timeline = tl.held_for(hold.seconds, hold.reason)


def nemesis(run: Run) -> None:
    """The fault timeline, relative to now; it always ends healed (Timeline.execute). The control
    run (no fault) waits as long as a default fault would last. Waits for: the last heal.
    Records: ``run.phase fault`` (the timeline spec), ``fault.start``, ``fault.effect``,
    ``fault.stop`` (nemesis)."""
    if run.ctx is None:
        raise HarnessFailure("nemesis before setup")
    choose_holds(run)
    hold = {"hold_reason": run.timeline.hold_reason} if run.timeline.hold_reason is not None else {}
    run.phase("fault", timeline=run.timeline.spec(), **hold)
    run.marks["fault_start"] = time.monotonic()
    if run.timeline.windows:
        run.timeline.execute(run.ctx, run.nemesis, run.stop_timeline)
    else:  # the control run: same length, nothing injected
        run.stop_timeline.wait(run.spec.fault_s if run.spec.fault_s is not None else DEFAULT_HOLD_S)
    run.marks["fault_stop"] = time.monotonic()


def heal(run: Run) -> None:
    """The timeline has healed what it started; this marks it. Waits for: nothing. Records:
    ``run.phase healed``. (An aborted or interrupted run heals in :func:`teardown`.)"""
    run.phase("healed")


def heal_all(run: Run) -> None:
    """Heal every window of the timeline again (heal is idempotent): after an abort or an
    interrupt nothing may stay broken. Errors are swallowed: each window is tried."""
    if run.ctx is None:
        return
    for w in run.timeline.windows:
        with contextlib.suppress(Exception):
            w.fault.heal(run.ctx)


def settle(run: Run) -> None:
    """The publisher finishes; the consumer catches up. Waits for: the publisher's exit
    (bounded by ``publish_timeout_s``: then it is stopped, evidence for the checker), then for
    the consumer to be quiet (nothing delivered for ``settle_s``, the queue empty), never while
    it holds an unacknowledged delivery (see harness.run.settle; bounded by
    ``settle_timeout_s`` / ``settle_unacked_cap_s``), or for it to exit. Records:
    ``run.phase settle``, ``settle.end`` (reason, held_unacked, waited_s, bound)."""
    spec, consumer, publisher = run.spec, run.consumer, run.publisher
    run.phase("settle")
    fault_phase_s = run.timeline.length_s if run.timeline.windows else (spec.fault_s or DEFAULT_HOLD_S)
    limit = spec.publish_timeout_s(fault_phase_s)
    if publisher.wait(max(0.0, limit - (time.monotonic() - run.marks.get("start", run.t_start)))) is None:
        # a publisher that never finishes is evidence too (the checker's blocked rule sees it)
        publisher.abort(f"still publishing after {limit:.0f}s: stopped by the harness", spec.grace_s)
    tail = run.tails[consumer.proc]
    t0 = time.monotonic()
    watch = SettleWatch(spec.settle_s, spec.settle_timeout_s, spec.settle_unacked_cap_s, t0)
    reason: str | None = None
    while reason is None:
        if not consumer.running():
            reason = EXITED
            break
        reason = watch.step(time.monotonic(), tail.count("deliver"), tail.held(), run.depth)
        if reason is None:
            consumer.exited.wait(0.1)  # polls the history tail; wakes at once if the consumer exits
    run.settled = {"reason": reason, "held_unacked": tail.held(), "waited_s": round(time.monotonic() - t0, 3),
                   **({"bound": watch.bound} if watch.bound else {})}
    run.harness.write("settle.end", **run.settled)


def drain(run: Run) -> None:
    """The consumer is stopped (``proc.signal`` SIGTERM first) and the harness's trusted reader
    empties what is left. Waits for: the consumer's exit (``grace_s``, then SIGKILL) and the
    drain. Records: ``run.phase drain``, ``proc.signal``, ``drain`` events, ``drain.done``."""
    run.phase("drain")
    if run.consumer.running():
        run.consumer.stop(run.spec.grace_s, why="end of the run: drain")
    if run.sampler is not None:
        run.sampler.halt.set()
    trusted.drain(run.direct_url, QUEUE, run.drainer, f"{run.run_id}/drain")
    run.drained = True


def teardown(run: Run, outcome: Outcome) -> None:
    """Always runs. After an abort or interrupt: heal everything, stop clients (``proc.signal``
    with why), and, interrupted, still drain what it can. Then the last harness event:
    ``run.end`` (complete), ``run.phase aborted`` (error) or ``run.phase interrupted`` (never
    ``run.end``: the history must not look complete). Kernel namespace, proxies, vhost removed."""
    if run.sampler is not None:
        run.sampler.halt.set()
    if outcome.error is not None or outcome.interrupted is not None:
        run.stop_timeline.set()
        heal_all(run)
        for c in run.clients:
            if c.running():
                c.abort(outcome.why, run.spec.grace_s)
        if outcome.interrupted is not None and run.ctx is not None and not run.drained:
            with contextlib.suppress(Exception):
                trusted.drain(run.direct_url, QUEUE, run.drainer, f"{run.run_id}/drain")
    if outcome.interrupted is not None:
        run.phase("interrupted", signal=outcome.signame)
    elif outcome.error is not None:
        run.phase("aborted", error=outcome.error)
    else:
        run.harness.write("run.end")
    if run.kernel is not None:
        with contextlib.suppress(Exception):
            run.kernel.stop()
    if run.env.toxiproxy is not None:
        for p in run.all_proxies or list(run.proxies.values()):
            with contextlib.suppress(Exception):
                run.env.toxiproxy.delete_proxy(p)
    with contextlib.suppress(Exception):
        run.env.broker.delete_vhost(run.vhost)
    for writer in (run.harness, run.nemesis, run.drainer):
        writer.close()


def check(run: Run, outcome: Outcome) -> dict[str, Any]:
    """Merge the per-process histories, run the checker, write results.json. A harness failure
    or an interrupt never passes: the verdict is then at best ``unknown`` with the reason."""
    from harness.checker import CheckOptions
    from harness.checker import check as judge

    events, problems = merge(sorted(run.hist_dir.glob("*.jsonl")), run.run_dir / "history.jsonl")
    # the deadlines the scenario set, and what the run was given that decides whose doing a loss
    # is (harness.checker.cluster): the queue type and how many nodes the broker had
    nodes: int | None = None
    with contextlib.suppress(Exception):  # a backend that cannot list its nodes: not known
        nodes = len(run.env.broker.nodes())
    given = {"queue_type": run.spec.queue_type, "nodes": nodes}
    verdict = results.as_dict(judge(events, problems, CheckOptions(**{**given, **run.spec.check_options})))
    stopped = outcome.why if outcome.interrupted is not None else outcome.error
    if stopped is not None:
        if verdict["verdict"] == "pass" or outcome.interrupted is not None:
            verdict["verdict"] = "unknown"
        if stopped not in verdict["reasons"]:  # an interrupt first: it explains everything after it
            verdict["reasons"].insert(0 if outcome.interrupted is not None else len(verdict["reasons"]), stopped)
    headline = verdict.get("headline", "")
    if outcome.interrupted is not None:
        headline = "interrupted"
    elif outcome.error is not None and verdict["verdict"] != "fail":
        headline = headline or "harness error"
    spec, strategy, timeline = run.spec, run.strategy, run.timeline
    start, stop = run.marks.get("start"), run.marks.get("fault_stop")
    timeline_s = stop - start if start is not None and stop is not None else None
    from dataclasses import asdict

    doc = {
        "run_id": run.run_id,
        "client": spec.client,
        "fault": spec.fault,
        "seed": run.seed,
        "verdict": verdict["verdict"],
        "reasons": verdict["reasons"],
        "headline": headline,
        "findings": verdict.get("findings", []),
        "interrupted": outcome.interrupted is not None,
        "counts": verdict["counts"],
        "timing": {**verdict.get("timing", {}), "wall_s": round(time.monotonic() - run.t_start, 3),
                   "timeline_s": round(timeline_s, 3) if timeline_s else None},
        "versions": {**run.env.versions(), **_client_library(strategy, events),
                     "rabbit_chaos": __version__},
        "metrics": verdict.get("metrics", {}),
        "notes": verdict.get("notes", []),
        "examples": verdict.get("examples", {}),
        "spec": asdict(spec),
        "settle": run.settled,
        "fault_description": "; ".join(dict.fromkeys(w.fault.description for w in timeline.windows))
                             or "no fault: the control run",
        "timeline": timeline.as_dict(),
        "client_description": strategy.description if strategy else " ".join(run.command or []),
        "client_command": None if strategy else run.command,
        "started_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    results.write(run.run_dir, doc, run.reports_dir)
    return doc


def _client_library(strategy: Any, events: list[dict[str, Any]]) -> dict[str, Any]:
    """The client library and version for results.json: a built-in strategy's own; for an outside
    client, what its ``client.start`` declared (so a report can tell aio-pika 9.4.3 from 9.5.5),
    labelled "custom" only when it declared nothing. A built-in strategy's version is the one its
    process imported (client.start): for NAME@VERSION, its environment's, not the harness's."""
    if strategy is not None:
        started = next((ev for ev in events if ev.get("kind") == "client.start" and ev.get("version")), None)
        version = started["version"] if started else (strategy.pinned or strategy.version)
        return {"client_library": strategy.library, "client_library_version": version}
    for ev in events:
        if ev.get("kind") == "client.start" and ev.get("library"):
            return {"client_library": str(ev["library"]), "client_library_version": ev.get("version")}
    return {"client_library": "custom", "client_library_version": None}


def _until(pred: Any, timeout: float, step: float = 0.1) -> bool:
    """Poll ``pred`` until true or ``timeout``; used to await events, never as a fixed sleep."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(step)
    return bool(pred())
