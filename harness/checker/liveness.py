"""Liveness: consumers that stall while messages wait, publishers that hang on a publish.

**Stall.** Consumption windows are the union, over consumer processes, of client.start ..
(client.exit or proc.exit, whichever first; else the drain phase, run.end or the last event),
minus every fault window extended by a grace (fault.start .. fault.stop + grace; an unhealed fault
to the end). A stall is a run of consecutive ``queue.sample`` events inside one consumption window,
each showing ``messages_ready > 0``, with no ``deliver`` event between the first and the last, that
lasts at least the stall window. When every sample of it says ``consumers == 0`` it is reported as a
lost consumer (the broker dropped the consumer while the process still ran).

**Publisher hang.** A publish.invoke whose outcome came more than the hang window later, or never
came while the publisher still ran for longer than the window (its end: client.exit / proc.exit;
without one, run.end).

Complexity: O(s log d + f log f) for s samples, d deliveries and f fault/process windows, plus
O(h) over the slow and pending invokes the publish fold kept. Never a pass over all events.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from harness.checker.findings import PROOF_HISTORY, Finding
from harness.checker.fold import Fold
from harness.checker.lifecycle import Lifecycle
from harness.checker.model import CheckOptions
from harness.checker.text import plural, rel
from harness.history import Event

INF = float("inf")


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


def consumption_windows(life: Lifecycle, idx: Fold, grace_s: float) -> list[tuple[float, float]]:
    """When consumers should be consuming: consumer lifetimes minus fault windows (+ grace)."""
    hard_end = min(t for t in (life.drain_t, life.run_end_t, idx.t_end) if t is not None)
    lives = []
    for p in life.clients("consumer"):
        if p.start_t is None:
            continue
        end = p.end_t if p.end_t is not None else hard_end
        lives.append((p.start_t, min(end, hard_end)))
    faults = merge_intervals([(a, INF if b is None else b + grace_s) for _, a, b in life.faults])
    return subtract(merge_intervals(lives), faults)


@dataclass(slots=True)
class Liveness:
    findings: list[Finding] = field(default_factory=list)
    stalls: list[dict[str, Any]] = field(default_factory=list)
    hangs: list[dict[str, Any]] = field(default_factory=list)
    windows: list[tuple[float, float]] = field(default_factory=list)


def find_stalls(samples: Sequence[Event], deliver_t: Sequence[float], windows: list[tuple[float, float]],
                window_s: float) -> list[dict[str, Any]]:
    """Runs of waiting samples with no delivery, inside one consumption window. O(s log d)."""
    starts = [a for a, _ in windows]
    stalls: list[dict[str, Any]] = []
    run: dict[str, Any] | None = None

    def close() -> None:
        if run is not None and run["end"] - run["start"] >= window_s:
            stalls.append(run)

    for s in samples:
        t = s["t"]
        w = bisect_right(starts, t) - 1
        inside = w >= 0 and t <= windows[w][1]
        ready = s.get("messages_ready") or 0
        if not inside or ready <= 0:
            close()
            run = None
            continue
        zero = (s.get("consumers") or 0) == 0
        if (run is not None and run["window"] == w
                and bisect_right(deliver_t, t) == bisect_right(deliver_t, run["end"])):
            run["end"] = t
            run["max_ready"] = max(run["max_ready"], ready)
            run["consumers_zero"] = run["consumers_zero"] and zero
            run["samples"] += 1
            continue
        close()
        run = {"start": t, "end": t, "window": w, "max_ready": ready, "consumers_zero": zero, "samples": 1}
    close()
    for st in stalls:
        st["duration_s"] = st["end"] - st["start"]
        del st["window"]
    return stalls


def check_liveness(idx: Fold, life: Lifecycle, opts: CheckOptions) -> Liveness:
    """Stalls and publisher hangs as findings (proven when the history is complete enough)."""
    out = Liveness()
    out.windows = consumption_windows(life, idx, opts.fault_grace_s)
    out.stalls = find_stalls(idx.kind("queue.sample"), idx.deliver_t, out.windows, opts.stall_window_s)
    t0 = idx.t0
    for st in out.stalls:
        running = ", ".join(p.name for p in life.clients("consumer")
                            if p.start_t is not None and p.start_t <= st["start"]
                            and (p.end_t is None or p.end_t >= st["end"])) or "a consumer"
        span = f"{st['duration_s']:.1f} s from {rel(st['start'], t0)} to {rel(st['end'], t0)}"
        if st["consumers_zero"]:
            text = (f"consumer lost: the broker reported 0 consumers for {span} while {running} was "
                    f"running and up to {st['max_ready']} messages waited")
            rule = "consumer_lost"
        else:
            text = (f"stall: nothing delivered for {span} while up to {st['max_ready']} messages were "
                    f"ready ({running} running)")
            rule = "stall"
        out.findings.append(Finding(rule, 1, text, PROOF_HISTORY, timed=True))
        st["kind"] = rule

    # publisher hangs
    hangs: list[dict[str, Any]] = []
    for inv, outcome in idx.slow:
        hangs.append({"proc": inv["proc"], "id": inv["id"], "invoke_t": inv["t"],
                      "waited_s": outcome["t"] - inv["t"], "outcome": outcome["kind"]})
    for i, inv in idx.pending.items():
        p = life.procs.get(inv["proc"])
        end = p.end_t if p is not None else None
        if end is None:
            end = life.run_end_t
        if end is not None and end - inv["t"] > opts.hang_window_s:
            hangs.append({"proc": inv["proc"], "id": i, "invoke_t": inv["t"],
                          "waited_s": end - inv["t"], "outcome": None})
    out.hangs = hangs
    by_proc: dict[str, list[dict[str, Any]]] = {}
    for h in hangs:
        by_proc.setdefault(h["proc"], []).append(h)
    for proc, hs in sorted(by_proc.items()):
        worst = max(hs, key=lambda h: h["waited_s"])
        how = "got its outcome only after" if worst["outcome"] else "had no outcome after"
        out.findings.append(Finding(
            "publisher_hang", len(hs),
            f"publisher hang: {proc} waited longer than {opts.hang_window_s:g} s for the outcome of "
            f"{plural(len(hs), 'publish', 'publishes')} while it ran (longest: {worst['id']} invoked at "
            f"{rel(worst['invoke_t'], t0)} {how} {worst['waited_s']:.1f} s)",
            PROOF_HISTORY, timed=True))
    return out
