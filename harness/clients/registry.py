"""The catalogue of reference client strategies: one module per strategy, found by discovery.

A strategy module lives in :mod:`harness.clients.strategies` and defines::

    NAME = "pika-recover"            # the name users type
    LIBRARY = "pika"                 # distribution name, for the version in results.json
    DESCRIPTION = "one line the report shows"
    PARAMS = {"heartbeat": 60}       # knobs and their defaults (optional)
    SUPPORTS = ">=9.4,<11"           # library versions NAME@VERSION accepts (optional, PEP 440)
    def publisher(ctx: ClientContext) -> None: ...
    def consumer(ctx: ClientContext) -> None: ...

Adding a strategy is adding that file (and its row in the docs table); nothing else changes.

``NAME@VERSION`` (``aio-pika-robust@9.4.3``) names the same strategy run against another version
of its library, in a cached virtual environment of its own (:mod:`harness.clients.versions`).
Parsing it needs no network; the strategy process itself, started inside that environment, finds
its module without importing the other strategies (whose libraries that environment lacks).
"""

from __future__ import annotations

import importlib
import pkgutil
from dataclasses import dataclass, field, replace
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
    #: the library versions the strategy works with (its module's SUPPORTS; None: not declared)
    supports: str | None = None
    #: NAME@VERSION: the library version this strategy is pinned to (None: the harness's own)
    pinned: str | None = None

    @property
    def base_name(self) -> str:
        """The strategy's own name, without ``@VERSION``."""
        return self.name.partition("@")[0]

    @property
    def version(self) -> str:
        """The library version installed where this process runs (in a pinned strategy's own
        process: the pinned one; in the harness: the harness's)."""
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
        found[name] = _from_module(mod)
    return dict(sorted(found.items()))


def _from_module(mod: Any) -> Strategy:
    return Strategy(name=mod.NAME, library=mod.LIBRARY, description=mod.DESCRIPTION, module=mod.__name__,
                    params=dict(getattr(mod, "PARAMS", {})), supports=getattr(mod, "SUPPORTS", None))


def _builtin(name: str) -> Strategy | None:
    """The built-in strategy NAME, importing as little as possible: its module by the naming
    convention (``aio-pika-robust`` -> ``aio_pika_robust``) first, else each module in turn,
    skipping those whose library is not installed (a pinned strategy's environment has only
    its own library)."""
    from harness.clients import strategies as pkg

    guess = name.replace("-", "_")
    modules = [guess, *(i.name for i in pkgutil.iter_modules(pkg.__path__) if i.name != guess)]
    present = {i.name for i in pkgutil.iter_modules(pkg.__path__)}
    for module in modules:
        if module not in present or module.startswith("_"):
            continue
        try:
            mod = importlib.import_module(f"{pkg.__name__}.{module}")
        except ImportError:
            continue
        if getattr(mod, "NAME", None) == name:
            return _from_module(mod)
    return None


def parse(name: str) -> tuple[str, str | None]:
    """``NAME`` -> (NAME, None); ``NAME@VERSION`` -> (NAME, VERSION). One clear error for a
    malformed ``@`` (empty side, two of them, a version that is not PEP 440, a range)."""
    if "@" not in name:
        return name, None
    base, _, version = name.partition("@")
    example = "e.g. aio-pika-robust@9.4.3 (see `rabbit-chaos clients`)"
    if not base or not version or "@" in version:
        raise ChaosError(f"client {name!r} is not NAME@VERSION", f"write one strategy name and one version, {example}")
    if ":" in base:
        raise ChaosError(f"client {name!r}: @VERSION works for built-in strategies only",
                         "run your own client in an environment you install it into, with --client-cmd")
    from packaging.version import InvalidVersion, Version

    try:
        Version(version)
    except InvalidVersion:
        raise ChaosError(f"client {name!r}: {version!r} is not a version number",
                         f"give one exact release (no ranges), {example}") from None
    return base, version


def check_supported(strategy: Strategy, version: str) -> None:
    """Refuse a library version the strategy declares it does not support (its SUPPORTS)."""
    if not strategy.supports:
        return
    from packaging.specifiers import SpecifierSet

    if not SpecifierSet(strategy.supports).contains(version, prereleases=True):
        raise ChaosError(
            f"{strategy.name} does not support {strategy.library} {version}: it works with "
            f"{strategy.library} {strategy.supports}",
            f"pick a version of {strategy.library} matching {strategy.supports!r}, e.g. "
            f"{strategy.name}@{strategy.version}")


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
    """The strategy NAME (built in), ``package.module:attr`` (a user's), or ``NAME@VERSION``
    (built in, pinned to that library version: checked against its SUPPORTS, nothing built)."""
    base, version = parse(name)
    if ":" in base:
        return from_entry(base)
    found = _builtin(base)
    if found is None:
        raise ChaosError(
            f"unknown client {base!r}",
            f"choose one of: {', '.join(strategies())} (list them with `rabbit-chaos clients`)",
        )
    if version is None:
        return found
    check_supported(found, version)
    return replace(found, name=f"{base}@{version}", pinned=version)
