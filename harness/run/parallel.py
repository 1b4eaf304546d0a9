"""Matrix cells side by side on one broker: run-scope cells up to N at a time, broker-scope alone.

Why this is safe. A run already lives in its own vhost with its own proxies (and, for kernel
faults, its own network namespace), so a fault that acts only on those (``Fault.scope`` "run":
toxics, proxy cuts, partitions, kernel rules, force-close of the vhost's connections, delete of
the run's queue) cannot reach another run. A fault that acts on the node (``scope`` "broker":
restart, crash, pause, alarms, node-wide settings) would be seen by every run on it, so a cell
with one (anywhere in its timeline) runs with the broker to itself. A fault that does not say is
"broker". What concurrency does change is CPU: runs compete for the 2 cores, so timing findings
(blocked after 10 s, stalls, detection windows) get less slack; docs/matrix.md ("Concurrency")
has the measured comparison and the default ``--jobs`` chosen from it.

How. :func:`schedule` is the policy, independent of how a cell runs (its unit tests use fake
cells): run-scope cells first, longest expected first, up to ``jobs`` at a time, each in a
worker thread; then the broker-scope cells one by one in the calling thread with nothing else
running. Results come back in cell order whatever the finishing order. SIGINT/SIGTERM are noted
by the scheduler's own handlers and acted on between steps (a second signal cannot cut the
wind-down short); an interrupt or an exception from one cell starts no new cell, asks every
running cell to stop (its :class:`Cancel`), waits for them to record themselves, and reports
what ran, what was cut and what never started.

The matrix's executor (:class:`CellRunner`) runs each run-scope cell in a child process
(``python -m harness.run.parallel``, the job on stdin): the engine's own interrupt handling
(heal, stop clients, drain, write results.json "interrupted", re-raise) then works unchanged, by
forwarding the signal to the child. Broker-scope cells run in this process through
:func:`harness.engine.run_cell`, exactly as the serial matrix runs them (a broker restart must
update this process's view of the node). Each running child gets its own pair of proxy ports
(a slot: harness.env.environment.Environment.proxy_listen), never an ephemeral port another
socket could take while a proxy is disabled.
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from harness.errors import ChaosError, FaultUnavailable, Interrupted, signal_name
from harness.faults.base import Scope

if TYPE_CHECKING:
    from harness.config import ChaosConfig
    from harness.env.environment import Environment
    from harness.matrix import MatrixResult, Progress
    from harness.shard import Shard

#: the most cells run at once when the user gives no ``--jobs``; docs/matrix.md "Concurrency"
#: has the measurements behind it
MAX_DEFAULT_JOBS = 4


def default_jobs() -> int:
    """``min(MAX_DEFAULT_JOBS, 2 × cores)``: a cell mostly waits (fault holds, heartbeats,
    settle), so two per core keep the machine busy. Measured on 2 cores (docs/matrix.md): 4 at
    once gave the same verdicts and detection times (±0.2 s) as one at a time."""
    return max(1, min(MAX_DEFAULT_JOBS, 2 * (os.cpu_count() or 1)))


@dataclass(frozen=True)
class Cell:
    """One matrix cell: its position (results come back in this order), its scope, and its
    expected length (``cost``, seconds: run-scope cells start longest first, so the pool does
    not end waiting on one long cell started last)."""

    index: int
    client: str
    fault: str
    repeat: int
    scope: Scope
    cost: float = 0.0


class Cancel:
    """A request to stop one running cell, set at most once, with the signal to forward
    ("SIGINT" when the user interrupted, "SIGTERM" when another cell broke)."""

    def __init__(self) -> None:
        self.event = threading.Event()
        self.signame: str = "SIGTERM"

    def set(self, signame: str) -> None:
        if not self.event.is_set():
            self.signame = signame
            self.event.set()

    def is_set(self) -> bool:
        return self.event.is_set()


@dataclass
class CellResult:
    """What a cell left: its results.json document, or the reason its fault is unavailable
    here. ``interrupted`` when it was stopped part-way (its document then says so too; with
    neither a document nor a reason, it was stopped before its run wrote anything)."""

    cell: Cell
    doc: dict[str, Any] | None = None
    unavailable: str | None = None
    interrupted: bool = False


@dataclass
class Schedule:
    """The outcome of :func:`schedule`. ``results`` in cell order; ``cut``: cells that started
    but left no result (interrupted before they wrote one); ``unrun``: cells never started."""

    results: list[CellResult] = field(default_factory=list)
    cut: list[Cell] = field(default_factory=list)
    unrun: list[Cell] = field(default_factory=list)
    interrupted: bool = False
    signal: str | None = None
    error: BaseException | None = None
    wall_s: float = 0.0
    #: the most cells that ran at once (the scheduler's own count)
    peak: int = 0


#: runs one cell; for run-scope cells it is called in a worker thread and must return soon after
#: its Cancel is set; for broker-scope cells it is called in the scheduler's thread, where an
#: interrupt arrives as KeyboardInterrupt
Execute = Callable[[Cell, Cancel], CellResult]


class _Signals:
    """SIGINT and SIGTERM while the scheduler runs (in the main thread; elsewhere Python's own
    handling stays). A signal sets :attr:`signame` instead of raising wherever the main thread
    happens to be: the scheduler polls it between steps and winds down in order, and a second
    Ctrl-C (a terminal, or ``timeout`` forwarding the signal to its group as well) cannot cut the
    wind-down short. Only while a broker-scope cell runs inline (:attr:`raising`) does the first
    signal raise :class:`Interrupted`, as the serial matrix's Ctrl-C does, so that run heals and
    records itself; later signals are noted, never raised."""

    def __init__(self) -> None:
        self.signame: str | None = None
        self.raising = False
        self._old: dict[int, Any] = {}

    def __enter__(self) -> _Signals:
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._old[sig] = signal.getsignal(sig)
                signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        for sig, old in self._old.items():
            signal.signal(sig, old)

    def _handle(self, signum: int, frame: object) -> None:
        if self.signame is not None:
            return  # noted already: never raised twice
        self.signame = name = "SIGINT" if signum == signal.SIGINT else "SIGTERM"
        if self.raising:
            raise Interrupted(name)

    def poll(self) -> None:
        """Raise the noted interrupt here, at a step boundary of the scheduler."""
        if self.signame is not None:
            raise Interrupted(self.signame)


def schedule(cells: Sequence[Cell], jobs: int, execute: Execute,
             on_start: Callable[[Cell], None] | None = None,
             on_done: Callable[[CellResult], None] | None = None) -> Schedule:
    """Run ``cells``: run-scope ones up to ``jobs`` at a time, then broker-scope ones alone.

    ``on_start``/``on_done`` are called in the calling thread (a progress display need not be
    thread-safe). Never raises for a cell: a cell's exception is ``Schedule.error`` (the caller
    re-raises it after recording), an interrupt sets ``interrupted``/``signal``. Either way no
    new cell starts, running ones are cancelled and waited for."""
    return _Scheduler(cells, max(1, jobs), execute, on_start, on_done).run()


class _Scheduler:
    """One :func:`schedule` call's state. Worker threads only run ``execute`` and hand their
    result (or exception) to the scheduler's thread through a queue; everything else (starting
    cells, callbacks, bookkeeping) happens in the scheduler's thread."""

    def __init__(self, cells: Sequence[Cell], jobs: int, execute: Execute,
                 on_start: Callable[[Cell], None] | None, on_done: Callable[[CellResult], None] | None) -> None:
        self.cells, self.jobs, self.execute = cells, jobs, execute
        self.on_start, self.on_done = on_start, on_done
        self.out = Schedule()
        self.done: queue.Queue[tuple[Cell, CellResult | None, BaseException | None]] = queue.Queue()
        self.running: dict[int, Cancel] = {}
        self.started: set[int] = set()
        self.results: dict[int, CellResult] = {}

    def run(self) -> Schedule:
        t0 = time.monotonic()
        out = self.out
        with _Signals() as sigs:
            try:
                self.steps(sigs)
            except KeyboardInterrupt as exc:
                out.interrupted, out.signal = True, signal_name(exc)
            except BaseException as exc:  # noqa: BLE001 - recorded, the caller re-raises after the record
                out.error = exc
            finally:
                self.wind_down(sigs)
        out.results = [self.results[i] for i in sorted(self.results)]
        out.cut = [c for c in self.cells if c.index in self.started and c.index not in self.results]
        out.unrun = [c for c in self.cells if c.index not in self.started]
        out.wall_s = time.monotonic() - t0
        return out

    def steps(self, sigs: _Signals) -> None:
        """Run-scope cells into free slots, wait for them all, then broker-scope cells one by one
        in this thread. A noted signal is raised between steps (:meth:`_Signals.poll`)."""
        for cell in sorted((c for c in self.cells if c.scope == "run"), key=lambda c: -c.cost):
            while len(self.running) >= self.jobs:
                self.collect(0.5)
                sigs.poll()
            sigs.poll()
            self.begin(cell)
            cancel = Cancel()
            self.running[cell.index] = cancel
            threading.Thread(target=self.worker, args=(cell, cancel), daemon=True, name=f"cell-{cell.index}").start()
            self.out.peak = max(self.out.peak, len(self.running))
        while self.running:
            self.collect(0.5)
            sigs.poll()
        for cell in (c for c in self.cells if c.scope != "run"):  # nothing else runs: the broker is its own
            sigs.poll()
            self.begin(cell)
            self.out.peak = max(self.out.peak, 1)
            sigs.raising = True  # an interrupt reaches the inline run as in the serial matrix
            try:
                result = self.execute(cell, Cancel())
            finally:
                sigs.raising = False
            self.finished(result)

    def begin(self, cell: Cell) -> None:
        if self.on_start is not None:
            self.on_start(cell)
        self.started.add(cell.index)

    def worker(self, cell: Cell, cancel: Cancel) -> None:
        try:
            self.done.put((cell, self.execute(cell, cancel), None))
        except BaseException as exc:  # noqa: BLE001 - handed to the scheduler's thread
            self.done.put((cell, None, exc))

    def collect(self, timeout: float) -> None:
        """Take one finished cell off the queue, if one finishes within ``timeout`` (its
        exception is raised here)."""
        try:
            cell, result, exc = self.done.get(timeout=timeout)
        except queue.Empty:
            return
        self.running.pop(cell.index, None)
        if exc is not None:
            raise exc
        if result is not None:
            self.finished(result)

    def finished(self, result: CellResult) -> None:
        """A result with neither a record nor a reason (stopped before its run began) stays cut."""
        if result.doc is not None or result.unavailable is not None:
            self.results[result.cell.index] = result
            if self.on_done is not None:
                self.on_done(result)

    def wind_down(self, sigs: _Signals) -> None:
        """Cancel every running cell (with the interrupt's signal, else SIGTERM) and wait until
        each has recorded itself. A signal while waiting is noted, not obeyed: leaving now would
        leave faults unhealed and clients running."""
        out = self.out
        while True:
            if sigs.signame is not None and not out.interrupted:
                out.interrupted, out.signal = True, sigs.signame
            if not self.running:
                return
            for cancel in self.running.values():
                cancel.set(out.signal or "SIGTERM")
            try:
                self.collect(0.5)
            except KeyboardInterrupt as exc:  # raised outside our handlers (not the main thread)
                if not out.interrupted:
                    out.interrupted, out.signal = True, signal_name(exc)
            except BaseException as exc:  # noqa: BLE001 - the first error is the one to report
                if out.error is None:
                    out.error = exc


