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
from typing import Any

from harness.errors import ChaosError


@dataclass(frozen=True)
class Strategy:
    name: str
    library: str
    description: str
    module: str
    params: dict[str, Any] = field(default_factory=dict)
    attr: str | None = None  # user clients given as "package.module:attr"

    @property
    def version(self) -> str:
        try:
            return metadata.version(self.library)
        except metadata.PackageNotFoundError:
            return "unknown"

    def load(self) -> Any:
        """The object whose ``publisher``/``consumer`` functions run the roles."""
        mod = importlib.import_module(self.module)
        return getattr(mod, self.attr) if self.attr else mod


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


def from_entry(entry: str) -> Strategy:
    """A user's Python client, "package.module:attr": attr (a module, class or object) has
    ``publisher(ctx)`` and ``consumer(ctx)``, and optionally LIBRARY, DESCRIPTION, PARAMS."""
    module, _, attr = entry.partition(":")
    try:
        obj: Any = getattr(importlib.import_module(module), attr) if attr else importlib.import_module(module)
    except (ImportError, AttributeError) as exc:
        raise ChaosError(f"cannot load client {entry!r}: {exc}",
                         "give an importable package.module:attr (is it on PYTHONPATH / installed?)") from None
    missing = [r for r in ("publisher", "consumer") if not callable(getattr(obj, r, None))]
    if missing:
        raise ChaosError(f"client {entry!r} has no {' or '.join(missing)} function",
                         "define publisher(ctx) and consumer(ctx) (see docs/client-protocol.md)")
    return Strategy(name=entry, library=getattr(obj, "LIBRARY", "custom"),
                    description=getattr(obj, "DESCRIPTION", f"user client {entry}"), module=module,
                    params=dict(getattr(obj, "PARAMS", {})), attr=attr or None)


def command_for(command_line: str) -> list[str]:
    """Split a user's client command line and check its program exists (one clear error if not)."""
    import os
    import shlex
    import shutil

    try:
        argv = shlex.split(command_line)
    except ValueError as exc:
        raise ChaosError(f"cannot parse --client-cmd {command_line!r}: {exc}", "quote it as a shell would") from None
    if not argv:
        raise ChaosError("--client-cmd is empty", 'give the command that starts your client, e.g. "node client.js"')
    prog = argv[0]
    if shutil.which(prog) is None and not ("/" in prog and os.access(prog, os.X_OK)):
        raise ChaosError(f"client command {prog!r} not found or not executable",
                         "give a program on PATH or a path to an executable")
    return argv


def get(name: str) -> Strategy:
    if ":" in name:
        return from_entry(name)
    all_ = strategies()
    if name not in all_:
        raise ChaosError(
            f"unknown client {name!r}",
            f"choose one of: {', '.join(all_)} (list them with `rabbit-chaos clients`)",
        )
    return all_[name]
