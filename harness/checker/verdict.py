"""Combine findings and trust into one verdict, with DESIGN.md's precedence.

1. ``fail`` when at least one finding is proven, even if other evidence is incomplete. A finding
   resting on an absence ("never delivered", "never published") is proven only when its count
   exceeds what the missing evidence could hide (see :mod:`harness.checker.integrity`); a finding
   comparing times across processes needs their clocks to agree.
2. otherwise ``unknown`` when anything needed to decide is missing (integrity reasons, or a
   finding that is not proven);
3. otherwise ``pass``.

Reasons list what proves the failure first, then what made the history incomplete, so a crash that
caused the loss appears next to the loss. Complexity: O(f) over the findings.
"""

from __future__ import annotations

from collections.abc import Sequence

from harness.checker.findings import PROOF_HISTORY, PROOF_QUEUE, Finding
from harness.checker.integrity import Integrity
from harness.checker.model import Verdict


def combine(findings: Sequence[Finding], trust: Integrity) -> tuple[Verdict, list[str]]:
    proven: list[str] = []
    unproven: list[str] = []
    for f in findings:
        if f.timed and not trust.clocks_shared:
            unproven.append(f"{f.text}; not proven: the process clocks disagree")
            continue
        if f.proof == PROOF_QUEUE:
            slack, why = trust.queue_slack, trust.queue_why
        elif f.proof == PROOF_HISTORY:
            slack, why = trust.history_slack, trust.history_why
        else:
            slack, why = 0, ""
        if slack == 0:
            proven.append(f.text)
        elif f.count > slack:
            proven.append(f"{f.text}; at least {f.count - int(slack)} proven: {why} could hide the rest")
        else:
            unproven.append(f"{f.text}; not proven: {why} could explain it")
    if proven:
        return "fail", proven + unproven + trust.reasons
    if unproven or trust.reasons:
        return "unknown", unproven + trust.reasons
    return "pass", []