def timeline_scope(fault: str, fault_s: float | None) -> Scope:
    """A cell's scope: "broker" when any fault of its timeline acts on the node (or the spec
    cannot be parsed: the cell then fails on its own, alone), else "run"."""
    return cell_shape(fault, fault_s)[0]


#: what a silent bare fault adds to its default hold, for ordering only (the engine holds it
#: for the clients' detection window + margin, known once they start: ~15-25 s at heartbeat 5)
SILENT_EXTRA_S = 20.0


def cell_shape(fault: str, fault_s: float | None) -> tuple[Scope, float]:
    """(scope, expected fault phase in seconds) of a cell's timeline; an unparsable spec is
    ("broker", 0): it fails on its own, alone."""
    from harness.engine import validate_fault

    try:
        timeline = validate_fault(fault, fault_s)
    except Exception:  # noqa: BLE001 - an unparsable spec is no reason to share the broker
        return "broker", 0.0
    scope: Scope = "broker" if any(w.fault.scope != "run" for w in timeline.windows) else "run"
    silent = timeline.bare and fault_s is None and any(w.fault.silences() for w in timeline.windows)
    return scope, timeline.length_s + (SILENT_EXTRA_S if silent else 0.0)


def matrix_timing(docs: Sequence[dict[str, Any]], wall_s: float, jobs: int) -> dict[str, Any]:
    """The matrix benchmark: its wall time against the sum of its cells' fault timelines
    (results.json ``timing.timeline_s``: warmup + fault phase, what a cell costs at least) and
    of their own wall times. ``ratio`` = wall ÷ timeline sum: about 1.5-2 serially (setup,
    settle, drain and check come on top of every timeline), below that only when cells overlap."""
    timelines = [float(t) for d in docs if (t := (d.get("timing") or {}).get("timeline_s"))]
    walls = [float(t) for d in docs if (t := (d.get("timing") or {}).get("wall_s"))]
    tsum, csum = sum(timelines), sum(walls)
    return {"jobs": jobs, "cells": len(docs), "wall_s": round(wall_s, 1), "timeline_sum_s": round(tsum, 1),
            "cell_wall_sum_s": round(csum, 1), "ratio": round(wall_s / tsum, 3) if tsum else None,
            "speedup": round(csum / wall_s, 2) if wall_s else None}


