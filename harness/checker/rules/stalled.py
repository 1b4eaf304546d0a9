"""stalled: messages ready, a consumer registered, the client holding nothing, nothing delivered.

Contract. Inside a consumption window (a consumer under test runs; no fault from its start until
``fault_grace_s`` after its effect ended), consecutive ``queue.sample`` events show
``messages_ready > 0`` and ``consumers > 0``, no ``deliver`` came, and no consumer under test held
an unacked delivery by its own ``deliver``/``ack`` events -- for longer than ``max_stall_s``
(default 10 s). A consumer holding unacked work is *busy*, never stalled: that part of the wait is
listed in ``metrics.busy``, and the stall counts only from the first sample after its last ack.
Proof: an absence of deliveries (``PROOF_HISTORY``), across the harness's and the client's
clocks (timed). See :mod:`harness.checker.liveness`.

Cost: O(s log d) for s samples and d deliveries; when a wait is longer than ``max_stall_s``, one
pass pairing deliveries with acks (O(n)).
"""

from __future__ import annotations

from harness.checker.findings import PROOF_HISTORY, Finding
from harness.checker.liveness import running_consumers, waits
from harness.checker.rules import RuleContext, rule
from harness.checker.text import rel


@rule("stalled", order=60)
def stalled(ctx: RuleContext) -> list[Finding]:
    """Each stall: how long, when, how many messages waited, who was running."""
    out: list[Finding] = []
    t0 = ctx.idx.t0
    for st in ctx.memo("waits", waits).stalls:
        if st["kind"] != "stall":
            continue
        running = running_consumers(ctx.life, st["start"], st["end"])
        out.append(Finding(
            "stalled", 1,
            f"stalled: nothing delivered for {st['duration_s']:.1f} s from {rel(st['start'], t0)} to "
            f"{rel(st['end'], t0)} while up to {st['max_ready']} messages were ready, the broker listed a consumer "
            f"and {running} held no unacked delivery (max_stall_s {ctx.opts.max_stall_s:g} s)",
            PROOF_HISTORY, timed=True, headline="stalled"))
    return out
