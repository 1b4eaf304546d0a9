"""Fault lookup by name, and parsing of "name:key=value,key=value" specs from users.

Faults are discovered from the modules in :mod:`harness.faults.catalogue` (every ``Fault``
subclass with a ``name``), so adding a fault is adding its file, its test and its docs row.
"""

from __future__ import annotations

import dataclasses
import importlib
import math
import pkgutil
import typing
from functools import cache
from typing import Any

from harness.errors import ChaosError
from harness.faults.base import Fault, NoFault


@cache
def faults() -> dict[str, type[Fault]]:
    from harness.faults import catalogue

    found: dict[str, type[Fault]] = {NoFault.name: NoFault}
    for info in pkgutil.iter_modules(catalogue.__path__):
        mod = importlib.import_module(f"{catalogue.__name__}.{info.name}")
        for obj in vars(mod).values():
            if isinstance(obj, type) and issubclass(obj, Fault) and obj.name and obj.__module__ == mod.__name__:
                found[obj.name] = obj
    return dict(sorted(found.items()))


#: Bounds for every numeric fault parameter (README, "Errors and exit codes"): finite, and at most
#: a day for durations (by unit suffix), 1e15 for anything else (the disk alarm's byte limit).
#: Beyond them a value is a typo that would overflow a timer or the proxy after the broker boot.
_MAX_BY_SUFFIX = (("_ms", 86_400_000), ("_us", 86_400_000_000), ("_s", 86_400))
_MAX_OTHER = 10**15


def _bounded(value: float, raw: str, fault: str, key: str) -> Any:
    limit = next((m for suffix, m in _MAX_BY_SUFFIX if key.endswith(suffix)), _MAX_OTHER)
    if not math.isfinite(value) or abs(value) > limit:
        raise ChaosError(f"fault {fault!r}: {key}={raw!r} is out of bounds",
                         f"give a finite number of at most {limit:,}" + (" (one day)" if limit != _MAX_OTHER else ""))
    return value


def _coerce(raw: str, typ: Any, fault: str, key: str) -> Any:
    origin = typing.get_origin(typ)
    if origin is typing.Literal:
        choices = typing.get_args(typ)
        if raw not in choices:
            raise ChaosError(f"fault {fault!r}: {key}={raw!r} is not one of {', '.join(map(str, choices))}",
                             f"use e.g. {fault}:{key}={choices[0]}")
        return raw
    try:
        if typ in (bool, "bool"):
            if raw.lower() not in ("1", "0", "true", "false", "yes", "no"):
                raise ValueError(raw)
            return raw.lower() in ("1", "true", "yes")
        if typ in (int, "int"):
            return _bounded(int(raw), raw, fault, key)
        if typ in (float, "float"):
            return _bounded(float(raw), raw, fault, key)
    except ValueError:
        name = typ if isinstance(typ, str) else typ.__name__
        raise ChaosError(f"fault {fault!r}: {key}={raw!r} is not a valid {name}",
                         f"give a {name}, e.g. {fault}:{key}=1") from None
    return raw


def parse(spec: str) -> Fault:
    """Build a fault from "name" or "name:key=value,key=value"; one clear error for bad input."""
    name, _, rest = spec.partition(":")
    name = name.strip()
    all_ = faults()
    if name not in all_:
        raise ChaosError(f"unknown fault {name!r}",
                         f"choose one of: {', '.join(all_)} (details: `rabbit-chaos faults`)")
    cls = all_[name]
    hints = typing.get_type_hints(cls)
    known = {f.name for f in dataclasses.fields(cls)}
    kwargs: dict[str, Any] = {}
    for item in filter(None, (p.strip() for p in rest.split(","))):
        key, eq, raw = item.partition("=")
        if not eq:
            raise ChaosError(f"fault {name!r}: parameter {item!r} has no value", f"write it as {name}:{item}=VALUE")
        if key not in known:
            raise ChaosError(f"fault {name!r} has no parameter {key!r}",
                             f"its parameters: {', '.join(sorted(known)) or 'none'}")
        kwargs[key] = _coerce(raw, hints[key], name, key)
    fault = cls(**kwargs)
    check = getattr(fault, "validate", None)
    if check:
        check()
    return fault
