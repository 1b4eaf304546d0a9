"""The checker's rules, one module each, registered by import.

A rule turns what the measurements found (the fold, the lifetimes, the total-queue sets, the
timing) into :class:`~harness.checker.findings.Finding` s. Adding a rule is adding a module here
that decorates one function with :func:`rule`, its unit test on a crafted history, a deliberately
faulty client that makes it fire on a real run (``harness/clients/faulty/``), and its row in
docs/checker.md's table. Nothing else changes: :func:`run_rules` imports every module of this
package (``pkgutil``) and calls each rule once.

Each rule's docstring states its contract (what it proves, from which events) and its cost.
A rule never reads the whole history again: it reads the fold's per-kind lists and the derived
facts in :class:`RuleContext`. (One exception, paid only when a run needs it: the liveness
analysis pairs the consumers' deliveries with their acks in one pass when a wait long enough to be
a stall exists, or a ``max_busy_s`` is set; see :mod:`harness.checker.liveness`.)

Rules run in ``order`` (then name): the reasons list what a run lost before why it lost it.
Message rules 10-30 (lost, stranded, unexpected), gave up 40, liveness 50-80 (blocked, stalled,
consumer lost, busy), timing rules 100 (the default), rules that make a run ``unknown`` 200.
Facts several rules share (the liveness waits, the blocked publishes) are computed once through
:meth:`RuleContext.memo`.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from functools import cache
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    from harness.checker.effects import FaultWindow
    from harness.checker.findings import Finding
    from harness.checker.fold import Fold
    from harness.checker.lifecycle import Lifecycle
    from harness.checker.model import CheckOptions, Timing
    from harness.checker.queue import QueueResult

T = TypeVar("T")


@dataclass(slots=True)
class RuleContext:
    """What every rule may read: computed once per check, before any rule runs.

    Rules may also write: ``counts`` (results.json ``counts``: add keys, never rename),
    ``metrics`` (results.json ``metrics``), ``notes`` (sentences that do not change the
    verdict) and ``examples`` (ids per category)."""

    idx: Fold
    life: Lifecycle
    opts: CheckOptions
    queue: QueueResult
    timing: Timing
    #: every fault window with when it took effect (:func:`harness.checker.effects.fault_windows`)
    faults: list[FaultWindow] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)
    #: metrics rules add for the report (results.json ``metrics``)
    metrics: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    examples: dict[str, list[str]] = field(default_factory=dict)
    _memo: dict[str, Any] = field(default_factory=dict)

    def memo(self, key: str, compute: Callable[[RuleContext], T]) -> T:
        """``compute(self)``, once per check: for facts several rules read."""
        if key not in self._memo:
            self._memo[key] = compute(self)
        return self._memo[key]  # type: ignore[no-any-return]


RuleFn = Callable[[RuleContext], "list[Finding]"]


@dataclass(frozen=True, slots=True)
class Rule:
    name: str
    fn: RuleFn
    module: str
    order: int = 100

    @property
    def doc(self) -> str:
        return (self.fn.__doc__ or "").strip()


_REGISTRY: dict[str, Rule] = {}


def rule(name: str, order: int = 100) -> Callable[[RuleFn], RuleFn]:
    """Register ``fn`` as the rule ``name`` (one name, one function: a second is an error).
    ``order``: where its findings go among the reasons (module docstring)."""

    def deco(fn: RuleFn) -> RuleFn:
        if name in _REGISTRY and _REGISTRY[name].fn is not fn:
            raise RuntimeError(f"checker rule {name!r} is registered twice ({_REGISTRY[name].module}, {fn.__module__})")
        _REGISTRY[name] = Rule(name, fn, fn.__module__, order)
        return fn

    return deco


@cache
def rules() -> dict[str, Rule]:
    """Every rule, by name, in run order, after importing each module of this package once."""
    for info in pkgutil.iter_modules(__path__):
        importlib.import_module(f"{__name__}.{info.name}")
    return {r.name: r for r in sorted(_REGISTRY.values(), key=lambda r: (r.order, r.name))}


def run_rules(ctx: RuleContext) -> list[Finding]:
    """Every registered rule's findings, in run order (``order``, then name), each named by its rule
    (a finding's own finer name is kept as its ``category``). O(sum of the rules' costs)."""
    out: list[Finding] = []
    for r in rules().values():
        for f in r.fn(ctx):
            if f.rule != r.name:  # e.g. lost_confirmed from the queue judge: a category of "lost"
                f = replace(f, rule=r.name, category=f.category or f.rule)
            out.append(f)
    return out
