"""not recovered: after the last heal, a role never came back while work was left, or came back
later than the scenario's ``max_recovery_s`` (default 30 s).

Contract. Recovery is what :mod:`harness.checker.timing` measured: the last heal (the fault's heal
effect, else ``fault.stop``) -> per role, the first confirmed publish (an unconfirmed one for a
client that never confirms) and the first delivery on a live connection by a consumer that is
still running and did not give up. Fires ``fail``, one finding per role, when

* the role never recovered while work was left for it (``timing.detail["recovery_never"]`` names
  what never came and the work: publishes after the heal or still open at it, a publisher that
  never finished; messages the drain found, or published after the heal); or
* the role recovered later than ``max_recovery_s``.

A role with no work left is "not needed" and never fires. An unhealed fault has no recovery: the
integrity rules report it. Off when ``max_recovery_s`` is None.

Proof: an absence (no earlier success), so each unreadable history line weakens it; it compares
the nemesis's heal with the clients' times, so it needs their clocks to agree. Cost: O(1).
"""

from __future__ import annotations

from harness.checker.findings import PROOF_HISTORY, Finding
from harness.checker.rules import RuleContext, rule

HEADLINE = "not recovered"
WHAT = {"publisher": "first successful publish", "consumer": "first delivery on a live connection"}


@rule("not_recovered")
def not_recovered(ctx: RuleContext) -> list[Finding]:
    """A role never back after the heal while work was left, or back later than ``max_recovery_s``."""
    limit = ctx.opts.max_recovery_s
    detail = ctx.timing.detail
    if limit is None or not detail.get("faults") or detail.get("unhealed") or detail.get("last_heal_s") is None:
        return []
    out: list[Finding] = []
    never = detail.get("recovery_never") or {}
    for role in ("publisher", "consumer"):
        if role in never:
            out.append(Finding("not_recovered", 1,
                               f"not recovered: the {role}s never came back after the heal: {never[role]}",
                               proof=PROOF_HISTORY, timed=True, headline=HEADLINE))
            continue
        took = ctx.timing.recovery_by_role.get(role)
        needed = role not in (detail.get("recovery_not_needed") or {})
        if needed and took is not None and took > limit:
            out.append(Finding("not_recovered", 1,
                               f"not recovered within max_recovery_s {limit:g} s: the {role}s' {WHAT[role]} "
                               f"came {took:.1f} s after the heal",
                               proof=PROOF_HISTORY, timed=True, headline=HEADLINE))
    return out
