"""A finished matrix's time (``rabbit-chaos bench matrix reports/<matrix-id>``).

The figure itself (:func:`harness.run.parallel.matrix_timing`) stays with the matrix: every
matrix records it in matrix.json. This module only reads a matrix directory back and fills in
what an older matrix did not record, so the CLI command stays a thin door.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from harness.errors import ChaosError


def matrix_bench(path: Path) -> dict[str, Any]:
    """wall, jobs, the sum of the cells' fault timelines and wall ÷ timelines of the matrix in
    ``path``. A matrix from before matrix.json recorded its wall time is counted as serial (wall
    = the sum of its cells' walls) and marked ``estimated``. A directory that is no finished
    matrix is a ChaosError naming the fix."""
    from harness.run.parallel import matrix_timing

    try:
        meta = json.loads((path / "matrix.json").read_text())
        docs = [json.loads((path / run / "results.json").read_text()) for run in meta.get("runs", [])]
    except (OSError, ValueError) as exc:
        raise ChaosError(f"{path} is not a finished matrix directory ({exc})",
                         "give reports/<matrix-id> (it holds matrix.json), "
                         "or run `rabbit-chaos matrix` first") from None
    recorded = meta.get("timing") or {}
    wall = recorded.get("wall_s")
    timing = matrix_timing(docs, float(wall) if wall else sum(float((d.get("timing") or {}).get("wall_s") or 0)
                                                               for d in docs), int(recorded.get("jobs") or 1))
    return {"bench": "matrix", "matrix": meta.get("matrix_id"), **timing, "estimated": not wall}
