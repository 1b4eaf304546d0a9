"""A comparison matrix: every client × fault cell (× repeats) on one environment.

Results go to ``reports/<matrix-id>/<run-id>/`` with ``matrix.json`` and ``report.html`` beside
them, and ``reports/latest`` points at the matrix. Ctrl-C stops after healing the current cell:
finished cells are kept and the report is still written, marked as interrupted.
"""

from __future__ import annotations

import json
import re
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from harness import results
from harness.clients.registry import command_for
from harness.config import ChaosConfig
from harness.engine import RunSpec, run_cell
from harness.env.environment import Environment
from harness.errors import FaultUnavailable, signal_name
from harness.matrix_defaults import cell_params, label_for


@dataclass
class MatrixResult:
    matrix_id: str
    dir: Path
    docs: list[dict[str, Any]] = field(default_factory=list)
    unavailable: list[dict[str, str]] = field(default_factory=list)
    interrupted: bool = False
    #: "SIGINT" | "SIGTERM" when interrupted
    signal: str | None = None
    #: cells never run (interrupted): {"client", "fault", "repeat"}
    unrun: list[dict[str, Any]] = field(default_factory=list)
    report: Path | None = None
    #: the matrix benchmark (harness.run.parallel.matrix_timing): jobs, wall_s, timeline_sum_s, ratio
    timing: dict[str, Any] | None = None

    @property
    def exit_code(self) -> int:
        """0, or 128 + the signal that interrupted the matrix (130 SIGINT, 143 SIGTERM)."""
        if not self.interrupted:
            return 0
        return 143 if self.signal == "SIGTERM" else 130

    def tally(self) -> dict[str, int]:
        """Cells per verdict (pass, fail, unknown) plus ``unavailable`` (faults this environment
        cannot inject) and ``unrun`` (cut by an interrupt)."""
        out = {"pass": 0, "fail": 0, "unknown": 0}
        for d in self.docs:
            v = str(d.get("verdict"))
            out[v if v in out else "unknown"] += 1
        return {**out, "unavailable": len(self.unavailable), "unrun": len(self.unrun)}

    def outcome_code(self, fail_exit: bool = True) -> int:
        """The matrix command's exit code. An interrupt wins (130/143). Otherwise, with
        ``fail_exit`` (the default): 1 when any cell failed, else 3 when any cell is unknown (fail
        closed: an undecided cell is no pass, but CI can tell it from a proven failure), else 0.
        ``fail_exit=False`` (``--no-fail-exit``): 0 once every cell ran, whatever the verdicts."""
        if self.interrupted:
            return self.exit_code
        if not fail_exit:
            return 0
        t = self.tally()
        return EXIT_FAIL if t["fail"] else EXIT_UNKNOWN if t["unknown"] else 0


#: ``matrix`` exit codes (2 is every user error, 130/143 an interrupt)
EXIT_FAIL = 1
EXIT_UNKNOWN = 3

#: progress callback: (event, info) with event in {"cell-start", "cell-done", "unavailable"}
Progress = Callable[[str, dict[str, Any]], None]


_PARAM = re.compile(r"^\s*[A-Za-z_][A-Za-z0-9_]*\s*=")


def split_faults(text: str) -> list[str]:
    """Split a comma-separated list of faults (``--faults``) where a comma starts a new fault
    name only: a comma followed by ``key=`` continues the previous fault's parameters, as the
    docs write them (``latency:latency_ms=200,stream=both``), and commas inside ``cycle(...)``
    or ``random(...)`` belong to it."""
    items: list[str] = []
    cur: list[str] = []
    depth = 0
    for ch in text:
        depth += (ch == "(") - (ch == ")")
        if ch == "," and depth <= 0:
            items.append("".join(cur))
            cur = []
        else:
            cur.append(ch)
    items.append("".join(cur))
    out: list[str] = []
    for item in (i.strip() for i in items):
        if not item:
            continue
        if out and _PARAM.match(item):
            out[-1] += "," + item
        else:
            out.append(item)
    return out


def cells(cfg: ChaosConfig) -> list[tuple[str, str, int]]:
    clients = [*cfg.clients, *[c for c in cfg.client_cmds if c not in cfg.clients]]
    return [(c, f, r) for c in clients for f in cfg.faults for r in range(cfg.repeat)]


def cell_spec(cfg: ChaosConfig, client: str, fault: str, index: int) -> RunSpec:
    """The RunSpec of one cell (the ``index``-th of :func:`cells`): the matrix's workload and
    deadlines, and the client knobs of the fault's curated column (harness.matrix_defaults:
    e.g. heartbeat 5 s for the silent-fault columns) under the user's own ``--param``."""
    return RunSpec(client=client, fault=fault, seed=None if cfg.seed is None else cfg.seed + index,
                   count=cfg.count, rate=cfg.rate, warmup_s=cfg.warmup, fault_s=cfg.fault_for,
                   work_s=cfg.work, params=cell_params(fault, cfg.params), check_options=cfg.check_options())


