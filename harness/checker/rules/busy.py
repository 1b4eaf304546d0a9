"""busy too long: one delivery held unacked longer than the scenario allows (``max_busy_s``).

Contract. Only when ``max_busy_s`` is set (default None: work may be slow). A consumer under test
that wrote ``deliver`` for an id and no ``ack`` for it within ``max_busy_s`` -- the hold ends at
its ack, at that consumer's ``conn.lost``/``channel.closed`` (the broker takes the message back),
or when the process stopped (its ``proc.signal``, else its end). Holding work is never a stall
(see stalled); this rule is for scenarios that bound how long one piece of work may take. A
consumer that never acks anything (auto-ack) is never busy. Proof: an absence of the ack
(``PROOF_HISTORY``).

Cost: one pass pairing deliveries with acks (O(n)), only when ``max_busy_s`` is set.
"""

from __future__ import annotations

from harness.checker.findings import PROOF_HISTORY, Finding
from harness.checker.liveness import waits
from harness.checker.rules import RuleContext, rule
from harness.checker.text import plural, rel


@rule("busy", order=80)
def busy(ctx: RuleContext) -> list[Finding]:
    """Per consumer, the deliveries held longer than max_busy_s."""
    limit = ctx.opts.max_busy_s
    held = ctx.memo("waits", waits).long_held
    if limit is None or not held:
        return []
    by_proc: dict[str, list[tuple[str, str, float, float]]] = {}
    for h in held:
        by_proc.setdefault(h[0], []).append(h)
    out: list[Finding] = []
    for proc, rows in sorted(by_proc.items()):
        _, i, d, e = max(rows, key=lambda h: h[3] - h[2])
        n = len(rows)
        out.append(Finding(
            "busy", n,
            f"busy too long: {proc} held {plural(n, 'delivery', 'deliveries')} unacked longer than max_busy_s "
            f"{limit:g} s (longest: {i} delivered at {rel(d, ctx.idx.t0)}, held {e - d:.1f} s)",
            PROOF_HISTORY, headline="busy too long"))
    return out
