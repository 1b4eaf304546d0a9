"""Combine findings and trust into one verdict, with DESIGN.md's precedence.

1. ``fail`` when at least one finding whose effect is ``"fail"`` is proven, even if other evidence
   is incomplete. A finding resting on an absence ("never delivered", "never published") is proven
   only when its count exceeds what the missing evidence could hide (see
   :mod:`harness.checker.integrity`); a finding comparing times across processes needs their
   clocks to agree.
2. otherwise ``unknown`` when anything needed to decide is missing: integrity reasons, a failing
   finding that is not proven, or a finding whose effect is ``"unknown"`` (the run could not test
   what it set out to: no overlap, a fault shorter than the detection window). An ``"unknown"``
   finding never fails a run, proven or not.
3. otherwise ``pass``.

Reasons list what proves the failure first, then what made the history incomplete, so a crash that
caused the loss appears next to the loss. Each finding is also returned as a dict (rule, category,
headline, effect, count, text, proven, owner) for results.json, and the run's headline: the first proven failing
finding's label, else the first unknown-making finding's, else "". Complexity: O(f) over the findings.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from harness.checker.findings import PROOF_HISTORY, PROOF_QUEUE, Finding
from harness.checker.integrity import Integrity
from harness.checker.model import Verdict


@dataclass(slots=True)
class Judgement:
    verdict: Verdict
    reasons: list[str]
    findings: list[dict[str, Any]] = field(default_factory=list)
    headline: str = ""


def weigh(f: Finding, trust: Integrity) -> tuple[bool, str]:
    """(proven, the reason sentence) for one finding, given what the history may be missing."""
    if f.timed and not trust.clocks_shared:
        return False, f"{f.text}; not proven: the process clocks disagree"
    if f.proof == PROOF_QUEUE:
        slack, why = trust.queue_slack, trust.queue_why
    elif f.proof == PROOF_HISTORY:
        slack, why = trust.history_slack, trust.history_why
    else:
        slack, why = 0, ""
    if slack == 0:
        return True, f.text
    if f.count > slack:
        return True, f"{f.text}; at least {f.count - int(slack)} proven: {why} could hide the rest"
    return False, f"{f.text}; not proven: {why} could explain it"


def combine(findings: Sequence[Finding], trust: Integrity) -> Judgement:
    proven: list[str] = []
    unproven: list[str] = []
    rows: list[dict[str, Any]] = []
    first_fail = first_unknown = ""
    for f in findings:
        ok, text = weigh(f, trust)
        rows.append({"rule": f.rule, "category": f.category or f.rule, "headline": f.label, "effect": f.effect,
                     "count": f.count, "text": f.text, "proven": ok, "owner": f.owner})
        if f.effect != "unknown" and ok:
            proven.append(text)
            first_fail = first_fail or f.label
        else:
            unproven.append(text)
            first_unknown = first_unknown or f.label
    if proven:
        return Judgement("fail", proven + unproven + trust.reasons, rows, first_fail)
    if unproven or trust.reasons:
        return Judgement("unknown", unproven + trust.reasons, rows, first_unknown)
    return Judgement("pass", [], rows, "")