# ---- the matrix's executor: children for run-scope cells, in-process for broker-scope ones ---------

#: exit codes of the cell child (a crash exits 1, Python's own)
_DONE, _UNAVAILABLE, _CRASHED_PARENT = 0, 3, 4
#: environment variable: the matrix process's pid, for the child's parent-death check
_PARENT = "RABBIT_CHAOS_MATRIX_PID"


class CellFailed(ChaosError):
    """A cell's child process ended without a result (a harness bug, not a verdict)."""


class CellRunner:
    """Runs matrix cells for :func:`schedule` (see the module docstring)."""

    def __init__(self, env: Environment, cfg: ChaosConfig, out: Path, jobs: int = 1) -> None:
        self.env, self.cfg, self.out = env, cfg, out
        self.work = out / ".cells"
        self.work.mkdir(exist_ok=True)
        #: proxy port slots (Environment.proxy_listen) free for a child; this process's own
        #: runs (broker-scope cells, alone) use the environment's slot 0
        self.slots = list(range(1, jobs + 1))
        self.slot_lock = threading.Lock()

    def spec(self, cell: Cell) -> Any:
        from harness.matrix import cell_spec

        return cell_spec(self.cfg, cell.client, cell.fault, cell.index)

    def command(self, cell: Cell) -> list[str] | None:
        from harness.clients.registry import command_for
        from harness.matrix import split_row

        name = split_row(self.cfg, cell.client)[0]  # the row's client (a row may carry a queue type)
        return command_for(self.cfg.client_cmds[name]) if name in self.cfg.client_cmds else None

    def __call__(self, cell: Cell, cancel: Cancel) -> CellResult:
        if cell.scope != "run":
            return self.inline(cell)
        with self.slot_lock:
            if not self.slots:  # the scheduler runs at most `jobs` at once: never
                raise CellFailed("no free proxy port slot for a cell")
            slot = self.slots.pop(0)
        try:
            return self.child(cell, cancel, slot)
        finally:
            with self.slot_lock:
                self.slots.append(slot)

    def inline(self, cell: Cell) -> CellResult:
        """In this process, as the serial matrix does; an interrupt propagates (the cell has
        written its interrupted record; the matrix collects it)."""
        from harness.engine import run_cell

        try:
            return CellResult(cell, doc=run_cell(self.env, self.spec(cell), self.out, command=self.command(cell)))
        except FaultUnavailable as exc:
            return CellResult(cell, unavailable=exc.problem)

    def child(self, cell: Cell, cancel: Cancel, slot: int = 1) -> CellResult:
        """In a child process of its own session (a terminal's Ctrl-C reaches only us; we forward
        it). Waits for its exit; on cancel sends it the signal once, then waits for its record."""
        result = self.work / f"{cell.index}.json"
        log = self.work / f"{cell.index}.log"
        job = {"env": {**attach_info(self.env), "proxy_slot": slot}, "spec": asdict(self.spec(cell)),
               "reports_dir": str(self.out), "command": self.command(cell), "result": str(result)}
        from harness.env import procs

        # no preexec_fn: it is unsafe with threads (this runs in one of several); the child asks
        # for its parent-death signal itself (child_main)
        with open(log, "ab") as logf:
            proc = subprocess.Popen([sys.executable, "-m", "harness.run.parallel"], stdin=subprocess.PIPE,
                                    stdout=logf, stderr=subprocess.STDOUT, start_new_session=True,
                                    env={**os.environ, procs.RECORD_OWNER: str(os.getpid()),
                                         _PARENT: str(os.getpid())})
        stdin = proc.stdin
        if stdin is None:
            raise CellFailed("could not start a cell process")
        with contextlib.suppress(BrokenPipeError):
            stdin.write(json.dumps(job, default=str).encode())
            stdin.close()
        sent = False
        while True:
            try:
                proc.wait(timeout=0.2)
                break
            except subprocess.TimeoutExpired:
                pass
            if cancel.is_set() and not sent:  # once: the child heals, stops and records itself
                sent = True
                with contextlib.suppress(ProcessLookupError):
                    proc.send_signal(signal.SIGINT if cancel.signame == "SIGINT" else signal.SIGTERM)
        return self.collect(cell, proc.returncode, result, log)

    def collect(self, cell: Cell, code: int, result: Path, log: Path) -> CellResult:
        try:
            info = json.loads(result.read_text())
        except (OSError, ValueError):
            info = {}
        status = info.get("status")
        if status == "unavailable":
            return CellResult(cell, unavailable=str(info.get("reason")))
        run_id = info.get("run_id")
        doc_path = self.out / str(run_id) / "results.json" if run_id else None
        if doc_path is not None and doc_path.exists():
            doc = json.loads(doc_path.read_text())
            return CellResult(cell, doc=doc, interrupted=bool(doc.get("interrupted")))
        if status == "interrupted" or code in (130, 143, -signal.SIGINT, -signal.SIGTERM):
            return CellResult(cell, interrupted=True)  # stopped before its run wrote a record: cut
        tail = _tail(log)
        raise CellFailed(f"cell {cell.client} × {cell.fault} ended (exit {code}) without a result",
                         f"see {log}: {tail}")


