"""History trust: can the rest of the evidence be relied on to say ``pass``?

Each check yields an ``unknown`` reason; none of them can fail a run on its own. They also bound
how much evidence may be missing, which the verdict uses to decide whether an absence-based
finding (lost, stranded, ...) is still proven:

* ``history_slack``: events the history may be missing (one per unreadable/invalid line or
  unknown-kind event: a torn line hides at most one event).
* ``queue_slack``: history_slack plus messages that may still sit in the queue (the drain's
  ``remaining`` when it timed out; infinite when it never reported ``drain.done``).

Checks: history problems; events of unknown kinds; no ``run.end`` (cut short); ``drain.done``
missing or incomplete; a process that ended unexpectedly where the harness caused it (aborted, or
stopped and then not exiting cleanly) or that never started -- a client that gave up on its own is
the ``gave_up`` rule's finding instead; a client with no ``client.start``, or (in a finished run) with no
end at all; outcomes for ids never invoked; clocks not shared across processes; nothing published.

Complexity: O(k) over the low-volume events, O(1) per bulk list; never a pass over all events.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from harness.checker.fold import Fold
from harness.checker.lifecycle import Lifecycle
from harness.checker.model import CheckOptions
from harness.checker.text import plural, rel

INF = float("inf")


@dataclass(slots=True)
class Integrity:
    reasons: list[str] = field(default_factory=list)
    history_slack: int = 0
    history_why: str = ""
    queue_slack: float = 0
    queue_why: str = ""
    clocks_shared: bool = True
    metrics: dict[str, Any] = field(default_factory=dict)


def clock_offsets(idx: Fold) -> dict[int, float]:
    """wall - t per pid, from each pid's first low-volume event and the ends of the bulk lists."""
    offsets: dict[int, float] = {}
    lists = [*idx.lists.values(), idx.invoke_ends(), [*idx.events[:1], *idx.events[-1:]]]
    for evs in lists:
        for ev in evs:
            pid = ev.get("pid")
            if pid not in offsets and isinstance(pid, int):
                offsets[pid] = float(ev["wall"]) - float(ev["t"])
    return offsets


def assess(idx: Fold, life: Lifecycle, problems: Sequence[str], published: int,
           outcome_without_invoke: int, opts: CheckOptions) -> Integrity:
    out = Integrity()
    r = out.reasons
    t0 = idx.t0

    bad = len(problems) + len(idx.unknown)
    if problems:
        r.append(f"history problems: {plural(len(problems), 'unreadable or invalid line')} "
                 f"(e.g. {problems[0]})")
    if idx.unknown:
        kinds = sorted({str(ev.get('kind')) for ev in idx.unknown})
        r.append(f"{plural(len(idx.unknown), 'event')} of unknown kind ({', '.join(kinds[:5])})")
    out.history_slack = bad
    out.history_why = f"{plural(bad, 'unreadable history line')}" if bad else ""

    if not idx.n:
        r.append("the history is empty")
    elif life.run_end_t is None:
        r.append("no run.end event: the history was cut short")

    done = idx.kind("drain.done")
    extra: float = 0
    extra_why = ""
    if not done:
        r.append("no drain.done event: the queue was not drained, so messages never delivered "
                 "cannot be told from messages still queued")
        extra, extra_why = INF, "the drain did not finish"
    elif not done[-1].get("complete"):
        remaining = done[-1].get("remaining")
        if isinstance(remaining, int) and not isinstance(remaining, bool) and remaining >= 0:
            r.append(f"drain timed out with {plural(remaining, 'message')} still queued")
            extra, extra_why = remaining, f"{plural(remaining, 'message')} the drain left in the queue"
        else:
            r.append("drain timed out (how many messages are still queued is not known)")
            extra, extra_why = INF, "the drain did not finish"
    out.queue_slack = bad + extra
    out.queue_why = " and ".join(w for w in (extra_why, out.history_why) if w)

    # a client that gave up is the gave_up rule's finding (fail); an unexpected end the harness
    # caused (it aborted the run, or stopped a client that then did not exit cleanly) or of a
    # process that never started is the harness's to explain: unknown
    for p in sorted(life.procs.values(), key=lambda p: (p.proc_exit_t or INF, p.name)):
        if p.expected is False and p.proc_exit_t is not None and p.gave_up_t is None:
            code = f"with code {p.code}" if p.code is not None else "(killed by a signal)"
            why = p.note if p.aborted or (p.exit_reason is None and p.note) else p.exit_reason
            r.append(f"{p.name} exited at {rel(p.proc_exit_t, t0)} {code}: {why or 'no client.exit written'}")
    for p in sorted(life.procs.values(), key=lambda p: p.name):
        if p.role is None or p.role in ("publisher", "consumer"):
            if p.start_t is None:
                r.append(f"{p.name} never wrote client.start (a client that did not start)")
            elif p.end_t is None and life.run_end_t is not None:
                r.append(f"{p.name} has no client.exit and no proc.exit: how it ended is unknown")

    if outcome_without_invoke:
        r.append(f"{plural(outcome_without_invoke, 'id')} got a publish outcome without a "
                 "publish.invoke (client protocol violation)")

    offsets = clock_offsets(idx)
    if offsets:
        spread = max(offsets.values()) - min(offsets.values())
        out.metrics["clock_offset_spread_s"] = spread
        if spread > opts.clock_tolerance_s:
            out.clocks_shared = False
            lo = min(offsets, key=offsets.__getitem__)
            hi = max(offsets, key=offsets.__getitem__)
            r.append(f"clocks disagree: wall - monotonic differs by {spread:.1f} s between pid {lo} and "
                     f"pid {hi}, so the processes do not share a monotonic clock and times cannot be "
                     "compared")

    if published == 0 and idx.n:
        r.append("nothing was published: nothing to judge")
    return out
