"""A finding: one rule's evidence of an anomaly, before the verdict weighs it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

#: what could explain a finding away if the history were incomplete
PROOF_POSITIVE = "none"  # proven by events that are there: nothing missing can undo it
PROOF_HISTORY = "history"  # rests on an absence; each unreadable history line could hide one event
PROOF_QUEUE = "queue"  # rests on "never seen": also needs the drain to have emptied the queue

Owner = Literal["client", "broker", "config"]
#: whose doing a finding is (see ``Finding.owner``)
OWNERS: tuple[Owner, ...] = ("client", "broker", "config")


@dataclass(slots=True)
class Finding:
    """``count`` anomalies of ``rule`` (ids, windows or publishes), described by ``text``.

    ``proof`` says which missing evidence could explain it away (see the PROOF_* constants);
    the verdict counts it as proven only when ``count`` exceeds what that evidence could hide.
    ``timed``: the finding compares times written by different processes, so it needs their
    clocks to agree.
    ``effect``: what the finding does to the verdict once proven: ``"fail"`` (an anomaly of the
    client or broker) or ``"unknown"`` (the run could not test what it set out to: e.g. the fault
    never overlapped traffic, or a silent fault was shorter than the client's detection window).
    ``headline``: the short word the matrix cell shows (lost, stranded, unexpected, gave up,
    blocked, stalled, consumer lost, not exercised, ...); defaults to the rule name.
    ``category``: a finer name within the rule (``lost_confirmed``, ``lost_unroutable``, ...);
    :func:`harness.checker.rules.run_rules` sets ``rule`` to the registered rule's name and keeps
    a different name the finding came with here.
    ``owner``: whose doing the anomaly is (``OWNERS``): the client under test (the default), the
    broker (it broke a promise its queue type makes: a quorum queue lost a confirmed message under
    a single-node fault), or the run's configuration (a classic queue's only node went down). A
    report comparing clients must not lay the last two at a client's door; the verdict still
    counts them (the run did lose data).
    """

    rule: str
    count: int
    text: str
    proof: str = PROOF_HISTORY
    timed: bool = False
    effect: Literal["fail", "unknown"] = "fail"
    headline: str = ""
    category: str = ""
    owner: Owner = "client"

    @property
    def label(self) -> str:
        return self.headline or self.rule.replace("_", " ")
