"""blocked: a publish that waited past its deadline while the application was told nothing.

Contract. A ``publish.invoke`` whose outcome came later than invoke + deadline (or never came
while its publisher ran that long), with no notice from that publisher between the invoke and the
deadline: no ``conn.blocked``, ``conn.lost``, ``channel.closed``, nor ``publish.fail`` /
``publish.info`` of any id. Deadline: ``max_block_s`` (default 10 s), plus the publisher's
heartbeat window upper bound + 1 s when a silent fault aimed at publishers was in effect during the
wait (only its heartbeat can tell it then). A client that raises within the deadline and retries
is correct; one that waits out a 20 s alarm silently is not. The wait ends at the harness's
``proc.signal`` to the publisher; what it writes after that is not a notice. Replaces "publisher
hang" (``metrics.publisher_hangs`` lists the blocked publishes; ``metrics.slow_publishes`` the
late ones whose publisher was told). Proof: an absence of notices (``PROOF_HISTORY``); the end of
an unanswered wait is the harness's event, so the clocks must agree (timed).

Cost: O(h log k) for h slow or unanswered invokes (kept by the fold) and k notices
(:func:`harness.checker.liveness.blocked_publishes`).
"""

from __future__ import annotations

from typing import Any

from harness.checker.findings import PROOF_HISTORY, Finding
from harness.checker.liveness import HEARTBEAT_SLACK_S, blocked_publishes
from harness.checker.rules import RuleContext, rule
from harness.checker.text import plural, rel


@rule("blocked", order=50)
def blocked(ctx: RuleContext) -> list[Finding]:
    """Per publisher, the publishes that outwaited their deadline untold."""
    by_proc: dict[str, list[dict[str, Any]]] = {}
    for row in ctx.memo("blocked", blocked_publishes).blocked:
        by_proc.setdefault(row["proc"], []).append(row)
    out: list[Finding] = []
    m = ctx.opts.max_block_s
    for proc, rows in sorted(by_proc.items()):
        worst = max(rows, key=lambda r: r["waited_s"])
        how = "got its outcome only after" if worst["outcome"] else "had no outcome after"
        d = worst["deadline_s"]
        deadline = (f"{d:g} s (max_block_s {m:g} s + its heartbeat window {d - m - HEARTBEAT_SLACK_S:g} s "
                    f"+ {HEARTBEAT_SLACK_S:g} s: a silent fault was in effect)") if worst["heartbeat_extended"] \
            else f"{d:g} s (max_block_s)"
        n = len(rows)
        out.append(Finding(
            "blocked", n,
            f"blocked: {proc} was told nothing while {plural(n, 'publish', 'publishes')} waited past the deadline of "
            f"{deadline} (longest: {worst['id']} invoked at {rel(worst['invoke_t'], ctx.idx.t0)} {how} "
            f"{worst['waited_s']:.1f} s; no error, conn.blocked, conn.lost or channel.closed meanwhile)",
            PROOF_HISTORY, timed=True, headline="blocked"))
    return out
