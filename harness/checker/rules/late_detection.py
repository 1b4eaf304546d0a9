"""late detection: the clients noticed the fault later than the scenario's ``max_detection_s``, or never.

Contract. Only when ``max_detection_s`` is set (None by default: detection is then shown, and a
time past the heartbeat's prediction is a note, never a verdict). Detection is what
:mod:`harness.checker.timing` measured: the first fault's effect -> the first notice a client gave
itself (conn.lost, conn.blocked, channel.closed, consume.cancelled, publish.fail, publish.info),
never an event written while the harness was stopping that client. Fires ``fail`` when

* detection came later than ``max_detection_s``; or
* no client noticed at all although the faults stayed in effect at least ``max_detection_s``
  (a fault healed sooner leaves nothing to notice: *not exercised* judges that case).

Proof: an absence (no earlier notice), so each unreadable history line weakens it; it compares the
nemesis's times with the clients', so it needs their clocks to agree. Cost: O(f) over the fault
windows in ``timing.detail``.
"""

from __future__ import annotations

from harness.checker.findings import PROOF_HISTORY, Finding
from harness.checker.rules import RuleContext, rule

HEADLINE = "late detection"
NOTICES = "conn.lost, conn.blocked, channel.closed, consume.cancelled, publish.fail or publish.info"


@rule("late_detection")
def late_detection(ctx: RuleContext) -> list[Finding]:
    """Detection later than ``max_detection_s``, or never while the fault lasted that long."""
    limit = ctx.opts.max_detection_s
    detail = ctx.timing.detail
    faults = detail.get("faults") or []
    if limit is None or not faults or detail.get("first_effect_s") is None:
        return []
    det = ctx.timing.detection_s
    if det is not None:
        if det <= limit:
            return []
        first = min(detail.get("detection_by_proc", {}).items(), key=lambda kv: kv[1]["detection_s"])
        proc, row = first
        by = row["by"] + (f": {row['text']}" if row.get("text") else "")
        return [Finding("late_detection", 1,
                        f"late detection: the first client to notice the fault was {proc}, {det:.1f} s after "
                        f"it took effect ({by}), later than max_detection_s {limit:g} s",
                        proof=PROOF_HISTORY, timed=True, headline=HEADLINE)]
    t_eff = detail["first_effect_s"]
    ends = [f.get("effect_end_s") for f in faults]
    if any(e is None for e in ends):
        held = None  # never healed: in effect to the end of the run
    else:
        held = max(e for e in ends if e is not None) - t_eff
        if held < limit:
            return []
    names = ", ".join(dict.fromkeys(str(f["fault"]) for f in faults))
    lasted = "was never healed" if held is None else f"was in effect for {held:.1f} s"
    return [Finding("late_detection", 1,
                    f"late detection: no client noticed {names} within max_detection_s {limit:g} s "
                    f"(it {lasted}; no {NOTICES} from a client under test)",
                    proof=PROOF_HISTORY, timed=True, headline=HEADLINE)]
