"""Throughput timeline for the report's charts: publish.invoke, publish.ok (all, and those with
confirmed=true) and deliver counts per
bucket (default 100 ms) since the first event, plus the fault windows to shade and
the connection events to mark.

Complexity: O(B log n) for B buckets (bisects on the sorted time lists the index made),
O(B) space; no pass over the events.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Sequence
from typing import Any

from harness.checker.fold import Fold
from harness.checker.lifecycle import Lifecycle

CONN_KINDS = ("conn.open", "conn.lost", "conn.blocked", "conn.unblocked", "consume.cancelled")


def per_bucket(times: Sequence[float], edges: Sequence[float]) -> list[int]:
    """Counts of sorted ``times`` below each edge, minus the previous: O(B log n) for B buckets."""
    out: list[int] = []
    prev = 0
    for e in edges:
        k = bisect_left(times, e)
        out.append(k - prev)
        prev = k
    if out:
        out[-1] += len(times) - prev  # the last event sits on the last edge
    return out


def throughput(idx: Fold, life: Lifecycle, bucket_s: float) -> dict[str, Any]:
    t0 = idx.t0
    nb = int((idx.t_end - t0) / bucket_s) + 1 if idx.n else 0
    edges = [t0 + k * bucket_s for k in range(1, nb + 1)]
    return {
        "bucket_s": bucket_s,
        "publish_invoke": per_bucket(idx.invoke_t, edges),
        "publish_ok": per_bucket(idx.ok_t, edges),
        "publish_confirmed": per_bucket(idx.okc_t, edges),  # publish_ok minus these: sent, unconfirmed
        "deliver": per_bucket(idx.deliver_t, edges),
        "faults": [[name, a - t0, None if b is None else b - t0] for name, a, b in life.faults],
        "conn_events": sorted(
            ([ev["t"] - t0, ev["proc"], ev["kind"]] for k in CONN_KINDS for ev in idx.kind(k)),
            key=lambda x: x[0]),
    }
