"""What the checker returns (:class:`CheckResult`) and the knobs it takes (:class:`CheckOptions`).

The result is built once per check (never per event), so it can afford to be a pydantic model.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, Field

Verdict = Literal["pass", "fail", "unknown"]


@dataclass(frozen=True, slots=True)
class CheckOptions:
    """Parameters of the rules (defaults are what a run uses unless its scenario says otherwise)."""

    #: after a fault's heal, clients get this long to reconnect before a stall counts (seconds)
    fault_grace_s: float = 5.0
    # ---- expectations of the scenario: deadlines on the client's own clocks (docs/checker.md) ----
    #: stalled: messages ready, consumer registered, the client holds no unacked delivery and nothing is
    #: delivered for longer than this (seconds). A client holding unacked work is *busy*, never stalled.
    max_stall_s: float = 10.0
    #: busy: a client may hold one unacked delivery this long (seconds); None: no limit (work may be slow)
    max_busy_s: float | None = None
    #: blocked: a publish waits longer than this for its outcome and the application was told nothing
    #: (no error, no conn.blocked, no conn.lost) meanwhile (seconds). While a silent fault is in
    #: effect the client's heartbeat-predicted detection window extends it: only its heartbeat can tell it.
    max_block_s: float = 10.0
    #: detection later than this after the fault took effect is a failure (seconds); None: not judged
    #: (late-vs-heartbeat-prediction stays a note)
    max_detection_s: float | None = None
    #: recovery (heal -> first confirmed publish and first delivery) later than this, or never while
    #: work was left after the heal, is a failure (seconds); None: not judged
    max_recovery_s: float | None = 30.0
    #: on a cluster (``nodes`` >= 2): a client that lost its node under a single-node fault must
    #: resume work on another node within this many seconds while the fault lasts, else *no
    #: failover* (harness.checker.rules.no_failover); None: not judged
    max_failover_s: float | None = 10.0
    #: throughput timeline bucket (seconds)
    bucket_s: float = 0.1
    #: process clocks (wall - monotonic) may differ by this much before they are called unshared
    clock_tolerance_s: float = 1.0
    #: example ids quoted in one reason sentence
    max_examples: int = 5
    #: example ids kept per category in ``CheckResult.examples``
    max_listed: int = 20
    # ---- what the run was given (not expectations): whose doing a loss is depends on them ----
    #: the run queue's type ("classic" | "quorum" | "stream"); None: not known (an older run), and
    #: then no loss is attributed to the broker or the queue type (harness.checker.cluster)
    queue_type: str | None = None
    #: how many broker nodes the run had; None: not known
    nodes: int | None = None


class Counts(BaseModel):
    """Message counts. Distinct ids unless the name says deliveries."""

    published: int = 0  # distinct ids with a publish.invoke
    confirmed: int = 0  # distinct ids with a publish.ok confirmed=true
    acknowledged: int = 0  # distinct ids with any publish.ok (what the application was told)
    delivered: int = 0  # distinct ids delivered to the clients under test
    drained: int = 0  # distinct ids found by the harness's drain reader
    lost: int = 0  # acknowledged, never delivered nor drained
    lost_confirmed: int = 0  # ... after a broker confirm
    lost_unconfirmed: int = 0  # ... after an unconfirmed publish.ok only
    lost_unroutable: int = 0  # lost ids told ok while the queue did not exist (also counted above by flag)
    #: lost confirmed ids the broker owes: a quorum queue under single-node faults (also in lost_confirmed)
    lost_by_broker: int = 0
    #: lost confirmed ids told while the classic queue's only node was down (also in lost_confirmed)
    lost_queue_node_down: int = 0
    #: in the queue (or on the way into it) when queue-delete deleted it: the fault's doing, not lost
    deleted_with_queue: int = 0
    stranded: int = 0  # published, found only by the drain
    duplicated: int = 0  # deliveries beyond the first, over deliver events
    duplicated_redelivery: int = 0  # ... broker redeliveries (flagged, or not explained by a re-send)
    duplicated_resend: int = 0  # ... copies from a publisher re-send (redelivered=false, >1 invoke)
    unexpected: int = 0  # delivered or drained, never published
    recovered: int = 0  # no publish.ok (unknown outcome or failed) but delivered
    reordered: int = 0  # first deliveries that came after a later-published message of their publisher


class Timing(BaseModel):
    """Fault-to-notice and heal-to-success times, seconds (None: no fault, or it never happened)."""

    detection_s: float | None = None
    recovery_s: float | None = None
    detection_by_role: dict[str, float | None] = Field(default_factory=dict)
    recovery_by_role: dict[str, float | None] = Field(default_factory=dict)
    #: per process times and the fault windows they were measured against
    detail: dict[str, Any] = Field(default_factory=dict)


class CheckResult(BaseModel):
    """The verdict on one run and the evidence behind it.

    ``reasons`` is empty only on ``pass``. On ``fail`` it lists what proves the failure first, then
    anything that also made the history incomplete. ``notes`` are findings that do not change the
    verdict (duplicates, reordering, recovered messages). ``examples`` holds example ids per
    category (lost_confirmed, lost_unconfirmed, stranded, unexpected, duplicated, reordered,
    recovered, ...). ``findings``: every rule's finding (rule, category, headline, effect, count,
    text, proven), in rule order; ``headline``: the short word a matrix cell shows (the first proven
    failing finding's, else the first unknown-making finding's, else "").
    """

    verdict: Verdict
    headline: str = ""
    reasons: list[str] = Field(default_factory=list)
    notes: list[str] = Field(default_factory=list)
    counts: Counts = Field(default_factory=Counts)
    timing: Timing = Field(default_factory=Timing)
    metrics: dict[str, Any] = Field(default_factory=dict)
    examples: dict[str, list[str]] = Field(default_factory=dict)
    findings: list[dict[str, Any]] = Field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready dict (what results.json stores)."""
        return self.model_dump(mode="json")
