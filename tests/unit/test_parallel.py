"""The matrix scheduler (harness.run.parallel) on fake cells: no broker, no clients, no timing.

Fake cells coordinate through events and barriers (never sleeps); every wait has a generous
timeout only so that a scheduler bug fails the test instead of hanging it.
"""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path
from typing import Any, cast

import pytest

from harness.errors import Interrupted
from harness.faults.registry import faults
from harness.run.parallel import (
    Cancel,
    Cell,
    CellFailed,
    CellResult,
    CellRunner,
    default_jobs,
    matrix_timing,
    schedule,
    timeline_scope,
)

SAFETY_S = 30.0  # only ever reached when the scheduler is wrong


def run_cells(n: int, start: int = 0) -> list[Cell]:
    return [Cell(i, f"c{i}", "partition", 0, "run") for i in range(start, start + n)]


def broker_cells(n: int, start: int) -> list[Cell]:
    return [Cell(i, f"c{i}", "broker-restart", 0, "broker") for i in range(start, start + n)]


class Tracker:
    """Records which cells run at once, and in which thread."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.active: set[int] = set()
        self.peak = 0
        self.seen_with: dict[int, set[int]] = {}
        self.threads: dict[int, bool] = {}

    def enter(self, cell: Cell) -> None:
        with self.lock:
            self.active.add(cell.index)
            self.peak = max(self.peak, len(self.active))
            self.threads[cell.index] = threading.current_thread() is threading.main_thread()
            for i in self.active:  # both directions: who ran beside whom
                self.seen_with.setdefault(i, set()).update(self.active - {i})

    def leave(self, cell: Cell) -> None:
        with self.lock:
            self.active.discard(cell.index)


def test_run_scope_cells_run_up_to_jobs_at_once_and_broker_scope_alone_in_the_calling_thread() -> None:
    jobs = 3
    barrier = threading.Barrier(jobs, timeout=SAFETY_S)  # passes only when 3 cells are in at once
    t = Tracker()

    def execute(cell: Cell, cancel: Cancel) -> CellResult:
        t.enter(cell)
        try:
            if cell.scope == "run":
                barrier.wait()
            return CellResult(cell, doc={"run_id": f"r{cell.index}", "client": cell.client})
        finally:
            t.leave(cell)

    cells = [*run_cells(3), *broker_cells(2, 3), *run_cells(3, 5)]  # broker cells in the middle of the list
    sched = schedule(cells, jobs, execute)
    assert sched.error is None and not sched.interrupted
    assert t.peak == jobs and sched.peak == jobs
    for b in (3, 4):
        assert t.seen_with[b] == set(), "a broker-scope cell ran beside another cell"
        assert t.threads[b] is True  # inline: an interrupt reaches it as in the serial matrix
    assert not any(t.threads[i] for i in (0, 1, 2, 5, 6, 7))
    assert [r.cell.index for r in sched.results] == list(range(8))
    assert sched.unrun == [] and sched.cut == []


def test_never_more_than_jobs_at_once() -> None:
    t = Tracker()
    gate = threading.Event()
    started = threading.Semaphore(0)

    def execute(cell: Cell, cancel: Cancel) -> CellResult:
        t.enter(cell)
        started.release()
        gate.wait(SAFETY_S)
        t.leave(cell)
        return CellResult(cell, doc={"run_id": str(cell.index)})

    result: dict[str, Any] = {}
    runner = threading.Thread(target=lambda: result.update(s=schedule(run_cells(5), 2, execute)))
    runner.start()
    assert started.acquire(timeout=SAFETY_S) and started.acquire(timeout=SAFETY_S)
    with t.lock:
        assert len(t.active) == 2  # the third waits for a free slot
    gate.set()
    runner.join(SAFETY_S)
    assert t.peak == 2
    assert [r.cell.index for r in result["s"].results] == [0, 1, 2, 3, 4]


def test_results_come_back_in_cell_order_whatever_the_finishing_order() -> None:
    finished = {i: threading.Event() for i in range(3)}
    finished[3] = threading.Event()
    finished[3].set()
    done_order: list[int] = []

    def execute(cell: Cell, cancel: Cancel) -> CellResult:
        finished[cell.index + 1].wait(SAFETY_S)  # 2 finishes first, then 1, then 0
        finished[cell.index].set()
        return CellResult(cell, doc={"run_id": str(cell.index)})

    sched = schedule(run_cells(3), 3, execute, on_done=lambda r: done_order.append(r.cell.index))
    assert done_order == [2, 1, 0]
    assert [r.cell.index for r in sched.results] == [0, 1, 2]


def test_an_exception_in_one_cell_cancels_the_running_ones_and_starts_no_more() -> None:
    cancels: dict[int, Cancel] = {}
    zero_running = threading.Event()

    def execute(cell: Cell, cancel: Cancel) -> CellResult:
        cancels[cell.index] = cancel
        if cell.index == 0:
            zero_running.set()
            assert cancel.event.wait(SAFETY_S), "cell 0 was never asked to stop"
            return CellResult(cell, doc={"run_id": "r0", "interrupted": True}, interrupted=True)
        zero_running.wait(SAFETY_S)
        raise RuntimeError("harness bug in cell 1")

    sched = schedule(run_cells(6), 2, execute)
    assert isinstance(sched.error, RuntimeError)
    assert cancels[0].signame == "SIGTERM"
    assert [r.cell.index for r in sched.results] == [0]  # what ran is recorded
    assert sched.results[0].interrupted
    assert [c.index for c in sched.cut] == [1]
    assert [c.index for c in sched.unrun] == [2, 3, 4, 5]


def test_an_interrupt_forwards_its_signal_to_running_cells_and_records_what_ran() -> None:
    running = threading.Barrier(3, timeout=SAFETY_S)  # cells 0 and 1 and the scheduler's on_start

    def execute(cell: Cell, cancel: Cancel) -> CellResult:
        running.wait()
        assert cancel.event.wait(SAFETY_S)
        return CellResult(cell, doc={"run_id": f"r{cell.index}", "interrupted": True}, interrupted=True)

    def on_start(cell: Cell) -> None:
        if cell.index == 2:  # Ctrl-C while cells 0 and 1 run
            running.wait()
            raise KeyboardInterrupt

    sched = schedule(run_cells(4), 3, execute, on_start=on_start)  # a slot is free for cell 2
    assert sched.interrupted and sched.signal == "SIGINT" and sched.error is None
    assert [r.cell.index for r in sched.results] == [0, 1]
    assert [c.index for c in sched.unrun] == [2, 3]


def test_an_interrupted_broker_scope_cell_is_cut_and_later_cells_never_start() -> None:
    calls: list[int] = []

    def execute(cell: Cell, cancel: Cancel) -> CellResult:
        calls.append(cell.index)
        if cell.index == 2:
            raise Interrupted("SIGTERM")  # run_cell wrote its record, then re-raised
        return CellResult(cell, doc={"run_id": str(cell.index)})

    sched = schedule([*run_cells(2), *broker_cells(2, 2)], 2, execute)
    assert sched.interrupted and sched.signal == "SIGTERM"
    assert sorted(calls) == [0, 1, 2]
    assert [r.cell.index for r in sched.results] == [0, 1]
    assert [c.index for c in sched.cut] == [2]
    assert [c.index for c in sched.unrun] == [3]


def test_a_cell_stopped_before_it_wrote_anything_is_cut_not_a_result() -> None:
    def execute(cell: Cell, cancel: Cancel) -> CellResult:
        return CellResult(cell, interrupted=True)

    sched = schedule(run_cells(2), 2, execute)
    assert sched.results == [] and [c.index for c in sched.cut] == [0, 1]


@pytest.mark.parametrize(("spec", "scope"), [
    ("none", "run"),
    ("partition", "run"),
    ("connection-cut", "run"),
    ("latency:latency_ms=12000,target=publisher@0+20", "run"),
    ("force-close:target=consumer", "run"),
    ("queue-delete", "run"),
    ("kernel-blackhole", "run"),
    ("broker-restart", "broker"),
    ("memory-alarm", "broker"),
    ("consumer-timeout@0+15,force-close:target=consumer@3+0", "broker"),  # one broker fault is enough
    ("no-such-fault", "broker"),  # fails on its own, alone
])
def test_a_cells_scope_is_broker_when_any_fault_of_its_timeline_acts_on_the_node(spec: str, scope: str) -> None:
    assert timeline_scope(spec, None) == scope


def test_every_catalogue_fault_has_a_scope_and_node_faults_are_broker_scope() -> None:
    for name, cls in faults().items():
        assert cls.scope in ("run", "broker"), name
        if cls.needs & {"process", "ctl"}:  # the node's process, or a node-wide setting/alarm
            assert cls.scope == "broker", name


def test_matrix_timing_is_wall_over_the_sum_of_fault_timelines() -> None:
    docs: list[dict[str, Any]] = [{"timing": {"timeline_s": 10.0, "wall_s": 20.0}},
                                  {"timing": {"timeline_s": 30.0, "wall_s": 40.0}}, {"timing": {"timeline_s": None}}]
    t = matrix_timing(docs, 30.0, 2)
    assert t["timeline_sum_s"] == 40.0 and t["ratio"] == 0.75 and t["speedup"] == 2.0 and t["jobs"] == 2
    assert matrix_timing([], 1.0, 1)["ratio"] is None


def test_default_jobs_is_small() -> None:
    assert 1 <= default_jobs() <= 4


def test_each_proxy_slot_has_its_own_fixed_ports(tmp_path: Path) -> None:
    from harness.env.environment import Environment

    env = Environment(tmp_path, base_port=30000)
    assert [env.proxy_listen(i) for i in (0, 1)] == ["127.0.0.1:30005", "127.0.0.1:30006"]
    env.proxy_slot = 2
    assert [env.proxy_listen(i) for i in (0, 1)] == ["127.0.0.1:30009", "127.0.0.1:30010"]
    ports = [p for slot in range(5) for p in env.proxy_ports(slot).values()]
    assert len(set(ports)) == len(ports) and min(ports) > 30004  # clear of the broker's and the proxy API's


def test_runner_gives_each_running_child_its_own_slot(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    r = CellRunner(cast(Any, None), cast(Any, None), tmp_path, jobs=3)
    held: list[int] = []
    both_in = threading.Barrier(3, timeout=SAFETY_S)

    def child(cell: Cell, cancel: Cancel, slot: int = 1) -> CellResult:
        held.append(slot)
        both_in.wait()
        return CellResult(cell, doc={"run_id": str(cell.index)})

    monkeypatch.setattr(r, "child", child)
    sched = schedule(run_cells(3), 3, r)
    assert sched.error is None and sorted(held) == [1, 2, 3] and sorted(r.slots) == [1, 2, 3]


# ---- the child-process executor's reading of what a child left -------------------------------------

def runner(tmp_path: Path) -> CellRunner:
    return CellRunner(cast(Any, None), cast(Any, None), tmp_path)


def test_a_childs_record_is_read_by_its_run_id(tmp_path: Path) -> None:
    r = runner(tmp_path)
    cell = run_cells(1)[0]
    (tmp_path / "run-1").mkdir()
    (tmp_path / "run-1" / "results.json").write_text(json.dumps({"run_id": "run-1", "interrupted": True}))
    res_file = tmp_path / "0.json"
    res_file.write_text(json.dumps({"status": "interrupted", "run_id": "run-1"}))
    got = r.collect(cell, 130, res_file, tmp_path / "0.log")
    assert got.doc == {"run_id": "run-1", "interrupted": True} and got.interrupted


def test_a_child_reports_an_unavailable_fault(tmp_path: Path) -> None:
    res_file = tmp_path / "0.json"
    res_file.write_text(json.dumps({"status": "unavailable", "reason": "needs root"}))
    got = runner(tmp_path).collect(run_cells(1)[0], 3, res_file, tmp_path / "0.log")
    assert got.unavailable == "needs root" and got.doc is None


def test_a_child_stopped_before_its_run_began_left_nothing(tmp_path: Path) -> None:
    got = runner(tmp_path).collect(run_cells(1)[0], -15, tmp_path / "missing.json", tmp_path / "0.log")
    assert got.doc is None and got.unavailable is None and got.interrupted


def test_a_child_that_crashed_is_a_harness_error_naming_its_log(tmp_path: Path) -> None:
    log = tmp_path / "0.log"
    log.write_text("Traceback...\nValueError: boom\n")
    with pytest.raises(CellFailed, match="without a result") as info:
        runner(tmp_path).collect(run_cells(1)[0], 1, tmp_path / "missing.json", log)
    assert "boom" in str(info.value.fix)


# ---- real signals (the scheduler runs in pytest's main thread here) --------------------------------

def test_a_signal_is_noted_and_a_second_one_cannot_cut_the_wind_down_short() -> None:
    import os
    import signal

    cancelled: dict[int, str] = {}
    both_running = threading.Barrier(2, timeout=SAFETY_S)

    def execute(cell: Cell, cancel: Cancel) -> CellResult:
        both_running.wait()
        if cell.index == 0:
            os.kill(os.getpid(), signal.SIGINT)  # Ctrl-C while both cells run
        assert cancel.event.wait(SAFETY_S)
        cancelled[cell.index] = cancel.signame
        if cell.index == 1:
            os.kill(os.getpid(), signal.SIGINT)  # and again during the wind-down: noted, not raised
        return CellResult(cell, doc={"run_id": str(cell.index), "interrupted": True}, interrupted=True)

    before = signal.getsignal(signal.SIGINT)
    sched = schedule(run_cells(4), 2, execute)
    assert signal.getsignal(signal.SIGINT) is before  # handlers restored
    assert sched.interrupted and sched.signal == "SIGINT" and sched.error is None
    assert cancelled == {0: "SIGINT", 1: "SIGINT"}
    assert [r.cell.index for r in sched.results] == [0, 1] and [c.index for c in sched.unrun] == [2, 3]


def test_a_signal_during_an_inline_broker_cell_interrupts_it_as_the_serial_matrix_does() -> None:
    import os
    import signal

    reached_end: list[int] = []

    def execute(cell: Cell, cancel: Cancel) -> CellResult:
        try:
            os.kill(os.getpid(), signal.SIGTERM)  # delivered to this (main) thread: raises here
            for _ in range(10**7):  # the handler runs at the next bytecode; this never ends normally
                pass
            reached_end.append(cell.index)
            return CellResult(cell, doc={"run_id": str(cell.index)})
        except KeyboardInterrupt:
            os.kill(os.getpid(), signal.SIGTERM)  # a second one during the run's own cleanup: noted only
            raise

    sched = schedule(broker_cells(2, 0), 2, execute)
    assert sched.interrupted and sched.signal == "SIGTERM"
    assert reached_end == [] and [c.index for c in sched.cut] == [0] and [c.index for c in sched.unrun] == [1]


def test_bench_matrix_prints_wall_over_timelines(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from harness.cli import app

    for run, tl, wall in (("r1", 10.0, 20.0), ("r2", 30.0, 40.0)):
        (tmp_path / run).mkdir()
        (tmp_path / run / "results.json").write_text(json.dumps({"timing": {"timeline_s": tl, "wall_s": wall}}))
    meta = {"matrix_id": "m", "runs": ["r1", "r2"], "timing": {"wall_s": 30.0, "jobs": 2}}
    (tmp_path / "matrix.json").write_text(json.dumps(meta))
    res = CliRunner().invoke(app, ["bench", "matrix", str(tmp_path)])
    assert res.exit_code == 0, res.output
    doc = json.loads(res.output)
    assert doc["ratio"] == 0.75 and doc["jobs"] == 2 and doc["estimated"] is False
    del meta["timing"]  # an older, serial matrix: its wall is the sum of its cells'
    (tmp_path / "matrix.json").write_text(json.dumps(meta))
    doc = json.loads(CliRunner().invoke(app, ["bench", "matrix", str(tmp_path)]).output)
    assert doc["wall_s"] == 60.0 and doc["estimated"] is True
    bad = CliRunner().invoke(app, ["bench", "matrix", str(tmp_path / "nope")])
    assert bad.exit_code == 2 and "not a finished matrix directory" in bad.output


def test_run_scope_cells_start_longest_first_and_come_back_in_cell_order() -> None:
    from harness.run.parallel import cell_shape

    specs = ["none", "partition", "latency:latency_ms=12000,target=publisher@0+20", "connection-cut"]
    costs = [cell_shape(f, None)[1] for f in specs]
    assert costs == [0.0, 24.0, 20.0, 4.0]  # a silent bare fault counts its expected detection hold
    cells = [Cell(i, "c", f, 0, "run", cost) for i, (f, cost) in enumerate(zip(specs, costs, strict=True))]
    order: list[int] = []
    sched = schedule(cells, 1, lambda c, cancel: CellResult(c, doc={"run_id": str(c.index)}),
                     on_start=lambda c: order.append(c.index))
    assert order == [1, 2, 3, 0]
    assert [r.cell.index for r in sched.results] == [0, 1, 2, 3]


def test_a_cells_children_record_their_processes_under_the_matrix_process(monkeypatch: pytest.MonkeyPatch,
                                                                           tmp_path: Path) -> None:
    from harness.env import procs

    monkeypatch.setenv(procs.RECORD_OWNER, "4242")
    rec = procs.PidRecord(tmp_path / "clients.json")
    rec.add("consumer-0@run", 1, "x")
    assert rec.load()["owner"] == 4242
    monkeypatch.delenv(procs.RECORD_OWNER)
    assert procs.record_owner() == os.getpid()


def test_a_cell_child_process_that_cannot_run_its_cell_is_a_harness_error_with_its_log(tmp_path: Path) -> None:
    """The real child plumbing (job on stdin, result file, exit code), no broker: the child's
    run_cell refuses an unknown client before touching anything, and exits 1."""
    from harness.config import ChaosConfig
    from harness.env.environment import Environment

    env = Environment(tmp_path / "state", base_port=30000)
    cfg = ChaosConfig.model_validate({"clients": ["no-such-client"], "faults": ["none"]})
    r = CellRunner(env, cfg, tmp_path, jobs=1)
    with pytest.raises(CellFailed) as info:
        r(Cell(0, "no-such-client", "none", 0, "run"), Cancel())
    assert "no-such-client" in str(info.value.fix)
    assert r.slots == [1]  # the slot came back
