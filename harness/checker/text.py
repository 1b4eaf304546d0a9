"""Small helpers that turn evidence into the sentences reasons and notes are made of."""

from __future__ import annotations

import heapq
from collections.abc import Callable, Iterable, Mapping
from typing import Any


def rel(t: float, t0: float) -> str:
    """A time as the reasons print it: seconds since the first event, e.g. ``t=+4.2s``."""
    return f"t=+{t - t0:.1f}s"


def plural(n: int, word: str, many: str | None = None) -> str:
    return f"{n} {word if n == 1 else (many or word + 's')}"


def ordered_examples(ids: Iterable[str], first_invoke: Callable[[str], Mapping[str, Any] | None],
                     k: int) -> list[str]:
    """The k first ids in publish order (publisher name, then first-invoke time, then id: a total
    order, so the examples never depend on a set's iteration order); unpublished ids last, by
    name. ``first_invoke(i)``: the id's first publish.invoke, or None. O(m log k) for m ids.
    """

    def key(i: str) -> tuple[int, str, float, str]:
        ev = first_invoke(i)
        if ev is None:
            return (1, "", 0.0, i)
        return (0, ev["proc"], ev["t"], i)

    return heapq.nsmallest(k, ids, key=key)


def eg(examples: list[str], total: int) -> str:
    """``(e.g. p0-17, p0-18, …)``; empty when there are no examples."""
    if not examples:
        return ""
    more = ", …" if total > len(examples) else ""
    return f" (e.g. {', '.join(examples)}{more})"
