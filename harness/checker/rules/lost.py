"""lost: acknowledged, never delivered, never drained; and why, when the history says.

Contract. An id the application was told was published (any ``publish.ok``) that no client under
test was delivered and the drain did not find (``queue.judge``: acknowledged - delivered -
drained). Split by what the application was told: ``lost_confirmed`` (some ``publish.ok`` had
``confirmed: true``: the broker promised it) and ``lost_unconfirmed`` (only unconfirmed oks).
A lost id told ok while its queue did not exist -- between ``fault.effect`` "queue deleted" and
"queue declared" (else a queue-delete fault's ``fault.start`` .. ``fault.stop``) -- was confirmed
but routed nowhere: the broker confirms an unroutable message unless it was published with
``mandatory``. Those are reported apart, with the fix (``counts.lost_unroutable``; still lost,
still counted in ``lost_confirmed``/``lost_unconfirmed`` by their flag). Proof: an absence, so the
drain must have emptied the queue (``PROOF_QUEUE``).

Cost: the queue judge's O(m) set arithmetic; the cause split only when a queue was absent: the
lost set again (O(m)) and the ``publish.ok`` events inside those windows (bisect + their length).
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from dataclasses import replace

from harness.checker.effects import queue_absent_windows
from harness.checker.findings import PROOF_QUEUE, Finding
from harness.checker.fold import Fold
from harness.checker.queue import lost_finding, lost_ids
from harness.checker.rules import RuleContext, rule
from harness.checker.text import eg, ordered_examples, plural

CATEGORIES = ("lost_confirmed", "lost_unconfirmed")


def told_while_absent(idx: Fold, ids: set[str], absent: list[tuple[float, float | None]]) -> set[str]:
    """The ids of ``ids`` with a ``publish.ok`` inside one of the ``absent`` windows."""
    out: set[str] = set()
    evs = idx.events
    for a, b in absent:
        lo = bisect_left(evs, a, key=lambda e: e["t"])
        hi = len(evs) if b is None else bisect_right(evs, b, key=lambda e: e["t"])
        for k in range(lo, hi):
            ev = evs[k]
            if ev["kind"] == "publish.ok" and ev["id"] in ids:
                out.add(ev["id"])
    return out


@rule("lost", order=10)
def lost(ctx: RuleContext) -> list[Finding]:
    """Lost messages, split by what the application was told and, when the queue was absent, by cause."""
    ctx.counts.setdefault("lost_unroutable", 0)
    found = [replace(f, headline="lost") for f in ctx.queue.findings if f.rule in CATEGORIES]
    if not found:
        return []
    absent = queue_absent_windows(ctx.idx)
    if not absent:
        return found
    idx = ctx.idx
    lost_all = lost_ids(idx)
    unroutable = told_while_absent(idx, lost_all, absent)
    if not unroutable:
        return found
    n = len(unroutable)
    ctx.counts["lost_unroutable"] = n
    ctx.examples["lost_unroutable"] = ordered_examples(unroutable, idx.first_invoke, ctx.opts.max_listed)
    out: list[Finding] = []
    rest = lost_all - unroutable
    for category in CATEGORIES:
        ids = {i for i in rest if idx.confirmed(i) == (category == "lost_confirmed")}
        if ids:
            out.append(lost_finding(category, len(ids), ordered_examples(ids, idx.first_invoke, ctx.opts.max_examples)))
    ex = ordered_examples(unroutable, idx.first_invoke, ctx.opts.max_examples)
    out.append(Finding(
        "lost_unroutable", n,
        f"confirmed but unroutable: {plural(n, 'message was', 'messages were')} confirmed while queue-delete had "
        "removed the queue (the broker confirms an unroutable message without mandatory): publish with "
        f"mandatory=True and handle basic.return{eg(ex, n)}",
        PROOF_QUEUE, headline="lost"))
    return out
