"""Liveness on the client's own clocks: the facts the rules stalled, consumer lost, busy and blocked read.

**Waits.** Consumption windows are the union, over consumer processes, of client.start ..
(client.exit or proc.exit, whichever first; else the drain phase, run.end or the last event),
minus every fault window extended by a grace (the harness began acting .. the effect ended +
``fault_grace_s``; an unhealed fault to the end). A *wait* is a run of consecutive ``queue.sample``
events inside one consumption window, each showing ``messages_ready > 0``, with no ``deliver``
between the first and the last. Only a wait longer than ``max_stall_s`` can be a finding:

* *consumer lost*: its samples say ``consumers == 0`` for longer than ``max_stall_s`` in a row
  (the broker lists no consumer while the consumer process runs);
* otherwise the client's own deliveries decide. While a consumer under test holds a delivery it
  has not acked (its ``deliver`` without its ``ack``; a ``conn.lost`` or ``channel.closed`` of that
  consumer drops what it held, as the broker requeues it) it is *busy*: working, never stalled. The
  wait is split where the last held delivery was acked: the part before is a busy period
  (``metrics.busy``), the part after, from the first sample in it, is *stalled* when it lasts
  longer than ``max_stall_s``. A consumer that never writes an ``ack`` (auto-ack) never counts as
  holding anything.
* *busy too long* (only with ``max_busy_s``): one delivery held unacked longer than that.

**Blocked publishes.** A ``publish.invoke`` whose outcome came later than its deadline (or never
came while the publisher ran that long) and whose publisher wrote no notice (``conn.blocked``,
``conn.lost``, ``channel.closed``, ``publish.fail``/``publish.info`` of any id) between the invoke
and the deadline. Deadline: ``max_block_s``, plus the publisher's heartbeat window upper bound +
1 s (``client.start`` ``heartbeat_window_s``) when a silent fault aimed at publishers was in effect
during the first ``max_block_s`` of the wait: then only its heartbeat can tell it anything. The
wait ends at the harness's ``proc.signal`` to the publisher, if that came first; nothing the
publisher writes after it is a notice (it reacts to being stopped).

Complexity: waits O(s log d + f log f) for s samples, d deliveries, f fault/process windows;
blocked O(h log k) over the h slow or unanswered invokes the fold kept and k notices. The
delivery/ack pairing is one pass over the history, paid only when a wait is longer than
``max_stall_s`` or ``max_busy_s`` is set (a healthy run never pays it).
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from harness.checker.effects import FaultWindow
from harness.checker.fold import Fold
from harness.checker.lifecycle import Lifecycle
from harness.history import Event

if TYPE_CHECKING:
    from harness.checker.rules import RuleContext

INF = float("inf")
#: a consumer's events after which it holds nothing (the broker requeues what it had unacked)
DROPS_HELD = ("conn.lost", "channel.closed")
#: what tells a publisher something went wrong, besides the outcome of the publish itself
BLOCK_NOTICES = ("conn.blocked", "conn.lost", "channel.closed")
#: slack added to a heartbeat window's upper bound (timers run late on a loaded machine)
HEARTBEAT_SLACK_S = 1.0


# ---- intervals ---------------------------------------------------------------------------------
def merge_intervals(iv: list[tuple[float, float]]) -> list[tuple[float, float]]:
    """Union of intervals, sorted, disjoint. O(k log k)."""
    out: list[tuple[float, float]] = []
    for a, b in sorted(iv):
        if b <= a:
            continue
        if out and a <= out[-1][1]:
            if b > out[-1][1]:
                out[-1] = (out[-1][0], b)
        else:
            out.append((a, b))
    return out


def subtract(base: list[tuple[float, float]], cut: list[tuple[float, float]]) -> list[tuple[float, float]]:
    """base minus cut, both sorted disjoint. O(k)."""
    out: list[tuple[float, float]] = []
    j = 0
    for a, b in base:
        cur = a
        while j < len(cut) and cut[j][1] <= cur:
            j += 1
        k = j
        while k < len(cut) and cut[k][0] < b:
            ca, cb = cut[k]
            if ca > cur:
                out.append((cur, ca))
            cur = max(cur, cb)
            if cur >= b:
                break
            k += 1
        if cur < b:
            out.append((cur, b))
    return out


def hard_end(life: Lifecycle, idx: Fold) -> float:
    """When the clients are done at the latest: the drain phase, else run.end, else the last event."""
    return min(t for t in (life.drain_t, life.run_end_t, idx.t_end) if t is not None)


def consumption_windows(life: Lifecycle, idx: Fold, faults: Sequence[FaultWindow],
                        grace_s: float) -> list[tuple[float, float]]:
    """When consumers should be consuming: consumer lifetimes minus fault windows (+ grace)."""
    end_all = hard_end(life, idx)
    lives = []
    for p in life.clients("consumer"):
        if p.start_t is None:
            continue
        end = p.end_t if p.end_t is not None else end_all
        lives.append((p.start_t, min(end, end_all)))
    cut = []
    for w in faults:
        ends = [t for t in (w.heal_t, w.effect_end_t) if t is not None]
        cut.append((min(w.started_t, w.took_effect_t), max(ends) + grace_s if ends else INF))
    return subtract(merge_intervals(lives), merge_intervals(cut))


# ---- waits -------------------------------------------------------------------------------------
@dataclass(slots=True)
class Wait:
    """Consecutive samples inside one consumption window: messages ready, nothing delivered."""

    window: int
    times: list[float] = field(default_factory=list)
    ready: list[int] = field(default_factory=list)
    zero: list[bool] = field(default_factory=list)  # the sample said consumers == 0

    @property
    def start(self) -> float:
        return self.times[0]

    @property
    def end(self) -> float:
        return self.times[-1]


def find_waits(samples: Sequence[Event], deliver_t: Sequence[float],
               windows: list[tuple[float, float]]) -> list[Wait]:
    """Every wait (module docstring), however short. O(s log d)."""
    starts = [a for a, _ in windows]
    waits: list[Wait] = []
    cur: Wait | None = None
    for s in samples:
        t = s["t"]
        w = bisect_right(starts, t) - 1
        ready = s.get("messages_ready") or 0
        if w < 0 or t > windows[w][1] or ready <= 0:
            cur = None
            continue
        if cur is None or cur.window != w or bisect_right(deliver_t, t) != bisect_right(deliver_t, cur.end):
            cur = Wait(w)
            waits.append(cur)
        cur.times.append(t)
        cur.ready.append(ready)
        cur.zero.append((s.get("consumers") or 0) == 0)
    return waits


def longest_zero_run(w: Wait) -> tuple[int, int] | None:
    """(first, last) sample indices of the longest stretch of ``consumers == 0`` samples."""
    best: tuple[int, int] | None = None
    i = 0
    n = len(w.times)
    while i < n:
        if not w.zero[i]:
            i += 1
            continue
        j = i
        while j + 1 < n and w.zero[j + 1]:
            j += 1
        if best is None or w.times[j] - w.times[i] > w.times[best[1]] - w.times[best[0]]:
            best = (i, j)
        i = j + 1
    return best


# ---- what the consumers held -------------------------------------------------------------------
@dataclass(slots=True)
class Holdings:
    """When the consumers under test held unacked deliveries, from their own deliver/ack events."""

    #: union over acking consumers of the periods they held >= 1 delivery (only those touching a wait)
    busy: list[tuple[float, float]] = field(default_factory=list)
    #: (consumer, id, delivered at, held until) for deliveries held longer than max_busy_s
    long_held: list[tuple[str, str, float, float]] = field(default_factory=list)
    #: consumers that never acked anything (auto-ack: never busy)
    no_ack: list[str] = field(default_factory=list)

    def idle_from(self, t: float) -> float:
        """When nothing was held any more, for a time ``t`` in a wait (no delivery can start a
        busy period inside one): the end of the busy period covering ``t``, else ``t``."""
        k = bisect_right(self.busy, (t, INF)) - 1
        if k >= 0 and self.busy[k][0] <= t < self.busy[k][1]:
            return self.busy[k][1]
        return t


def holdings(idx: Fold, life: Lifecycle, near: list[tuple[float, float]], max_busy_s: float | None) -> Holdings:
    """Pair each consumer's deliveries with its acks, in one pass over the history.

    A held period is kept only if it touches one of ``near`` (the long waits, sorted, disjoint),
    so memory stays small however many deliveries the run had. O(n) time."""
    near_a = [a for a, _ in near]
    near_b = [b for _, b in near]
    held: dict[str, dict[str, float]] = {}  # consumer -> id -> delivered at
    began: dict[str, float] = {}  # consumer -> when it began holding (its current held period)
    periods: dict[str, list[tuple[float, float]]] = {}
    acking: set[str] = set()
    long_held: list[tuple[str, str, float, float]] = []

    limit = INF if max_busy_s is None else max_busy_s

    def release(p: str, ids: dict[str, float], t: float) -> None:
        long_held.extend((p, i, d, t) for i, d in ids.items() if t - d > limit)

    def close(p: str, t: float) -> None:
        s = began.pop(p)
        j = bisect_left(near_b, s)
        if j < len(near_a) and near_a[j] <= t:
            periods.setdefault(p, []).append((s, t))

    for ev in idx.events:
        k = ev["kind"]
        if k == "deliver":
            p = ev["proc"]
            ids = held.get(p)
            if ids is None:
                ids = held[p] = {}
            if not ids:
                began[p] = ev["t"]
            ids.setdefault(ev["id"], ev["t"])
        elif k == "ack":
            p = ev["proc"]
            acking.add(p)
            ids = held.get(p)
            if ids:
                d = ids.pop(ev["id"], None)
                if d is not None:
                    t = ev["t"]
                    if t - d > limit:
                        long_held.append((p, ev["id"], d, t))
                    if not ids:
                        close(p, t)
        elif k in DROPS_HELD and ev["role"] == "consumer":
            p = ev["proc"]
            ids = held.get(p)
            if ids:
                release(p, ids, ev["t"])
                ids.clear()
                close(p, ev["t"])
    end_all = hard_end(life, idx)
    for p, ids in held.items():
        if ids:
            proc = life.procs.get(p)
            end = proc.end_t if proc is not None and proc.end_t is not None else end_all
            if proc is not None and proc.signal_t is not None:
                end = min(end, proc.signal_t)
            release(p, ids, end)
            close(p, end)
    no_ack = sorted(set(held) - acking)
    busy = merge_intervals([iv for p, ivs in periods.items() if p in acking for iv in ivs])
    long_held = sorted((h for h in long_held if h[0] in acking), key=lambda h: (h[2], h[0], h[1]))
    return Holdings(busy, long_held, no_ack)


# ---- the waits, judged ---------------------------------------------------------------------------
@dataclass(slots=True)
class Waits:
    """The liveness facts the rules stalled, consumer lost and busy report."""

    windows: list[tuple[float, float]]
    stalls: list[dict[str, Any]] = field(default_factory=list)  # kind "stall" or "consumer_lost"
    busy: list[dict[str, Any]] = field(default_factory=list)  # waits excused: the client was working
    long_held: list[tuple[str, str, float, float]] = field(default_factory=list)
    no_ack: list[str] = field(default_factory=list)


def _span(w: Wait, i: int, j: int, kind: str) -> dict[str, Any]:
    return {"start": w.times[i], "end": w.times[j], "duration_s": w.times[j] - w.times[i],
            "max_ready": max(w.ready[i:j + 1]), "consumers_zero": all(w.zero[i:j + 1]),
            "samples": j - i + 1, "kind": kind}


def waits(ctx: RuleContext) -> Waits:
    """Every long wait classified (module docstring); computed once per check (``ctx.memo``)."""
    idx, life, opts = ctx.idx, ctx.life, ctx.opts
    out = Waits(consumption_windows(life, idx, ctx.faults, opts.fault_grace_s))
    limit = opts.max_stall_s
    long_waits = [w for w in find_waits(idx.kind("queue.sample"), idx.deliver_t, out.windows)
                  if w.end - w.start > limit]
    candidates: list[Wait] = []
    for w in long_waits:
        z = longest_zero_run(w)
        if z is not None and w.times[z[1]] - w.times[z[0]] > limit:
            out.stalls.append(_span(w, z[0], z[1], "consumer_lost"))
        else:
            candidates.append(w)
    if candidates or opts.max_busy_s is not None:
        held = holdings(idx, life, [(w.start, w.end) for w in candidates], opts.max_busy_s)
        out.long_held, out.no_ack = held.long_held, held.no_ack
        for w in candidates:
            idle = held.idle_from(w.start)
            first = bisect_left(w.times, idle)
            if idle > w.start:
                out.busy.append({"start": w.start, "end": min(idle, w.end), "duration_s": min(idle, w.end) - w.start,
                                 "max_ready": max(w.ready[:max(first, 1)]), "samples": max(first, 1)})
            last = len(w.times) - 1
            if first <= last and w.times[last] - w.times[first] > limit:
                out.stalls.append(_span(w, first, last, "stall"))
    out.stalls.sort(key=lambda s: s["start"])
    t0 = idx.t0
    ctx.metrics["stalls"] = [{**s, "start_s": s["start"] - t0, "end_s": s["end"] - t0} for s in out.stalls]
    ctx.metrics["busy"] = [{**b, "start_s": b["start"] - t0, "end_s": b["end"] - t0} for b in out.busy]
    ctx.metrics["consumption_windows_s"] = [[a - t0, b - t0] for a, b in out.windows]
    ctx.metrics["consumers_never_acked"] = out.no_ack  # (auto-ack: never busy; known when a wait was judged)
    return out


def running_consumers(life: Lifecycle, a: float, b: float) -> str:
    """The consumer processes that ran from ``a`` to ``b``, for a reason sentence."""
    return ", ".join(p.name for p in life.clients("consumer")
                     if p.start_t is not None and p.start_t <= a and (p.end_t is None or p.end_t >= b)) or "a consumer"


# ---- blocked publishes ---------------------------------------------------------------------------
@dataclass(slots=True)
class Blocked:
    """Publishes that waited past their deadline: ``blocked`` (told nothing) and ``told``."""

    blocked: list[dict[str, Any]] = field(default_factory=list)
    told: list[dict[str, Any]] = field(default_factory=list)


def heartbeat_upper(idx: Fold) -> dict[str, float]:
    """Per process, the latest time its heartbeat closes a silent connection (``client.start``
    ``heartbeat_window_s`` [lo, hi]: hi, or lo + 1 s when the library gives no upper bound)."""
    out: dict[str, float] = {}
    for ev in idx.kind("client.start"):
        w = ev.get("heartbeat_window_s")
        if ev["proc"] in out or not isinstance(w, list | tuple) or len(w) != 2:
            continue
        lo, hi = w
        if isinstance(hi, int | float):
            out[ev["proc"]] = float(hi)
        elif isinstance(lo, int | float):
            out[ev["proc"]] = float(lo) + 1.0
    return out


def blocked_publishes(ctx: RuleContext) -> Blocked:
    """Classify every publish that waited past ``max_block_s`` (module docstring); computed once."""
    idx, life, opts = ctx.idx, ctx.life, ctx.opts
    out = Blocked()
    waiting: list[tuple[Event, float, Event | None]] = [(iv, oc["t"], oc) for iv, oc in idx.slow]
    for inv in idx.pending.values():
        p = life.procs.get(inv["proc"])
        end = p.end_t if p is not None and p.end_t is not None else life.run_end_t
        if end is not None:
            waiting.append((inv, end, None))
    if waiting:
        notices: dict[str, list[tuple[float, str]]] = {}
        for ev in [*(e for k in BLOCK_NOTICES for e in idx.kind(k)), *idx.notices]:
            if ev["role"] == "publisher":
                notices.setdefault(ev["proc"], []).append((ev["t"], ev["kind"]))
        for lst in notices.values():
            lst.sort()
        silent = [(w.took_effect_t, w.effect_end_t) for w in ctx.faults if w.silent and w.targets("publisher")]
        upper = heartbeat_upper(idx) if silent else {}
        for inv, end, outcome in sorted(waiting, key=lambda x: (x[0]["t"], x[0]["proc"], x[0]["id"])):
            row = _judge_wait(inv, end, outcome, life, opts.max_block_s, silent, upper, notices)
            if row is not None:
                (out.told if row.get("notice") else out.blocked).append(row)
    t0 = idx.t0
    ctx.metrics["publisher_hangs"] = [{**h, "invoke_s": h["invoke_t"] - t0} for h in out.blocked]
    ctx.metrics["slow_publishes"] = [{**h, "invoke_s": h["invoke_t"] - t0} for h in out.told[:50]]
    ctx.metrics["slow_publishes_total"] = len(out.told)
    return out


def _judge_wait(inv: Event, end: float, outcome: Event | None, life: Lifecycle, max_block_s: float,
                silent: list[tuple[float, float | None]], upper: dict[str, float],
                notices: dict[str, list[tuple[float, str]]]) -> dict[str, Any] | None:
    """One waiting publish: None when it did not outwait its deadline, else its row (with the
    notice that told the publisher, if one did)."""
    proc, t = inv["proc"], inv["t"]
    p = life.procs.get(proc)
    stop = p.signal_t if p is not None and p.signal_t is not None and p.signal_t >= t else INF
    end = min(end, stop)
    deadline = max_block_s
    hb = upper.get(proc)
    extended = hb is not None and any(a < t + max_block_s and (b is None or b > t) for a, b in silent)
    if extended and hb is not None:
        deadline += hb + HEARTBEAT_SLACK_S
    waited = end - t
    if waited <= deadline:
        return None
    row: dict[str, Any] = {"proc": proc, "id": inv["id"], "invoke_t": t, "waited_s": waited,
                           "outcome": None if outcome is None or outcome["t"] > stop else outcome["kind"],
                           "deadline_s": deadline, "heartbeat_extended": extended}
    lst = notices.get(proc, [])
    k = bisect_left(lst, (t, ""))
    if k < len(lst) and lst[k][0] <= min(t + deadline, stop):
        row["notice"] = lst[k][1]
        row["notice_after_s"] = lst[k][0] - t
    return row