def start_matrix(cfg: ChaosConfig, progress: Progress | None) -> tuple[MatrixResult, Progress]:
    """A new matrix (serial or parallel): its id (``matrix-<UTC stamp>-<4 hex>``), its directory
    under ``cfg.reports_dir`` (created, never reused), its empty result, and where progress goes
    (``progress``, else nowhere)."""
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
    matrix_id = f"matrix-{stamp}-{secrets.token_hex(2)}"
    out = cfg.reports_dir / matrix_id
    out.mkdir(parents=True, exist_ok=False)
    return MatrixResult(matrix_id, out), progress or (lambda event, info: None)


def run_matrix(env: Environment, cfg: ChaosConfig, progress: Progress | None = None, jobs: int = 1) -> MatrixResult:
    """Every cell in order; with ``jobs`` > 1, run-scope cells side by side and broker-scope ones
    alone (harness.run.parallel: same outputs, docs in cell order)."""
    if jobs > 1:
        from harness.run.parallel import run_matrix_parallel

        return run_matrix_parallel(env, cfg, progress, jobs)
    res, emit = start_matrix(cfg, progress)
    out = res.dir
    todo = cells(cfg)
    t0 = time.monotonic()
    try:
        for i, (client, fault, rep) in enumerate(todo):
            info = {"index": i, "total": len(todo), "client": client, "fault": fault, "repeat": rep,
                    "elapsed_s": time.monotonic() - t0, "dir": out}
            emit("cell-start", info)
            spec = cell_spec(cfg, client, fault, i)
            try:
                cmd = command_for(cfg.client_cmds[client]) if client in cfg.client_cmds else None
                doc = run_cell(env, spec, out, command=cmd)
            except FaultUnavailable as exc:
                res.unavailable.append({"client": client, "fault": fault, "reason": exc.problem})
                emit("unavailable", {**info, "reason": exc.problem})
                continue
            res.docs.append(doc)
            emit("cell-done", {**info, "doc": doc, "elapsed_s": time.monotonic() - t0})
    except KeyboardInterrupt as exc:
        res.interrupted = True
        res.signal = signal_name(exc)
        cut = _interrupted_docs(out, res.docs)  # the cell cut short, when it wrote its record
        res.docs += cut
        processed = len(res.docs) + len(res.unavailable)  # cells run in order, each leaves one or the other
        res.unrun = [{"client": c, "fault": f, "repeat": r} for c, f, r in todo[processed:]]
    finally:
        from harness.run.parallel import matrix_timing

        res.timing = matrix_timing(res.docs, time.monotonic() - t0, 1)
        finish(res, cfg, env)
    return res


def _interrupted_docs(out: Path, docs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Records the interrupted cell wrote (verdict unknown, ``interrupted: true``) that the loop
    never received because the interrupt unwound through it."""
    have = {d.get("run_id") for d in docs}
    extra = []
    for path in sorted(out.glob("*/results.json")):
        if path.parent.is_symlink():  # out/latest points at a run already listed
            continue
        try:
            doc = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        if isinstance(doc, dict) and doc.get("run_id") not in have:
            have.add(doc.get("run_id"))
            extra.append(doc)
    return extra


def finish(res: MatrixResult, cfg: ChaosConfig, env: Environment | None) -> None:
    """Write matrix.json and the report, point reports/latest at the matrix."""
    meta = {
        "matrix_id": res.matrix_id,
        "clients": cfg.clients,
        "faults": cfg.faults,
        "labels": {f: label_for(f) for f in cfg.faults},
        "repeat": cfg.repeat,
        "interrupted": res.interrupted,
        "interrupted_by": res.signal,
        "unrun": res.unrun,
        "unavailable": res.unavailable,
        "tally": res.tally(),
        "timing": res.timing,
        "runs": [d["run_id"] for d in res.docs],
        "versions": env.versions() if env is not None else {},
        "finished_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    (res.dir / "matrix.json").write_text(json.dumps(meta, indent=2, default=str))
    from harness.report import render_report

    # written even for an interrupted or empty matrix: the report says so
    res.report = render_report(res.docs, res.dir / "report.html", title=f"rabbit-chaos {res.matrix_id}",
                               meta={"matrix": res.matrix_id,
                                     "interrupted": f"yes, by {res.signal}" if res.interrupted else False,
                                     **({"interrupted runs": ", ".join(d["run_id"] for d in res.docs
                                                                        if d.get("interrupted"))}
                                        if any(d.get("interrupted") for d in res.docs) else {}),
                                     **({"not run": ", ".join(f"{u['client']} × {u['fault']}"
                                                              for u in res.unrun)} if res.unrun else {}),
                                     "unavailable": len(res.unavailable)}, reports_dir=res.dir)
    results.point_latest(cfg.reports_dir, res.dir)
