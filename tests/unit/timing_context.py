"""The measurements the timing rules read, built from a crafted history without the other rules
(shared by the test_timing_* modules)."""

from __future__ import annotations

from harness.checker.builder import HistoryBuilder
from harness.checker.effects import fault_windows
from harness.checker.fold import fold_events
from harness.checker.lifecycle import scan
from harness.checker.model import CheckOptions, Timing
from harness.checker.rules import RuleContext
from harness.checker.timing import measure


def ctx_of(h: HistoryBuilder, **opts: float | None) -> RuleContext:
    """The measurements the timing rules read (fold, lifecycle, timing), without the other rules."""
    idx = fold_events(h.events(), 30.0)
    life = scan(idx, idx.per_proc, idx.by_proc)
    return RuleContext(idx=idx, life=life, opts=CheckOptions(**opts),  # type: ignore[arg-type]
                       queue=None, timing=measure(idx, life), faults=fault_windows(idx))  # type: ignore[arg-type]


def timing_of(h: HistoryBuilder) -> Timing:
    return ctx_of(h).timing
