"""A run's results with assertion helpers that explain themselves when they fail.

Used by the pytest plugin (``chaos_run`` returns one) and usable from any Python code.
Every failed assertion message carries the verdict, the checker's reasons and the path of the
run's evidence, so a red test in CI says why without opening anything.

The helpers raise ``AssertionError`` explicitly instead of using ``assert``: ``python -O`` strips
assert statements, and a scenario suite run that way must still fail when a client loses data.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

#: what counts as the client noticing a fault (harness/checker/timing.py NOTICE_KINDS and friends)
NOTICES = "conn.lost, conn.blocked, channel.closed, consume.cancelled, publish.fail or publish.info"


def _fail(message: str) -> None:
    """Raise the assertion failure (never an ``assert`` statement: see the module docstring)."""
    __tracebackhide__ = True  # pytest shows the scenario's line and this message, not our frames
    raise AssertionError(message)


@dataclass
class RunOutcome:
    doc: dict[str, Any]
    reports_dir: Path

    @property
    def verdict(self) -> str:
        return self.doc["verdict"]

    @property
    def counts(self) -> dict[str, int]:
        return self.doc["counts"]

    @property
    def timing(self) -> dict[str, Any]:
        return self.doc["timing"]

    @property
    def run_dir(self) -> Path:
        return self.reports_dir / self.doc["run_id"]

    def explain(self) -> str:
        reasons = "\n".join(f"  - {r}" for r in self.doc["reasons"]) or "  (no reasons)"
        return (f"{self.doc['client']} × {self.doc['fault']}: verdict {self.verdict}\n{reasons}\n"
                f"  counts: {self.counts}\n  evidence: {self.run_dir}")

    def assert_verdict(self, expected: str) -> RunOutcome:
        __tracebackhide__ = True
        if self.verdict != expected:
            _fail(f"expected verdict {expected!r}\n{self.explain()}")
        return self

    def assert_pass(self) -> RunOutcome:
        __tracebackhide__ = True
        return self.assert_verdict("pass")

    def assert_no_loss(self) -> RunOutcome:
        __tracebackhide__ = True
        if self.verdict == "unknown":
            _fail(f"cannot judge loss: {self.explain()}")
        if self.counts.get("lost", 0) != 0:
            _fail(f"messages lost\n{self.explain()}")
        return self

    def assert_recovered_within(self, seconds: float) -> RunOutcome:
        __tracebackhide__ = True
        rec = self.timing.get("recovery_s")
        if rec is None:
            _fail(f"the client never recovered after heal\n{self.explain()}")
        elif rec > seconds:
            _fail(f"recovery took {rec:.2f}s > {seconds}s\n{self.explain()}")
        return self

    def assert_no_stall(self) -> RunOutcome:
        __tracebackhide__ = True
        if self.counts.get("stranded", 0) != 0 or self.doc.get("metrics", {}).get("stalls"):
            _fail(f"the consumer stalled or stranded messages\n{self.explain()}")
        return self

    def assert_detected(self, within: float | None = None, role: str | None = None) -> RunOutcome:
        """The client under test (``role``: "publisher"/"consumer", default any) noticed the fault,
        within ``within`` seconds of its first effect when given. A failure says which detection is
        missing and why: when the fault took effect, which process noticed what, and the heartbeat
        window the client predicted for a silent fault."""
        __tracebackhide__ = True
        t = self.timing
        detail = t.get("detail") or {}
        measured = (t.get("detection_by_role") or {}).get(role) if role else t.get("detection_s")
        who = f"the {role}" if role else "the client under test"
        if measured is None:
            _fail(f"{who} never detected the fault: {self._detection_context(detail)}\n{self.explain()}")
        elif within is not None and measured > within:
            _fail(f"{who} detected the fault {measured:.2f}s after its first effect, later than {within}s: "
                  f"{self._detection_context(detail)}\n{self.explain()}")
        return self

    def _detection_context(self, detail: dict[str, Any]) -> str:
        faults = detail.get("faults") or []
        if not faults:
            return "no fault took effect in this run (nothing to detect)"
        windows = ", ".join(f"{f.get('fault')} at t={f.get('start_s', 0):.1f}s" for f in faults)
        seen = detail.get("detection_by_proc") or {}
        noticed = ("; ".join(f"{p} noticed it by {r.get('by')} after {r.get('detection_s', 0):.2f}s"
                             for p, r in seen.items()) or f"no process wrote {NOTICES} after it")
        text = f"fault {windows}; {noticed}"
        pred = (detail.get("heartbeat_prediction") or {}).get("by_proc") or {}
        for p, row in pred.items():
            window = row.get("window_s") or [None, None]
            text += (f"; {p} ({row.get('library')}, heartbeat {row.get('heartbeat_s')} s) predicts detection "
                     f"of a silent fault in {window[0]}-{window[1]} s")
        return text