def _tail(path: Path, lines: int = 5) -> str:
    try:
        return " | ".join(path.read_text(errors="replace").strip().splitlines()[-lines:])
    except OSError:
        return "(no log)"


def attach_info(env: Environment) -> dict[str, Any]:
    """What a child needs to use this environment without starting anything (no secrets on a
    command line: this goes through the child's stdin)."""
    broker = env.broker
    server = env.proxy_server
    return {"backend": env.backend, "state_dir": str(env.state_dir), "base_port": env.base_port,
            "nodes": env.nodes,  # a cluster's proxy ports and node list (Environment.proxy_listen)
            "amqp_url": broker.amqp_url("/") if env.backend == "external" else None,
            "management_url": broker.mgmt.base_url if env.backend == "external" else None,
            "proxy_url": server.url if server is not None else None,
            "proxy_kind": server.kind if server is not None else None,
            "proxy_version": server.version if server is not None else None}


def attach(info: dict[str, Any]) -> Environment:
    """An Environment that uses the parent's broker and proxy server and starts nothing (its
    ``stop()`` stops nothing either: the proxy server object does not own a process)."""
    from harness.env.environment import Environment
    from harness.env.toxiproxy import ToxiproxyClient, ToxiproxyServer

    env = Environment(Path(info["state_dir"]), int(info["base_port"]), backend=info["backend"],
                      amqp_url=info.get("amqp_url"), management_url=info.get("management_url"),
                      nodes=int(info.get("nodes", 1)))
    env.proxy_slot = int(info.get("proxy_slot", 0))
    if info.get("proxy_url"):
        env.proxy_server = ToxiproxyServer(info["proxy_url"], info["proxy_kind"], info["proxy_version"])
        env.toxiproxy = ToxiproxyClient(info["proxy_url"])
    return env


