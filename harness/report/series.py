"""The throughput timeline of one run, made safe and small enough to embed.

The checker (``harness.checker.timeline.throughput``) stores it under ``metrics["throughput"]``:
``bucket_s``, per-bucket ``publish_invoke`` / ``publish_ok`` (every ok) / ``publish_confirmed`` (the
oks with confirmed=true) / ``deliver`` counts, ``faults`` as
``[name, start_rel, stop_rel|None]`` and ``conn_events`` as ``[t_rel, proc, kind]``. Runs from an
older harness, an aborted run or a hand-edited file may lack it or hold something else, so every
field is checked here and the chart is simply left out (with a sentence saying why) rather than
the page failing. Long runs are re-bucketed to at most :data:`MAX_POINTS` points so a one-hour
soak does not make a 50 MB page.

"confirmed" means the broker confirmed the publish: an ok without a confirm (a publisher without
publisher confirms: the call returned) is drawn as its own "sent, unconfirmed" series, never as
confirmed. A run recorded before the checker split them has only ``publish_ok``: the chart then
shows it as "ok (confirmed or not)", since which it was cannot be told any more.
"""

from __future__ import annotations

import math
from typing import Any

from harness.report.fmt import num

#: metrics keys the timeline may live under (the first is what the checker writes today)
KEYS = ("throughput", "timeline")
#: most points per series in the page; beyond it buckets are merged
MAX_POINTS = 2000
#: most connection events kept for the chart and the list (the rest are counted)
MAX_CONN_EVENTS = 500
#: marker colour per connection event kind (the chart and its legend share these)
CONN_COLORS = {"conn.lost": "#C0392B", "conn.open": "#1E8449", "conn.blocked": "#B9770E",
               "conn.unblocked": "#2874A6", "consume.cancelled": "#7D3C98"}
OTHER_CONN_COLOR = "#555555"


def _counts(xs: Any) -> list[float] | None:
    """Non-negative counts (ints stay ints: they are most of the page's bytes)."""
    if not isinstance(xs, list):
        return None
    out: list[float] = []
    for x in xs:
        f = num(x)
        out.append(0 if f is None or f < 0 else int(f) if f.is_integer() else f)
    return out


def _merge(xs: list[float], factor: int) -> list[float]:
    return [sum(xs[i:i + factor]) for i in range(0, len(xs), factor)]


def _faults(raw: Any) -> list[dict[str, Any]]:
    out = []
    for f in raw if isinstance(raw, list) else []:
        if isinstance(f, list | tuple) and len(f) >= 2 and num(f[1]) is not None:
            stop = num(f[2]) if len(f) > 2 else None
            out.append({"name": str(f[0]), "start": num(f[1]), "stop": stop})
    return out


def _conn(raw: Any) -> tuple[list[dict[str, Any]], int]:
    out = []
    for e in raw if isinstance(raw, list) else []:
        if isinstance(e, list | tuple) and len(e) >= 3 and num(e[0]) is not None:
            out.append({"t": num(e[0]), "proc": str(e[1]), "kind": str(e[2])})
    return out[:MAX_CONN_EVENTS], max(0, len(out) - MAX_CONN_EVENTS)


def find(metrics: Any) -> Any:
    """The raw timeline object in a run's metrics, or None."""
    if not isinstance(metrics, dict):
        return None
    for k in KEYS:
        if isinstance(metrics.get(k), dict):
            return metrics[k]
    return None


def normalise(raw: Any) -> tuple[dict[str, Any] | None, str]:
    """(chart data, "") or (None, why there is no chart).

    Chart data: ``bucket_s``, ``t`` (bucket start, seconds since the first event), ``published``,
    ``confirmed`` (oks with a broker confirm), ``unconfirmed`` (oks without one), ``delivered``
    (counts per bucket, equal lengths; ``confirmed``/``unconfirmed`` are None for a run recorded
    before they were split, which has ``acknowledged``, every ok, instead), ``faults``
    (``{name, start, stop}``, stop None when never healed), ``conn`` (``{t, proc, kind}``),
    ``conn_dropped`` (events beyond the cap), ``end`` (seconds covered).
    """
    if not isinstance(raw, dict):
        return None, "no throughput timeline was recorded for this run"
    bucket = num(raw.get("bucket_s"))
    if bucket is None or bucket <= 0:
        return None, "the throughput timeline has no valid bucket size"
    series = [_counts(raw.get(k)) for k in ("publish_invoke", "publish_ok", "deliver", "publish_confirmed")]
    if all(s is None for s in series[:3]):
        return None, "the throughput timeline holds no series"
    split = series[3] is not None
    n = max(len(s) for s in series if s is not None)
    if n == 0:
        return None, "the throughput timeline is empty (no publish or delivery happened)"
    pub, ok, dl, conf = ((s or []) + [0] * (n - len(s or [])) for s in series)
    factor = math.ceil(n / MAX_POINTS)
    if factor > 1:
        pub, ok, dl, conf = (_merge(xs, factor) for xs in (pub, ok, dl, conf))
        bucket *= factor
    conn, dropped = _conn(raw.get("conn_events"))
    oks: dict[str, Any] = (
        {"confirmed": conf, "unconfirmed": [max(0, a - c) for a, c in zip(ok, conf, strict=True)]} if split
        else {"confirmed": None, "unconfirmed": None, "acknowledged": ok})
    return {
        "bucket_s": bucket,
        "t": [round(i * bucket, 6) for i in range(len(pub))],
        "published": pub,
        **oks,
        "delivered": dl,
        "faults": _faults(raw.get("faults")),
        "conn": conn,
        "conn_dropped": dropped,
        "end": round(len(pub) * bucket, 6),
    }, ""
