"""RunSpec: everything one run is asked to do (recorded in results.json ``spec``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class RunSpec:
    client: str
    fault: str = "none"
    seed: int | None = None
    count: int = 1000
    rate: float = 100.0
    warmup_s: float = 2.0
    #: how long a bare fault (``--fault partition``, no @START+HOLD) is held. None: the run
    #: chooses (harness.run.holds): the fault's ``default_hold_s``, or for a silent fault the
    #: targeted clients' heartbeat detection window plus a margin. Explicit timelines ignore it.
    fault_s: float | None = None
    #: settle ends once nothing was delivered for this long and the queue is empty...
    settle_s: float = 2.0
    #: ...or after this long while the client holds nothing (messages wait, nothing moves)
    settle_timeout_s: float = 60.0
    #: ...but never while the client holds an unacknowledged delivery, up to this cap (seconds
    #: from the start of settle): a slow failure (a heartbeat kill during a long callback, the
    #: redelivery after it) then happens inside the run. Hitting it writes settle.end "cap".
    settle_unacked_cap_s: float = 120.0
    connect_timeout_s: float = 20.0
    grace_s: float = 5.0
    #: consumer processing time per message (the same for every client, so cells compare)
    work_s: float = 0.0
    params: dict[str, Any] = field(default_factory=dict)
    #: the scenario's expectations, as the checker's CheckOptions fields (e.g. {"max_block_s": 5,
    #: "max_stall_s": 10}); recorded in results
    check_options: dict[str, Any] = field(default_factory=dict)
    #: the run queue's type (x-queue-type): "classic" or "quorum" (or "stream" where a strategy
    #: supports it); told to clients in ClientConfig.queue_type, recorded in results
    queue_type: str = "classic"

    def publish_timeout_s(self, fault_phase_s: float) -> float:
        """How long the publisher may take in all before the harness stops it: warmup, the
        fault phase, twice its nominal publishing time and 90 s for reconnects."""
        nominal = self.count / self.rate if self.rate else self.count / 500
        return self.warmup_s + fault_phase_s + 2 * nominal + 90
