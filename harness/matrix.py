"""A comparison matrix: every client × fault cell (× repeats) on one environment.

Results go to ``reports/<matrix-id>/<run-id>/`` with ``matrix.json`` and ``report.html`` beside
them, and ``reports/latest`` points at the matrix. Ctrl-C stops after healing the current cell:
finished cells are kept and the report is still written, marked as interrupted.

``--shard K/N`` runs the cells of shard K only (harness.shard: by cell identity, never by
position, so the split does not depend on the order of ``--clients``/``--faults``). A shard's
cells keep their index in the whole matrix (their seeds are the unsharded run's), its
matrix.json and every results.json record ``shard: "K/N"``, and ``rabbit-chaos report`` over
the N shard directories renders the whole matrix (docs/scaling.md).
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
from harness.shard import Shard, cell_identity, select, set_digest


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
    #: the shard this process ran (``--shard K/N``), None for the whole matrix
    shard: Shard | None = None
    #: cells of this run (the shard's when sharded) and of the whole matrix
    cells_planned: int = 0
    cells_total: int = 0

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
    """Every (row, fault, repeat) of the whole matrix, row-major: the order the serial matrix
    runs them in and the index that seeds each cell (:func:`cell_spec`). A row is a client, or a
    client and a queue type when the matrix has several (:func:`rows`)."""
    return [(c, f, r) for c in rows(cfg) for f in cfg.faults for r in range(cfg.repeat)]


#: a queue type's tag in a row label: short, so "pika-async-best qq" fits the 80-column table's
#: 18-character client column (RabbitMQ's own docs say CQ and QQ)
QUEUE_TYPE_TAGS = {"classic": "cq", "quorum": "qq", "stream": "sq"}


def rows(cfg: ChaosConfig) -> list[str]:
    """The matrix's row labels: each client (``--clients``, then ``--client-cmd`` labels) once per
    queue type. With one queue type (the default) a row is the client's name, as before queue
    types existed; with several, "<client> <tag>" (``pika-best cq``, ``pika-best qq``), the
    queue types of a client side by side so the table compares them."""
    clients = [*cfg.clients, *[c for c in cfg.client_cmds if c not in cfg.clients]]
    types = list(cfg.queue_type)
    if len(types) <= 1:
        return clients
    return [f"{c} {QUEUE_TYPE_TAGS[t]}" for c in clients for t in types]


def split_row(cfg: ChaosConfig, row: str) -> tuple[str, str]:
    """A row label's (client, queue type): the inverse of :func:`rows`."""
    types = list(cfg.queue_type) or ["classic"]
    if len(types) > 1:
        client, _, tag = row.rpartition(" ")
        for t in types:
            if client and QUEUE_TYPE_TAGS[t] == tag:
                return client, t
    return row, types[0]


def row_of(cfg: ChaosConfig, doc: dict[str, Any]) -> str:
    """The row a cell's results.json belongs to (its client, and its queue type when the matrix
    has several)."""
    client = str(doc.get("client"))
    if len(cfg.queue_type) <= 1:
        return client
    spec = doc.get("spec")
    spec = spec if isinstance(spec, dict) else {}
    return f"{client} {QUEUE_TYPE_TAGS.get(str(spec.get('queue_type', 'classic')), '?')}"


def queue_type_of(cfg: ChaosConfig) -> str | None:
    """The queue type the matrix sets, when the configuration has that setting (part of a cell's
    identity, so a quorum cell and a classic cell are two cells)."""
    value = getattr(cfg, "queue_type", None)
    if isinstance(value, list | tuple):  # --queue-type classic,quorum: the matrix's list
        return ",".join(str(v) for v in value) or None
    return str(value) if value else None


def identity(cfg: ChaosConfig, client: str, fault: str, repeat: int) -> str:
    """The cell's identity for sharding (harness.shard.cell_identity): its client and its own
    queue type (``client`` is the cell's row, :func:`rows`). A classic cell leaves the queue type
    out, so a matrix without ``--queue-type`` splits exactly as it did before queue types."""
    name, queue_type = split_row(cfg, client)
    return cell_identity(name, fault, repeat, None if queue_type == "classic" else queue_type)


def planned_cells(cfg: ChaosConfig, shard: Shard | None = None) -> list[tuple[int, str, str, int]]:
    """(index in the whole matrix, client, fault, repeat) of the cells to run: all of them, or
    shard K of N's. The split is by identity, stratified by (scope, expected fault phase): every
    shard gets its share of the cells that must run alone and of each long column (see
    harness.shard)."""
    indexed = [(i, c, f, r) for i, (c, f, r) in enumerate(cells(cfg))]
    if shard is None:
        return indexed
    from harness.run.parallel import cell_shape

    shapes = {f: cell_shape(f, cfg.fault_for) for f in cfg.faults}

    def stratum(x: tuple[int, str, str, int]) -> tuple[float, ...]:
        scope, seconds = shapes.get(x[2]) or cell_shape(x[2], cfg.fault_for)
        return (0 if scope == "broker" else 1, -seconds)

    return select(indexed, shard, key=lambda x: identity(cfg, x[1], x[2], x[3]), stratum=stratum)


