"""no overlap: no fault was in effect while the clients had traffic, so the run tested nothing.

A fault takes effect when its ``fault.effect`` action=start says so (else at its ``fault.start``)
and ends at its heal effect (else ``fault.stop``; :mod:`harness.checker.effects`). On a loaded
machine the harness's tool can take longer than the fault's hold: a 3 s memory alarm whose
``rabbitmqctl`` call took 3.7 s took effect only at its heal, after the publishers had finished.
Such a run must not pass as if the client had survived the fault.

Contract. Client traffic runs from the first ``publish.invoke`` to the last publish outcome
(ok/fail/info) or delivery. Fires (``effect "unknown"``) when there was at least one fault and
traffic, and no fault's effect window [took effect, effect end] overlaps it (an unhealed fault
lasts to the end of the run). A fault with no ``fault.effect`` at all is measured from its
``fault.start``. A client that noticed the fault itself (a notice of its own, before the harness
began stopping it, between the fault's ``fault.start`` and its effect end) met it, whatever the
effect's timestamp says: a force-close's effect is written when ``rabbitmqctl`` returns, a few ms
after the clients already saw their connections close, and a publisher that died of it ends the
traffic before that timestamp. Proof: positive (the events that are there); compares the nemesis's times with
the clients', so it needs their clocks to agree. Cost: O(w) for w fault windows.
"""

from __future__ import annotations

from harness.checker.findings import PROOF_POSITIVE, Finding
from harness.checker.rules import RuleContext, rule
from harness.checker.text import rel
from harness.checker.timing import noticed_between

HEADLINE = "no overlap"


def traffic_span(ctx: RuleContext) -> tuple[float, float] | None:
    """(first publish.invoke, last publish outcome or delivery); None when nothing was published."""
    idx = ctx.idx
    if not idx.invoke_t:
        return None
    ends = [idx.invoke_t[-1]]
    for ts in (idx.ok_t, idx.deliver_t):
        if ts:
            ends.append(ts[-1])
    if idx.notices:
        ends.append(idx.notices[-1]["t"])
    return idx.invoke_t[0], max(ends)


@rule("no_overlap", order=200)
def no_overlap(ctx: RuleContext) -> list[Finding]:
    """No fault's effect window overlapped client traffic (unknown, not pass)."""
    windows = ctx.faults
    span = traffic_span(ctx) if windows else None
    if span is None:
        return []
    a, b = span
    for w in windows:
        start = w.took_effect_t
        end = w.effect_end_t
        if start <= b and (end is None or max(start, end) >= a):
            return []
        until = float("inf") if end is None else max(start, end)
        if any(noticed_between(ctx.idx, ctx.life, p.name, w.started_t, until) is not None
               for p in ctx.life.clients()):
            return []  # a client met the fault before its effect was recorded
    t0 = ctx.idx.t0
    parts = []
    for w in windows:
        if w.observed:
            parts.append(f"{w.name} took effect at {rel(w.took_effect_t, t0)} (the harness started it at "
                         f"{rel(w.started_t, t0)})")
        else:
            parts.append(f"{w.name} started at {rel(w.started_t, t0)} (no effect recorded)")
    return [Finding("no_overlap", 1,
                    f"no overlap: the fault never overlapped client traffic: {'; '.join(parts)}, "
                    f"traffic ran {rel(a, t0)}–{rel(b, t0)}",
                    proof=PROOF_POSITIVE, timed=True, effect="unknown", headline=HEADLINE)]
