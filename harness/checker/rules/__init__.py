"""The checker's rules, one module each, registered by import.

A rule turns what the measurements found (the fold, the lifetimes, the total-queue sets, the
timing) into :class:`~harness.checker.findings.Finding` s. Adding a rule is adding a module here
that decorates one function with :func:`rule`, its unit test on a crafted history, a deliberately
faulty client that makes it fire on a real run (``harness/clients/faulty/``), and its row in
docs/checker.md's table. Nothing else changes: :func:`run_rules` imports every module of this
package (``pkgutil``) and calls each rule once.

Each rule's docstring states its contract (what it proves, from which events) and its cost.
A rule never reads the whole history again: it reads the fold's per-kind lists and the derived
facts in :class:`RuleContext`.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cache
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from harness.checker.findings import Finding
    from harness.checker.fold import Fold
    from harness.checker.lifecycle import Lifecycle
    from harness.checker.model import CheckOptions, Timing
    from harness.checker.queue import QueueResult


@dataclass(slots=True)
class RuleContext:
    """What every rule may read: computed once per check, before any rule runs."""

    idx: Fold
    life: Lifecycle
    opts: CheckOptions
    queue: QueueResult
    timing: Timing
    #: metrics rules add for the report (results.json ``metrics``), by rule name
    metrics: dict[str, Any] = field(default_factory=dict)


RuleFn = Callable[[RuleContext], "list[Finding]"]


@dataclass(frozen=True, slots=True)
class Rule:
    name: str
    fn: RuleFn
    module: str

    @property
    def doc(self) -> str:
        return (self.fn.__doc__ or "").strip()


_REGISTRY: dict[str, Rule] = {}


def rule(name: str) -> Callable[[RuleFn], RuleFn]:
    """Register ``fn`` as the rule ``name`` (one name, one function: a second is an error)."""

    def deco(fn: RuleFn) -> RuleFn:
        if name in _REGISTRY and _REGISTRY[name].fn is not fn:
            raise RuntimeError(f"checker rule {name!r} is registered twice ({_REGISTRY[name].module}, {fn.__module__})")
        _REGISTRY[name] = Rule(name, fn, fn.__module__)
        return fn

    return deco


@cache
def rules() -> dict[str, Rule]:
    """Every rule, by name, after importing each module of this package once."""
    for info in pkgutil.iter_modules(__path__):
        importlib.import_module(f"{__name__}.{info.name}")
    return dict(sorted(_REGISTRY.items()))


def run_rules(ctx: RuleContext) -> list[Finding]:
    """Every registered rule's findings, in rule-name order. O(sum of the rules' costs)."""
    out: list[Finding] = []
    for r in rules().values():
        out.extend(r.fn(ctx))
    return out