def _write(path: Path, data: dict[str, Any]) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data))
    tmp.replace(path)


def child_main() -> int:
    """The cell child: read the job from stdin, run the cell, write the result file. Exit 0 with
    a record, 130/143 interrupted (record written when the run had begun), 3 unavailable."""
    from harness import engine
    from harness.env import procs
    from harness.run.spec import RunSpec

    procs.die_with_parent()  # SIGKILL if the matrix process dies (it would leave no one to wait)
    if os.environ.get(_PARENT) and os.getppid() != int(os.environ[_PARENT]):
        return _CRASHED_PARENT  # it died before the line above: nothing started
    job = json.loads(sys.stdin.read())
    result = Path(job["result"])
    original = engine.new_run_id

    def named(client: str, timeline: Any) -> str:  # the parent finds the record by this id
        run_id = original(client, timeline)
        _write(result, {"status": "running", "run_id": run_id})
        return run_id

    engine.new_run_id = named
    run_id: str | None = None
    try:
        env = attach(job["env"])
        doc = engine.run_cell(env, RunSpec(**job["spec"]), Path(job["reports_dir"]), command=job["command"])
        run_id = doc["run_id"]
    except FaultUnavailable as exc:
        _write(result, {"status": "unavailable", "reason": exc.problem})
        return _UNAVAILABLE
    except KeyboardInterrupt as exc:
        with contextlib.suppress(OSError, ValueError):
            run_id = json.loads(result.read_text()).get("run_id")
        _write(result, {"status": "interrupted", "run_id": run_id, "signal": signal_name(exc)})
        return 143 if signal_name(exc) == "SIGTERM" else 130
    _write(result, {"status": "done", "run_id": run_id})
    return _DONE


