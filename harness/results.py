"""The results store: reports/<run-id>/{results.json, history.jsonl, history/, logs/, config/}
and ``reports/latest`` pointing at the newest run. Everything else is derived from these."""

from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path
from typing import Any


def run_dir(reports_dir: Path, run_id: str) -> Path:
    d = reports_dir / run_id
    d.mkdir(parents=True, exist_ok=False)
    return d


def as_dict(result: Any) -> dict[str, Any]:
    if isinstance(result, dict):
        return result
    if hasattr(result, "model_dump"):
        return result.model_dump()
    return result.to_dict()


def write(run_dir: Path, doc: dict[str, Any], reports_dir: Path) -> None:
    tmp = run_dir / "results.json.tmp"
    tmp.write_text(json.dumps(doc, indent=2, default=str))
    tmp.replace(run_dir / "results.json")
    point_latest(reports_dir, run_dir)


def point_latest(reports_dir: Path, target: Path) -> None:
    link = reports_dir / "latest"
    tmp = reports_dir / f".latest.{os.getpid()}"
    with contextlib.suppress(FileNotFoundError):
        tmp.unlink()
    tmp.symlink_to(target.name)
    tmp.replace(link)


def load(run_dir: Path) -> dict[str, Any]:
    return json.loads((run_dir / "results.json").read_text())


def all_runs(reports_dir: Path) -> list[dict[str, Any]]:
    out = []
    for p in sorted(reports_dir.glob("*/results.json")):
        if p.parent.is_symlink():  # reports/latest is the newest run again
            continue
        with contextlib.suppress(OSError, ValueError):
            out.append(json.loads(p.read_text()))
    return out
