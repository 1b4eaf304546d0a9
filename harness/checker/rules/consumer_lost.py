"""consumer lost: the broker lists no consumer for the queue while the consumer process runs.

Contract. Inside a consumption window, consecutive ``queue.sample`` events show
``messages_ready > 0`` and ``consumers == 0`` with no ``deliver``, for longer than ``max_stall_s``:
the broker dropped the consumer (a closed channel, a cancelled consumer) and the client did not
consume again. Whether the client held deliveries does not matter: without a consumer it holds
none the broker knows of. Proof: an absence of deliveries (``PROOF_HISTORY``), across clocks
(timed). See :mod:`harness.checker.liveness`.

Cost: O(s log d) for s samples and d deliveries (shared with stalled).
"""

from __future__ import annotations

from harness.checker.findings import PROOF_HISTORY, Finding
from harness.checker.liveness import running_consumers, waits
from harness.checker.rules import RuleContext, rule
from harness.checker.text import rel


@rule("consumer_lost", order=70)
def consumer_lost(ctx: RuleContext) -> list[Finding]:
    """Each stretch of samples with no consumer while messages waited."""
    out: list[Finding] = []
    t0 = ctx.idx.t0
    for st in ctx.memo("waits", waits).stalls:
        if st["kind"] != "consumer_lost":
            continue
        running = running_consumers(ctx.life, st["start"], st["end"])
        span = f"{st['duration_s']:.1f} s from {rel(st['start'], t0)} to {rel(st['end'], t0)}"
        out.append(Finding(
            "consumer_lost", 1,
            f"consumer lost: the broker reported 0 consumers for {span} while {running} was running and up to "
            f"{st['max_ready']} messages waited",
            PROOF_HISTORY, timed=True, headline="consumer lost"))
    return out
