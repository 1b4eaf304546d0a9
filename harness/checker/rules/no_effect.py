"""no effect: a fault that acted on nothing (a force-close that closed no connection of the run).

Some faults act on what they find: force-close closes the run's client connections it can name.
When it finds none (a client that does not name its connections ``<run_id>/<proc>``, as the client
protocol asks, aimed at with ``target=consumer``), nothing happened to the client, and a pass would
say the client survived a fault it never met. Its ``fault.effect`` says so with ``count: 0``.

Contract. Every ``fault.effect`` of action "start" that carries a numeric ``count`` of 0 makes one
finding per fault window: effect "unknown" (the run could not test what it set out to), headline
"not exercised", naming the fault, what it found nothing of, and the fix. A window where another
start effect of the same fault acted on something (count > 0) is exercised. Proof: positive (the
effect event is there). Cost: O(e) over the e fault.effect events.
"""

from __future__ import annotations

from harness.checker.findings import PROOF_POSITIVE, Finding
from harness.checker.rules import RuleContext, rule
from harness.checker.text import rel

HEADLINE = "not exercised"


def _count(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


@rule("no_effect", order=200)
def no_effect(ctx: RuleContext) -> list[Finding]:
    """A fault whose start effect acted on nothing (``count: 0``): unknown, not pass."""
    out: list[Finding] = []
    for w in ctx.faults:
        counts = [(_count(ev.get("count")), ev) for ev in w.effects if ev.get("action") == "start"]
        counted = [(n, ev) for n, ev in counts if n is not None]
        if not counted or any(n > 0 for n, _ in counted):
            continue
        ev = counted[0][1]
        out.append(Finding(
            "no_effect", 1,
            f"not exercised: {w.spec or w.name} acted on nothing at {rel(ev['t'], ctx.idx.t0)} "
            f"({ev.get('effect')}: 0): the client never met the fault. Name every connection "
            "\"<run_id>/<proc>\" (client property connection_name) as docs/client-protocol.md asks, "
            "so a targeted fault can find it",
            proof=PROOF_POSITIVE, effect="unknown", headline=HEADLINE))
    return out