def run_matrix_parallel(env: Environment, cfg: ChaosConfig, progress: Progress | None, jobs: int,
                        shard: Shard | None = None) -> MatrixResult:
    """The matrix with cells side by side (``jobs`` > 1): same outputs as the serial
    :func:`harness.matrix.run_matrix` (matrix.json, report, ``reports/latest``), docs in cell
    order, plus ``timing`` (:func:`matrix_timing`); only ``shard``'s cells when given."""
    from harness.matrix import _interrupted_docs, finish, planned_cells, row_of, start_matrix

    res, emit = start_matrix(cfg, progress, shard)
    out = res.dir
    todo = [Cell(i, c, f, r, *cell_shape(f, cfg.fault_for)) for i, c, f, r in planned_cells(cfg, shard)]
    if not env_allows_concurrency(env):
        jobs = 1
    elif any(c.scope == "run" for c in todo):  # the children's proxy ports: named now, not as unknown cells
        from harness.env import procs

        procs.ensure_ports_free({k: v for slot in range(1, jobs + 1) for k, v in env.proxy_ports(slot).items()})
    t0 = time.monotonic()

    def info(cell: Cell) -> dict[str, Any]:
        return {"index": cell.index, "total": len(todo), "client": cell.client, "fault": cell.fault,
                "repeat": cell.repeat, "scope": cell.scope, "elapsed_s": time.monotonic() - t0, "dir": out}

    def done(r: CellResult) -> None:
        if r.unavailable is not None:
            emit("unavailable", {**info(r.cell), "reason": r.unavailable})
        elif r.doc is not None:
            emit("cell-done", {**info(r.cell), "doc": r.doc})

    sched: Schedule | None = None
    try:
        sched = schedule(todo, jobs, CellRunner(env, cfg, out, jobs), on_start=lambda c: emit("cell-start", info(c)),
                         on_done=done)
        res.docs = [r.doc for r in sched.results if r.doc is not None]
        res.unavailable = [{"client": r.cell.client, "fault": r.cell.fault, "reason": r.unavailable}
                           for r in sched.results if r.unavailable is not None]
        if sched.interrupted or sched.error is not None:
            res.interrupted, res.signal = sched.interrupted, sched.signal
            found = _interrupted_docs(out, res.docs)  # a broker-scope cell cut in this process
            placed = [(r.cell.index, r.doc) for r in sched.results if r.doc is not None]
            never = list(sched.unrun)
            for c in sched.cut:  # started, no record returned: its own record, else it never ran
                doc = next((d for d in found if (row_of(cfg, d), d.get("fault")) == (c.client, c.fault)), None)
                if doc is None:
                    never.append(c)
                else:
                    found.remove(doc)
                    placed.append((c.index, doc))
            res.docs = [d for _, d in sorted(placed, key=lambda x: x[0])]
            res.unrun = [{"client": c.client, "fault": c.fault, "repeat": c.repeat}
                         for c in sorted(never, key=lambda c: c.index)]
        res.timing = matrix_timing(res.docs, time.monotonic() - t0, jobs)
    finally:
        finish(res, cfg, env)
    if sched is not None and sched.error is not None:
        raise sched.error
    return res


def env_allows_concurrency(env: Environment) -> bool:
    """Concurrent runs need a pair of proxy ports each (Environment.proxy_listen: slots); the
    compose backend publishes one fixed pair from its containers, enough for one run only."""
    return env.backend != "compose"


if __name__ == "__main__":
    sys.exit(child_main())
