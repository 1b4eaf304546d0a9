"""Small, total formatting helpers for the report.

Every function here accepts whatever a results.json may hold (including nothing, a string where a
number was expected, or a value from a newer harness) and returns display text, so one odd run
never stops the whole report from rendering: the report is how people see that a run was odd.
"""

from __future__ import annotations

import math
import re
import shlex
from typing import Any

_SLUG = re.compile(r"[^A-Za-z0-9_-]+")


def num(x: Any) -> float | None:
    """A finite float, or None for anything that is not a plain number (bools included)."""
    if isinstance(x, bool) or not isinstance(x, int | float):
        return None
    f = float(x)
    return f if math.isfinite(f) else None


def count(x: Any) -> int | None:
    """A count as int, or None when absent or not a whole number."""
    f = num(x)
    return int(f) if f is not None and f.is_integer() else None


def seconds(x: Any, missing: str = "—") -> str:
    """Seconds with a precision that suits the size (ms below 1 s), or ``missing``."""
    f = num(x)
    if f is None:
        return missing
    if abs(f) < 1:
        return f"{f * 1000:.0f} ms"
    if abs(f) < 100:
        return f"{f:.2f} s"
    return f"{f:.0f} s"


def text(x: Any) -> str:
    """Display text for any JSON value (None shows as an em dash)."""
    if x is None:
        return "—"
    if isinstance(x, float):
        return f"{x:g}"
    return str(x)


def cli_number(x: Any) -> str | None:
    """A number as the CLI would take it back (``100.0`` -> ``100``), or None."""
    f = num(x)
    if f is None:
        return None
    return str(int(f)) if f.is_integer() else repr(f)


def slug(s: str) -> str:
    """An anchor-safe slug: letters, digits, ``_`` and ``-`` only (never empty)."""
    return _SLUG.sub("-", s).strip("-") or "x"


def shell_join(argv: list[str]) -> str:
    """A command line a user can paste into a POSIX shell, whatever the names contain."""
    return " ".join(shlex.quote(a) for a in argv)