def cell_set_digest(cfg: ChaosConfig) -> str:
    """The whole matrix's cell set as a short digest (harness.shard.set_digest): shards that
    record the same one belong to one matrix."""
    return set_digest([identity(cfg, c, f, r) for c, f, r in cells(cfg)])


def cell_spec(cfg: ChaosConfig, client: str, fault: str, index: int) -> RunSpec:
    """The RunSpec of one cell (the ``index``-th of :func:`cells`): the matrix's workload and
    deadlines, and the client knobs of the fault's curated column (harness.matrix_defaults:
    e.g. heartbeat 5 s for the silent-fault columns) under the user's own ``--param``. ``client``
    is the cell's row (:func:`rows`): the client, with its queue type when the matrix has several."""
    name, queue_type = split_row(cfg, client)
    return RunSpec(client=name, fault=fault, seed=None if cfg.seed is None else cfg.seed + index,
                   count=cfg.count, rate=cfg.rate, warmup_s=cfg.warmup, fault_s=cfg.fault_for,
                   work_s=cfg.work, params=cell_params(fault, cfg.params), check_options=cfg.check_options(),
                   queue_type=queue_type)


def start_matrix(cfg: ChaosConfig, progress: Progress | None,
                 shard: Shard | None = None) -> tuple[MatrixResult, Progress]:
    """A new matrix (serial or parallel): its id (``matrix-<UTC stamp>-<4 hex>``, with
    ``-shard-K-of-N`` when sharded, so the N shard directories never collide when a merge job
    downloads them side by side), its directory under ``cfg.reports_dir`` (created, never
    reused), its empty result, and where progress goes (``progress``, else nowhere)."""
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
    tail = f"-shard-{shard.index}-of-{shard.total}" if shard is not None else ""
    matrix_id = f"matrix-{stamp}-{secrets.token_hex(2)}{tail}"
    out = cfg.reports_dir / matrix_id
    out.mkdir(parents=True, exist_ok=False)
    res = MatrixResult(matrix_id, out, shard=shard, cells_planned=len(planned_cells(cfg, shard)),
                       cells_total=len(cells(cfg)))
    return res, progress or (lambda event, info: None)


def run_matrix(env: Environment, cfg: ChaosConfig, progress: Progress | None = None, jobs: int = 1,
               shard: Shard | None = None) -> MatrixResult:
    """Every cell (of ``shard``, when given) in order; with ``jobs`` > 1, run-scope cells side by
    side and broker-scope ones alone (harness.run.parallel: same outputs, docs in cell order)."""
    if jobs > 1:
        from harness.run.parallel import run_matrix_parallel

        return run_matrix_parallel(env, cfg, progress, jobs, shard=shard)
    res, emit = start_matrix(cfg, progress, shard)
    out = res.dir
    todo = planned_cells(cfg, shard)
    t0 = time.monotonic()
    try:
        for i, client, fault, rep in todo:
            info = {"index": i, "total": len(todo), "client": client, "fault": fault, "repeat": rep,
                    "elapsed_s": time.monotonic() - t0, "dir": out}
            emit("cell-start", info)
            spec = cell_spec(cfg, client, fault, i)
            try:
                name = split_row(cfg, client)[0]
                cmd = command_for(cfg.client_cmds[name]) if name in cfg.client_cmds else None
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
        res.unrun = [{"client": c, "fault": f, "repeat": r} for _, c, f, r in todo[processed:]]
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
    """Write matrix.json and the report, point reports/latest at the matrix. A shard's runs get
    ``shard: "K/N"`` in their results.json too, so a run copied out of its matrix still says
    which job ran it."""
    if res.shard is not None:
        stamp_shard(res.dir, res.docs, str(res.shard))
    meta = {
        "matrix_id": res.matrix_id,
        "clients": [*cfg.clients, *[c for c in cfg.client_cmds if c not in cfg.clients]],
        "faults": cfg.faults,
        "queue_type": queue_type_of(cfg),
        "shard": str(res.shard) if res.shard is not None else None,
        "cells": res.cells_planned,
        "cells_total": res.cells_total,
        "cell_set": cell_set_digest(cfg),
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
                                     **({"shard": f"{res.shard} ({res.cells_planned} of {res.cells_total} "
                                                  "cells; `rabbit-chaos report` over every shard's "
                                                  "directory merges them)"} if res.shard else {}),
                                     "unavailable": len(res.unavailable)}, reports_dir=res.dir)
    results.point_latest(cfg.reports_dir, res.dir)


def stamp_shard(out: Path, docs: list[dict[str, Any]], shard: str) -> None:
    """Add ``shard`` to each run's record and rewrite its results.json (atomically: a reader
    never sees half a file). A run whose file is gone is left alone: its doc still says it."""
    for doc in docs:
        doc["shard"] = shard
        path = out / str(doc.get("run_id")) / "results.json"
        if not path.is_file():
            continue
        tmp = path.with_name("results.json.tmp")
        tmp.write_text(json.dumps(doc, indent=2, default=str))
        tmp.replace(path)
