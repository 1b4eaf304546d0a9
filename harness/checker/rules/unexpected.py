"""unexpected: delivered or drained, never published.

Contract. ``(delivered | drained) - published`` (``queue.judge``): an id no ``publish.invoke`` ever
named came out of the queue (a phantom, a stray publisher, a client that does not record what it
sends). Proof: an absence of invokes (``PROOF_HISTORY``).

Cost: none here; the queue judge's O(m) set arithmetic.
"""

from __future__ import annotations

from dataclasses import replace

from harness.checker.findings import Finding
from harness.checker.rules import RuleContext, rule


@rule("unexpected", order=30)
def unexpected(ctx: RuleContext) -> list[Finding]:
    """Ids that came out of the queue without ever being published."""
    return [replace(f, headline="unexpected") for f in ctx.queue.findings if f.rule == "unexpected"]
