"""stranded: published, found by the drain, never delivered to a client under test.

Contract. ``(drained - delivered) & published`` (``queue.judge``): the message is safe in the broker
but the client never got it back (it stalled, gave up, or lost its consumer). A liveness failure,
reported apart from loss. Proof: an absence of deliveries (``PROOF_HISTORY``).

In a classic queue's run where a fault took the queue's node down, the reason says so: the queue
was unavailable meanwhile (its consumers got basic.cancel or lost their connection), and consuming
again once it was back is the client's part, so the finding stays the client's.

Cost: the queue judge's O(m) set arithmetic; the node fault context O(k) for k fault events.
"""

from __future__ import annotations

from dataclasses import replace

from harness.checker.cluster import stranded_context
from harness.checker.findings import Finding
from harness.checker.rules import RuleContext, rule


@rule("stranded", order=20)
def stranded(ctx: RuleContext) -> list[Finding]:
    """Messages only the drain found."""
    found = [replace(f, headline="stranded") for f in ctx.queue.findings if f.rule == "stranded"]
    if found:
        context = stranded_context(ctx.idx, ctx.faults, ctx.opts.queue_type)
        if context:
            found = [replace(f, text=f"{f.text}; {context}") for f in found]
    return found
