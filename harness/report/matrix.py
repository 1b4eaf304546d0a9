"""The client × fault matrix: one row per client, one column per fault, every run in its cell.

A cell can hold several runs (``--repeat``, or re-runs collected from the store). Its colour is
the worst verdict in it (fail > unknown > pass): a cell that failed once in three is a flaky
client, and the report must not average that away. The text says it too ("2/3 pass"), so the
colour is never the only carrier of the verdict.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from harness.report.view import RunView

SYMBOL = {"pass": "✓", "fail": "✗", "unknown": "?"}


@dataclass
class Cell:
    client: str
    fault: str
    runs: list[RunView] = field(default_factory=list)

    @property
    def verdict(self) -> str:
        """The worst verdict in the cell ("none" when empty)."""
        vs = {r.verdict for r in self.runs}
        for v in ("fail", "unknown", "pass"):
            if v in vs:
                return v
        return "none"

    @property
    def summary(self) -> str:
        """"pass" for one run; "2/3 pass · 1 fail" for several."""
        if len(self.runs) == 1:
            return self.runs[0].verdict
        n = {v: sum(r.verdict == v for r in self.runs) for v in ("pass", "fail", "unknown")}
        parts = [f"{n['pass']}/{len(self.runs)} pass"]
        parts += [f"{n[v]} {v}" for v in ("fail", "unknown") if n[v]]
        return " · ".join(parts)


@dataclass
class Matrix:
    clients: list[str]
    faults: list[str]
    cells: dict[tuple[str, str], Cell]

    def cell(self, client: str, fault: str) -> Cell:
        return self.cells.get((client, fault)) or Cell(client, fault)


def _ordered(values: list[str], first: str | None = None) -> list[str]:
    """Unique values in order of first appearance (``first`` leads when present)."""
    seen = list(dict.fromkeys(values))
    if first is not None and first in seen:
        seen.remove(first)
        seen.insert(0, first)
    return seen


def build(views: list[RunView]) -> Matrix:
    """Group runs into cells; clients and faults in order of first appearance, the baseline
    fault ``none`` first so every row starts with the client's behaviour without a fault."""
    cells: dict[tuple[str, str], Cell] = {}
    for v in views:
        cells.setdefault((v.client, v.fault), Cell(v.client, v.fault)).runs.append(v)
    return Matrix(clients=_ordered([v.client for v in views]), faults=_ordered([v.fault for v in views], "none"),
                  cells=cells)
