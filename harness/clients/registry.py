"""The catalogue of reference client strategies: one module per strategy, found by discovery.

A strategy module lives in :mod:`harness.clients.strategies` and defines::

    NAME = "pika-recover"            # the name users type
    LIBRARY = "pika"                 # distribution name, for the version in results.json
    DESCRIPTION = "one line the report shows"
    PARAMS = {"heartbeat": 60}       # knobs and their defaults (optional)
    def publisher(ctx: ClientContext) -> None: ...
    def consumer(ctx: ClientContext) -> None: ...

Adding a strategy is adding that file (and its row in the docs table); nothing else changes.
"""

from __future__ import annotations

import importlib
import pkgutil
from dataclasses import dataclass, field
from functools import cache
from importlib import metadata
from types import ModuleType
from typing import Any

from harness.errors import ChaosError


@dataclass(frozen=True)
class Strategy:
    name: str
    library: str
    description: str
    module: str
    params: dict[str, Any] = field(default_factory=dict)

    @property
    def version(self) -> str:
        try:
            return metadata.version(self.library)
        except metadata.PackageNotFoundError:
            return "unknown"

    def load(self) -> ModuleType:
        return importlib.import_module(self.module)


@cache
def strategies() -> dict[str, Strategy]:
    from harness.clients import strategies as pkg

    found: dict[str, Strategy] = {}
    for info in pkgutil.iter_modules(pkg.__path__):
        mod = importlib.import_module(f"{pkg.__name__}.{info.name}")
        name = getattr(mod, "NAME", None)
        if not name:
            continue
        found[name] = Strategy(
            name=name,
            library=mod.LIBRARY,
            description=mod.DESCRIPTION,
            module=mod.__name__,
            params=dict(getattr(mod, "PARAMS", {})),
        )
    return dict(sorted(found.items()))


def get(name: str) -> Strategy:
    all_ = strategies()
    if name not in all_:
        raise ChaosError(
            f"unknown client {name!r}",
            f"choose one of: {', '.join(all_)} (list them with `rabbit-chaos clients`)",
        )
    return all_[name]
