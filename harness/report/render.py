"""Render runs into one self-contained HTML file: the only place the report touches the disk.

Jinja2 with autoescape on for every template: everything a run carries (client and fault names,
reasons, message ids, broker versions) may hold markup, and the template never marks data safe.
The only ``Markup`` values are our own inlined code and the pre-escaped JSON (see :mod:`embed`).
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

import jinja2
from markupsafe import Markup

from harness import __version__
from harness.errors import ChaosError
from harness.report import compare, embed, fmt, matrix, merge, series, view

DEFAULT_TITLE = "rabbit-chaos report"
REPORT_NAME = "report.html"


def _env() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("harness.report", "templates"),
        autoescape=True,  # every template, whatever its extension
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["seconds"] = fmt.seconds
    env.filters["dash"] = lambda x: "—" if x is None else x
    env.filters["breakable"] = _breakable
    return env


_BREAK_AFTER = re.compile(r"(?<=[:,=/])")


def _breakable(name: str) -> list[str]:
    """A fault spec cut after ``:``, ``,``, ``=`` and ``/``: the template escapes each part and
    puts ``<wbr>`` between them, so ``latency:latency_ms=200,stream=both`` wraps at its
    parameters in a narrow column header, not in the middle of a word."""
    return [p for p in _BREAK_AFTER.split(name) if p]


def _evidence_href(reports_dir: Path | None, out_dir: Path, run_id: str,
                   run_dirs: dict[str, Path] | None = None) -> str | None:
    """Relative link to a run's history.jsonl when it sits in the store next to the report
    (``run_dirs``: where each run was found, for runs collected at any depth)."""
    if not run_id or run_id == "—":
        return None
    if run_dirs is not None and run_id in run_dirs:
        target = run_dirs[run_id]
    elif reports_dir is None or "/" in run_id:
        return None
    else:
        target = reports_dir / run_id
    if not (target / "history.jsonl").is_file():
        return None
    rel = os.path.relpath(target, out_dir.resolve() if out_dir.exists() else out_dir)
    return "/".join(quote(part) for part in Path(rel).parts) + "/"


def _verdict_totals(views: list[view.RunView]) -> dict[str, int]:
    return {v: sum(r.verdict == v for r in views) for v in view.VERDICTS}


def render_html(runs: list[dict[str, Any]], title: str = DEFAULT_TITLE, meta: dict[str, Any] | None = None,
                reports_dir: Path | None = None, out_dir: Path | None = None,
                run_dirs: dict[str, Path] | None = None) -> str:
    """The report as a string (what :func:`render_report` writes)."""
    docs = [embed.sanitise_numbers(d) if isinstance(d, dict) else {} for d in runs]
    views = view.build_all(docs)
    for v in views:
        v.evidence_href = _evidence_href(reports_dir, out_dir or Path("."), v.run_id, run_dirs)
    grid = matrix.build(views)
    rows = {k: i for i, k in enumerate(grid.clients)}
    faults = {f: i for i, f in enumerate(grid.faults)}
    run_order = sorted(views, key=lambda v: (rows.get(v.row or v.client, 0), faults.get(v.fault, 0), v.repeat_index))
    colors = compare.client_colors(grid.clients)
    charts = [compare.recovery_chart(grid, colors), compare.loss_chart(grid)]
    generated = datetime.now(UTC).isoformat(timespec="seconds")
    meta_doc = embed.sanitise_numbers(dict(meta or {}))
    data = {
        "schema": 1,
        "title": title,
        "generated_at": generated,
        "rabbit_chaos": __version__,
        "meta": meta_doc,
        "runs": [{"anchor": v.anchor, "results": v.doc} for v in views],
        "timelines": {v.anchor: v.timeline for v in views if v.timeline is not None},
        "conn_colors": series.CONN_COLORS,
    }
    lib_js, own_js = embed.asset(embed.VENDOR_JS), embed.asset(embed.OWN_JS)
    return _env().get_template("report.html.j2").render(
        title=title,
        generated=generated,
        version=__version__,
        meta=[(str(k), fmt.text(v)) for k, v in meta_doc.items()],
        views=views,
        run_order=run_order,
        filter_clients=list(dict.fromkeys(r.strategy for g in grid.groups for r in g.rows)),
        matrix=grid,
        symbol=matrix.SYMBOL,
        totals=_verdict_totals(views),
        charts=charts,
        colors=colors,
        conn_colors=series.CONN_COLORS,
        data_json=embed.json_for_script(data),
        csp=embed.content_security_policy([lib_js, own_js]),
        lib_js=Markup(lib_js),
        own_js=Markup(own_js),
        lib_css=Markup(embed.asset(embed.VENDOR_CSS)),
        own_css=Markup(embed.asset(embed.OWN_CSS)),
    )


def render_report(runs: list[dict[str, Any]], out_path: Path, title: str = DEFAULT_TITLE,
                  meta: dict[str, Any] | None = None, *, reports_dir: Path | None = None,
                  run_dirs: dict[str, Path] | None = None) -> Path:
    """Write the HTML report of ``runs`` (results.json dicts) to ``out_path`` and return it.

    ``meta``: key/value facts shown in the header (e.g. the command that produced the matrix).
    ``reports_dir``: the results store, when the runs came from one: each run then links to its
    ``<run-id>/`` directory (history.jsonl, logs) relative to the report.
    The file is written atomically, so a browser open on the old report never sees half a page.
    """
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    html = render_html(runs, title, meta, reports_dir, out_path.parent, run_dirs)
    tmp = out_path.with_name(f".{out_path.name}.{os.getpid()}.tmp")
    tmp.write_text(html, encoding="utf-8")
    tmp.replace(out_path)
    return out_path


def collect(reports_dir: Path, run_ids: Iterable[str] | None = None) -> tuple[list[dict[str, Any]], list[str]]:
    """Every ``reports_dir/<run-id>/results.json`` (oldest first), and the ones that could not be read.

    Symlinked directories (``latest``) are skipped so no run appears twice. ``run_ids`` selects
    runs by directory name or ``run_id``.
    """
    wanted = set(run_ids) if run_ids is not None else None
    docs: list[dict[str, Any]] = []
    problems: list[str] = []
    found: set[str] = set()
    for d in sorted(reports_dir.iterdir()) if reports_dir.is_dir() else []:
        path = d / "results.json"
        if d.is_symlink() or not d.is_dir() or not path.is_file():
            continue
        try:
            doc = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            problems.append(f"{d.name}/results.json: {exc}")
            continue
        if not isinstance(doc, dict):
            problems.append(f"{d.name}/results.json: not a JSON object")
            continue
        names = {d.name, str(doc.get("run_id"))}
        if wanted is not None and not names & wanted:
            continue
        found |= names
        docs.append(doc)
    if wanted is not None and (missing := wanted - found):
        raise ChaosError(f"no results.json for {', '.join(sorted(missing))} under {reports_dir}",
                         "pass run ids as listed in the reports directory")
    return docs, problems


def render_dir(reports_dir: Path, out_path: Path | None = None, *, run_ids: Iterable[str] | None = None,
               title: str = DEFAULT_TITLE, meta: dict[str, Any] | None = None) -> Path:
    """Re-render the report from a results store (default ``reports_dir/report.html``).

    Runs whose results.json cannot be read are listed in the report's header rather than
    silently left out: a missing cell should be explained.
    """
    reports_dir = Path(reports_dir)
    if not reports_dir.is_dir():
        raise ChaosError(f"{reports_dir} is not a directory", "pass the results store, e.g. `reports/`")
    docs, problems = collect(reports_dir, run_ids)
    if not docs and not problems:
        raise ChaosError(f"no runs under {reports_dir} (no */results.json)",
                         "run `rabbit-chaos run` or `rabbit-chaos matrix` first, or pass the right directory")
    info = dict(meta or {})
    info.setdefault("results store", str(reports_dir))
    for i, p in enumerate(problems, 1):
        info[f"unreadable run {i}"] = p
    out = Path(out_path) if out_path is not None else reports_dir / REPORT_NAME
    return render_report(docs, out, title, info, reports_dir=reports_dir)


#: what marks a directory as a run's (harness/results.py): a run killed before its results.json
#: still has these, and is reported as incomplete rather than skipped
_RUN_MARKS = ("history", "history.jsonl", "config")


@dataclass
class Found:
    """Runs found under some directories: results (oldest first), where each run lives,
    unreadable results.json files and run directories without one."""

    docs: list[dict[str, Any]] = field(default_factory=list)
    dirs: dict[str, Path] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)
    incomplete: list[Path] = field(default_factory=list)
    #: the matrix.json of every matrix (or matrix shard) found, in path order
    matrices: list[dict[str, Any]] = field(default_factory=list)
    #: shards missing from a merge (harness.report.merge.shard_gaps): a report without them
    #: shows a smaller matrix than was asked for
    shard_gaps: list[str] = field(default_factory=list)


def find_runs(directories: Iterable[Path]) -> Found:
    """Every run at any depth under ``directories`` (a run: a directory with results.json).

    Symlinked directories (``latest``) are not followed and a run reached twice (two of the
    directories overlap) counts once, so no run appears twice. A directory that looks like a
    run's (history/, config/, logs/) but has no results.json is listed as incomplete: a run
    killed before it finished must be explained, not silently dropped. O(files under them)."""
    out = Found()
    seen: set[Path] = set()
    stamped: list[tuple[str, dict[str, Any]]] = []
    metas: list[tuple[str, dict[str, Any]]] = []
    for top in directories:
        for root, subdirs, files in os.walk(Path(top), followlinks=False):
            here = Path(root)
            real = here.resolve()
            if real in seen:
                subdirs[:] = []
                continue
            seen.add(real)
            subdirs.sort()  # a merge must not depend on the file system's listing order
            if "matrix.json" in files:
                try:
                    meta = json.loads((here / "matrix.json").read_text(encoding="utf-8"))
                except (OSError, ValueError) as exc:
                    out.problems.append(f"{here / 'matrix.json'}: {exc}")
                else:
                    if isinstance(meta, dict):
                        metas.append((str(here), meta))
            if "results.json" in files:
                subdirs[:] = []  # a run's own subdirectories hold no runs
                path = here / "results.json"
                try:
                    doc = json.loads(path.read_text(encoding="utf-8"))
                except (OSError, ValueError) as exc:
                    out.problems.append(f"{path}: {exc}")
                    continue
                if not isinstance(doc, dict):
                    out.problems.append(f"{path}: not a JSON object")
                    continue
                run_id = str(doc.get("run_id") or here.name)
                if run_id in out.dirs:
                    continue  # the same run copied into two stores: keep the first
                out.dirs[run_id] = here
                stamped.append((str(doc.get("started_at") or ""), doc))
            elif any(m in files or m in subdirs for m in _RUN_MARKS):
                subdirs[:] = []
                out.incomplete.append(here)
    stamped.sort(key=lambda p: p[0])
    metas.sort(key=lambda p: p[0])
    out.matrices = [m for _, m in metas]
    out.docs = merge.in_matrix_order([d for _, d in stamped], out.matrices)
    out.shard_gaps = merge.shard_gaps(out.matrices)
    return out


def render_dirs(directories: list[Path], out_path: Path | None = None, *, title: str = DEFAULT_TITLE,
                meta: dict[str, Any] | None = None) -> tuple[Path, Found]:
    """Re-render one report from every run under ``directories`` (results from several machines
    merge by passing each store). Default output: ``DIR/report.html`` for one directory,
    ``./report.html`` for several. Returns the path and what was found (incomplete runs too)."""
    dirs = [Path(d) for d in directories]
    for d in dirs:
        if not d.is_dir():
            raise ChaosError(f"{d} is not a directory", "pass results stores (reports/) or matrix directories")
    found = find_runs(dirs)
    if not found.docs and not found.problems and not found.incomplete:
        raise ChaosError(f"no runs under {', '.join(map(str, dirs))} (no results.json at any depth)",
                         "run `rabbit-chaos run` or `rabbit-chaos matrix` first, or pass the right directory")
    info = dict(meta or {})
    info.setdefault("results from", ", ".join(map(str, dirs)))
    for i, p in enumerate(found.problems, 1):
        info[f"unreadable run {i}"] = p
    for i, d in enumerate(found.incomplete, 1):
        info[f"incomplete run {i}"] = f"incomplete run (no results.json): {d}"
    shards = sorted({str(m["shard"]) for m in found.matrices if m.get("shard")})
    if shards:
        info["shards"] = ", ".join(shards)
    for i, gap in enumerate(found.shard_gaps, 1):
        info[f"shard problem {i}"] = gap
    interrupted = [str(d.get("run_id")) for d in found.docs if d.get("interrupted")]
    if interrupted:
        info["interrupted runs"] = ", ".join(interrupted)
    out = Path(out_path) if out_path is not None else (dirs[0] / REPORT_NAME if len(dirs) == 1
                                                       else Path(REPORT_NAME))
    return render_report(found.docs, out, title, info, run_dirs=found.dirs), found
