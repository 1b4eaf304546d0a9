"""The client × fault matrix: one row per client, one column per fault, every run in its cell.

Rows are grouped by the library under test, then strategy, then library version (then the broker
setup: queue type and node count, when the runs differ in it), so a library's versions sit side by
side (``aio-pika-robust@9.4.3`` above ``aio-pika-robust@10.2.1``). A client label run against
several library versions without an ``@version`` in its name (stores merged
from machines with different installs) is split into one row per version rather than averaged
into one cell.

A cell can hold several runs (``--repeat``, or re-runs collected from the store). Its colour is
the worst verdict in it (fail > unknown > pass): a cell that failed once in three is a flaky
client, and the report must not average that away. The text says it too ("2/3 pass"), so the
colour is never the only carrier of the verdict.
"""

from __future__ import annotations

import re
import statistics
from collections import Counter
from dataclasses import dataclass, field

from harness.report.fmt import seconds
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

    @property
    def headlines(self) -> str:
        """What decided the runs that did not pass: "stranded" or "2× not exercised · stranded"."""
        n = Counter(r.headline for r in self.runs if r.verdict != "pass" and r.headline)
        return " · ".join(f"{k}" if c == 1 else f"{c}× {k}" for k, c in n.most_common())

    @property
    def lost(self) -> str:
        """Messages lost over the cell's runs ("—" when no run recorded it)."""
        vals = [r.lost for r in self.runs if r.lost is not None]
        return str(sum(vals)) if vals else "—"

    @property
    def lost_owed(self) -> int:
        """Of the cell's lost messages, those the broker or the queue type owes (not the client)."""
        return sum(r.lost_owed or 0 for r in self.runs)

    @property
    def duplicated(self) -> str:
        vals = [r.duplicated for r in self.runs if r.duplicated is not None]
        return str(sum(vals)) if vals else "—"

    @property
    def had_fault(self) -> bool:
        return any(r.had_fault for r in self.runs)

    @property
    def detection(self) -> str:
        """The median detection over the cell's runs ("—" when none noticed)."""
        vals = [r.detection_s for r in self.runs if r.detection_s is not None]
        return seconds(statistics.median(vals)) if vals else "—"

    @property
    def recovery(self) -> str:
        """The median recovery, and how many runs never recovered ("never" when none did)."""
        vals = [r.recovery_s for r in self.runs if r.recovery_s is not None]
        never = sum(r.never_recovered for r in self.runs)
        if not vals:
            return "never" if never else "—"
        text = seconds(statistics.median(vals))
        return f"{text}, never {never}/{len(self.runs)}" if never else text


@dataclass
class Row:
    """One matrix row: its key (the client label, or ``label@version`` when split by version)."""

    key: str
    library: str
    strategy: str
    version: str
    #: the runs' queue type ("—": not recorded) and broker setup label ("quorum queue · 3 nodes")
    queue_type: str = "—"
    setup: str = ""


@dataclass
class Group:
    """The rows of one library (its strategies, each with its versions in version order)."""

    library: str
    rows: list[Row]


@dataclass
class Matrix:
    clients: list[str]  # row keys, in display order
    faults: list[str]
    cells: dict[tuple[str, str], Cell]
    groups: list[Group] = field(default_factory=list)

    def cell(self, client: str, fault: str) -> Cell:
        return self.cells.get((client, fault)) or Cell(client, fault)

    @property
    def libraries(self) -> list[str]:
        return [g.library for g in self.groups]

    def queue_types(self) -> list[str]:
        """Every queue type the rows ran against, for the queue type filter (sorted; "—": not recorded)."""
        return sorted({r.queue_type for g in self.groups for r in g.rows})

    def versions(self) -> list[tuple[str, str]]:
        """Every (library, version) pair, for the version filter."""
        return list(dict.fromkeys((r.library, r.version) for g in self.groups for r in g.rows))


def version_key(version: str) -> tuple[tuple[int, int | str], ...]:
    """Natural version order: 9.4.3 < 9.5.5 < 10.2.1; unknown ("—") last."""
    if version in ("", "—"):
        return ((2, ""),)
    return tuple((0, int(p)) if p.isdigit() else (1, p) for p in re.findall(r"\d+|[A-Za-z]+", version))


def _ordered(values: list[str], first: str | None = None) -> list[str]:
    """Unique values in order of first appearance (``first`` leads when present)."""
    seen = list(dict.fromkeys(values))
    if first is not None and first in seen:
        seen.remove(first)
        seen.insert(0, first)
    return seen


def build(views: list[RunView]) -> Matrix:
    """Group runs into cells and rows into libraries. Libraries and strategies in order of first
    appearance (the matrix command's order), versions in version order; faults in order of first
    appearance, the baseline fault ``none`` first so every row starts with the client's behaviour
    without a fault."""
    cells: dict[tuple[str, str], Cell] = {}
    rows: dict[str, Row] = {}
    for v in views:
        key = v.row or v.client
        cells.setdefault((key, v.fault), Cell(key, v.fault)).runs.append(v)
        rows.setdefault(key, Row(key, v.library, v.strategy, v.library_version, v.queue_type, v.setup))
    libs = _ordered([r.library for r in rows.values()])
    strategies = _ordered([r.strategy for r in rows.values()])
    groups = []
    for lib in libs:
        mine = [r for r in rows.values() if r.library == lib]
        mine.sort(key=lambda r: (strategies.index(r.strategy), version_key(r.version), r.setup))
        groups.append(Group(lib, mine))
    return Matrix(clients=[r.key for g in groups for r in g.rows], faults=_ordered([v.fault for v in views], "none"),
                  cells=cells, groups=groups)
