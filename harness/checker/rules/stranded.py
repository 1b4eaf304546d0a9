"""stranded: published, found by the drain, never delivered to a client under test.

Contract. ``(drained - delivered) & published`` (``queue.judge``): the message is safe in the broker
but the client never got it back (it stalled, gave up, or lost its consumer). A liveness failure,
reported apart from loss. Proof: an absence of deliveries (``PROOF_HISTORY``).

Cost: none here; the queue judge's O(m) set arithmetic.
"""

from __future__ import annotations

from dataclasses import replace

from harness.checker.findings import Finding
from harness.checker.rules import RuleContext, rule


@rule("stranded", order=20)
def stranded(ctx: RuleContext) -> list[Finding]:
    """Messages only the drain found."""
    return [replace(f, headline="stranded") for f in ctx.queue.findings if f.rule == "stranded"]
