"""The checker: pure functions from a merged history to a verdict and metrics.

    from harness.checker import check
    result = check(events, problems)      # CheckResult: verdict, reasons, counts, timing, metrics

Pipeline (each step its own module; only the fold reads every event -- and, when a wait is long
enough to be a stall or ``max_busy_s`` is set, the liveness pairing of deliveries with acks):

    fold       the one O(n) pass: per-message state, other kinds filed    (fold.py)
    queue      total-queue: lost / stranded / unexpected / duplicated /  (queue.py)
               recovered / reordered, by set arithmetic
    lifecycle  client lifetimes (start, exit, signal, gave up), phases   (lifecycle.py)
    timing     detection and recovery times                              (timing.py)
    integrity  can the history be trusted (run.end, drain, clocks, ...)  (integrity.py)
    rules      one module per finding, self-registering (rules/): lost,  (rules/*.py)
               stranded, unexpected, gave up, blocked, stalled, consumer
               lost, busy, ... -- liveness facts they share: liveness.py
    timeline   throughput per 100 ms bucket                              (timeline.py)
    cluster    queue type, nodes, each client's node over time, node     (cluster.py)
               faults; whose doing a lost confirmed message is
    verdict    fail > unknown > pass; a headline per run                 (verdict.py)

Whole check: O(n) time for n events (plus O(s log n) for s queue samples), O(n) space.
docs/checker.md states every rule.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from os import PathLike

from harness.checker.cluster import metrics as cluster_metrics
from harness.checker.effects import fault_windows
from harness.checker.fold import fold_events
from harness.checker.integrity import assess
from harness.checker.lifecycle import scan
from harness.checker.model import CheckOptions, CheckResult, Counts, Timing, Verdict
from harness.checker.queue import judge
from harness.checker.rules import RuleContext, run_rules
from harness.checker.timeline import throughput
from harness.checker.timing import measure, prediction_notes
from harness.checker.verdict import combine
from harness.history import Event, read_events, validate_event

__all__ = ["CheckOptions", "CheckResult", "Counts", "Timing", "Verdict", "check", "check_file"]


def check(events: Iterable[Event], problems: Sequence[str] = (),
          options: CheckOptions | None = None) -> CheckResult:
    """Judge one run's merged history.

    ``events``: the history, sorted by ``t`` (sorted here, stably, if it is not).
    ``problems``: what went wrong reading or merging it (one per unreadable or invalid line); any
    problem makes the verdict at best ``unknown``. Never raises on a malformed event: it fails
    closed to ``unknown`` naming the event.

    O(n) time and space for n events.
    """
    opts = options or CheckOptions()
    evs = events if isinstance(events, list) else list(events)
    try:
        return _check(evs, list(problems), opts)
    except (KeyError, TypeError, ValueError, AttributeError, IndexError) as exc:
        return _unreadable(evs, list(problems), exc)


def check_file(path: str | PathLike[str], options: CheckOptions | None = None) -> CheckResult:
    """Read (and validate) a history file, then :func:`check` it."""
    events, problems = read_events(path)
    return check(events, problems, options)


def _check(evs: list[Event], problems: list[str], opts: CheckOptions) -> CheckResult:
    # the fold keeps every publish that waited longer than max_block_s: the blocked rule's
    # candidates (a deadline is never shorter than that)
    idx = fold_events(evs, opts.max_block_s)
    q = judge(idx, opts.max_examples, opts.max_listed)
    life = scan(idx, idx.per_proc, idx.by_proc)
    timing = measure(idx, life, opts)
    trust = assess(idx, life, problems, q.counts["published"], q.metrics["outcome_without_invoke"], opts)
    ctx = RuleContext(idx, life, opts, q, timing, faults=fault_windows(idx), counts=dict(q.counts),
                      examples=dict(q.examples))
    judged = combine(run_rules(ctx), trust)
    metrics = {
        **q.metrics,
        **trust.metrics,
        "events": idx.n,
        "resorted": idx.resorted,
        **ctx.metrics,
        "duration_s": idx.t_end - idx.t0,
        **cluster_metrics(idx, life, ctx.faults, opts.queue_type, opts.nodes),
        "throughput": throughput(idx, life, opts.bucket_s),
        "clients": {p.name: {"role": p.role, "library": p.library, "strategy": p.strategy,
                             "exit_reason": p.exit_reason, "code": p.code, "expected": p.expected}
                    for p in life.clients()},
    }
    return CheckResult(verdict=judged.verdict, headline=judged.headline, reasons=judged.reasons,
                       notes=[*q.notes, *ctx.notes, *prediction_notes(timing)], counts=Counts(**ctx.counts),
                       timing=timing, metrics=metrics, examples=ctx.examples, findings=judged.findings)


def _unreadable(evs: list[Event], problems: list[str], exc: Exception) -> CheckResult:
    """Fail closed: name the malformed events (O(n), only on this error path)."""
    bad: list[str] = []
    for n, ev in enumerate(evs):
        errs = validate_event(ev)
        if errs:
            bad.append(f"event {n}: {'; '.join(errs)}")
    reasons = [f"the checker could not read the history ({type(exc).__name__}: {exc})"]
    if bad:
        reasons.append(f"{len(bad)} invalid events (e.g. {bad[0]})")
    reasons += [f"history problem: {p}" for p in problems[:3]]
    return CheckResult(verdict="unknown", reasons=reasons)
