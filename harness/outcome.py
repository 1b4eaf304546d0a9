"""A run's results with assertion helpers that explain themselves when they fail.

Used by the pytest plugin (``chaos_run`` returns one) and usable from any Python code.
Every failed assertion message carries the verdict, the checker's reasons and the path of the
run's evidence, so a red test in CI says why without opening anything.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any


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
    def timing(self) -> dict[str, float | None]:
        return self.doc["timing"]

    @property
    def run_dir(self) -> Path:
        return self.reports_dir / self.doc["run_id"]

    def explain(self) -> str:
        reasons = "\n".join(f"  - {r}" for r in self.doc["reasons"]) or "  (no reasons)"
        return (f"{self.doc['client']} × {self.doc['fault']}: verdict {self.verdict}\n{reasons}\n"
                f"  counts: {self.counts}\n  evidence: {self.run_dir}")

    def assert_verdict(self, expected: str) -> RunOutcome:
        assert self.verdict == expected, f"expected verdict {expected!r}\n{self.explain()}"
        return self

    def assert_pass(self) -> RunOutcome:
        return self.assert_verdict("pass")

    def assert_no_loss(self) -> RunOutcome:
        assert self.verdict != "unknown", f"cannot judge loss: {self.explain()}"
        assert self.counts.get("lost", 0) == 0, f"messages lost\n{self.explain()}"
        return self

    def assert_recovered_within(self, seconds: float) -> RunOutcome:
        rec = self.timing.get("recovery_s")
        assert rec is not None, f"the client never recovered after heal\n{self.explain()}"
        assert rec <= seconds, f"recovery took {rec:.2f}s > {seconds}s\n{self.explain()}"
        return self

    def assert_no_stall(self) -> RunOutcome:
        assert self.counts.get("stranded", 0) == 0 and not self.doc.get("metrics", {}).get("stalls"), \
            f"the consumer stalled or stranded messages\n{self.explain()}"
        return self
