"""A finding: one rule's evidence of an anomaly, before the verdict weighs it."""

from __future__ import annotations

from dataclasses import dataclass

#: what could explain a finding away if the history were incomplete
PROOF_POSITIVE = "none"  # proven by events that are there: nothing missing can undo it
PROOF_HISTORY = "history"  # rests on an absence; each unreadable history line could hide one event
PROOF_QUEUE = "queue"  # rests on "never seen": also needs the drain to have emptied the queue


@dataclass(slots=True)
class Finding:
    """``count`` anomalies of ``rule`` (ids, windows or publishes), described by ``text``.

    ``proof`` says which missing evidence could explain it away (see the PROOF_* constants);
    the verdict counts it as proven only when ``count`` exceeds what that evidence could hide.
    ``timed``: the finding compares times written by different processes, so it needs their
    clocks to agree.
    """

    rule: str
    count: int
    text: str
    proof: str = PROOF_HISTORY
    timed: bool = False
