"""Merging stores: shards of one matrix (``matrix --shard K/N`` on N machines) back into one.

Two things a merge needs that one store does not:

* **Order.** The report lays rows and columns out in the order runs come (harness.report.matrix:
  first appearance). Runs found on disk come in start-time order, which for shards interleaves
  machines at random. When the stores hold matrix.json files, runs are put back in the matrix's
  own cell order (client-major, then fault, then start time), so ``report shard1/ shard2/``
  draws the same table as the unsharded matrix, and ``report`` over one matrix the same as the
  report the matrix wrote itself.
* **Completeness.** A merge missing one shard's directory looks like a smaller matrix and
  would pass quietly. Each shard's matrix.json records ``shard: "K/N"`` and the digest of the
  whole matrix's cell set (``cell_set``); :func:`shard_gaps` names every shard of a matrix that
  is missing, and shards cut from different cell sets.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any


def cell_order(metas: list[dict[str, Any]]) -> tuple[dict[str, int], dict[str, int], dict[str, int]]:
    """(client rank, queue type rank, fault rank) from the matrices' own ``clients``,
    ``queue_type`` ("classic,quorum") and ``faults``, first appearance wins, metas taken in the
    order given (the caller sorts them)."""
    clients: dict[str, int] = {}
    types: dict[str, int] = {}
    faults: dict[str, int] = {}
    for meta in metas:
        for c in meta.get("clients") or []:
            clients.setdefault(str(c), len(clients))
        for t in str(meta.get("queue_type") or "").split(","):
            if t:
                types.setdefault(t, len(types))
        for f in meta.get("faults") or []:
            faults.setdefault(str(f), len(faults))
    return clients, types, faults


def _queue_type(doc: dict[str, Any]) -> str:
    spec = doc.get("spec")
    return str(spec.get("queue_type", "classic")) if isinstance(spec, dict) else "classic"


def in_matrix_order(docs: list[dict[str, Any]], metas: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """``docs`` (already in start-time order) re-ordered by the matrices' cell order (row-major:
    client, its queue type, then fault, as harness.matrix.cells); runs no matrix names keep
    their start-time order, after the others. Stable: with no matrix.json the order is
    unchanged. O(n log n)."""
    if not metas:
        return docs
    crank, trank, frank = cell_order(metas)
    far = len(crank) + len(trank) + len(frank) + 1
    indexed = list(enumerate(docs))
    indexed.sort(key=lambda p: (crank.get(str(p[1].get("client")), far), trank.get(_queue_type(p[1]), far),
                                frank.get(str(p[1].get("fault")), far), p[0]))
    return [d for _, d in indexed]


def shard_gaps(metas: list[dict[str, Any]]) -> list[str]:
    """One line per problem with the shards among ``metas``: a shard K/N of a matrix whose
    other shards are not all there ("missing shard 2/4 of cell set ab12..."), or shards of one
    cell set that disagree on N. Unsharded matrices are never a problem. Empty: complete."""
    by_set: dict[str, list[tuple[int, int]]] = defaultdict(list)
    for meta in metas:
        text = meta.get("shard")
        if not text:
            continue
        k, _, n = str(text).partition("/")
        try:
            by_set[str(meta.get("cell_set") or "?")].append((int(k), int(n)))
        except ValueError:
            continue
    out = []
    for digest, parts in sorted(by_set.items()):
        totals = sorted({n for _, n in parts})
        if len(totals) > 1:
            out.append(f"shards of cell set {digest} disagree on N ({', '.join(f'{k}/{n}' for k, n in sorted(parts))})"
                       ": every job of one matrix must be given the same N")
            continue
        total = totals[0]
        have = {k for k, _ in parts}
        out += [f"missing shard {k}/{total} of cell set {digest}: its cells are not in this report"
                for k in range(1, total + 1) if k not in have]
    return out
