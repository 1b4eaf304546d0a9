"""Comparison charts across runs: recovery time per client per fault, loss per client.

These are laid out here and drawn as inline SVG by the template, not by the chart library: a
handful of horizontal bars needs no script, reads the same in every browser (and in print), and
the geometry can be unit-tested. A client that never recovered is not "no bar": it is the worst
result, so it gets a full-width hatched bar labelled "never recovered".
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field

from harness.report.fmt import seconds
from harness.report.matrix import Matrix
from harness.report.view import RunView

#: Okabe–Ito: distinguishable with the common colour-vision deficiencies
PALETTE = ("#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#F0E442", "#000000")
LOST_COLOR, STRANDED_COLOR = "#C0392B", "#E69F00"
#: lost messages the client does not owe (the broker's, or the queue type's: findings' owner)
OWED_COLOR, OWED_LABEL = "#7F8C8D", "lost, not the client's (broker / queue type)"

WIDTH, LABEL_W, BAR_X, BAR_MAX = 960, 190, 200, 420
#: longest bar label drawn (the full name is in the tooltip)
LABEL_CHARS = 28
ROW_H, BAR_H, GROUP_H, PAD = 20, 14, 24, 8


@dataclass
class Bar:
    label: str
    value: float | None  # None: nothing to draw
    display: str  # the number as text, always shown next to the bar
    color: str
    tooltip: str = ""
    never: bool = False  # draw full width, hatched: "never recovered"
    # layout, filled by :func:`layout`
    y: float = 0.0
    w: float = 0.0

    @property
    def short(self) -> str:
        return _short(self.label)


@dataclass
class Group:
    label: str
    bars: list[Bar] = field(default_factory=list)
    y: float = 0.0

    @property
    def short(self) -> str:
        return _short(self.label, 2 * LABEL_CHARS)


def _short(s: str, n: int = LABEL_CHARS) -> str:
    return s if len(s) <= n else s[: n - 1] + "…"


@dataclass
class BarChart:
    id: str
    title: str
    caption: str
    legend: list[tuple[str, str]]
    groups: list[Group]
    height: float = 0.0
    width: int = WIDTH
    label_w: int = LABEL_W
    bar_x: int = BAR_X
    bar_max: int = BAR_MAX
    bar_h: int = BAR_H

    @property
    def empty(self) -> bool:
        return not any(g.bars for g in self.groups)


def client_colors(clients: list[str]) -> dict[str, str]:
    return {c: PALETTE[i % len(PALETTE)] for i, c in enumerate(clients)}


def layout(chart: BarChart) -> BarChart:
    """Place groups and bars top to bottom and scale bar widths to the largest value."""
    top = max((b.value for g in chart.groups for b in g.bars if b.value is not None and not b.never), default=0.0)
    scale = chart.bar_max / top if top > 0 else 0.0
    y = float(PAD)
    for g in chart.groups:
        g.y = y + 15
        y += GROUP_H
        for b in g.bars:
            b.y = y + (ROW_H - BAR_H) / 2
            if b.never:
                b.w = float(chart.bar_max)
            elif b.value is not None:
                b.w = max(b.value * scale, 1.0 if b.value > 0 else 0.0)
            y += ROW_H
        y += PAD
    chart.height = y
    return chart


def recovery_chart(matrix: Matrix, colors: dict[str, str]) -> BarChart:
    """Median heal → traffic-flowing time of each client under each fault (``none`` has no heal)."""
    groups = []
    for fault in matrix.faults:
        g = Group(fault)
        for client in matrix.clients:
            runs = [r for r in matrix.cell(client, fault).runs if r.had_fault]
            if not runs:
                continue
            g.bars.append(_recovery_bar(client, runs, colors[client]))
        if g.bars:
            groups.append(g)
    return layout(BarChart(
        "chart-recovery", "Recovery time per client per fault",
        "Heal → first successful publish and delivery (the later of the two). Median over repeats; "
        "hatched: no traffic flowed again after the heal.",
        [(c, colors[c]) for c in matrix.clients], groups))


def _recovery_bar(client: str, runs: list[RunView], color: str) -> Bar:
    vals = [r.recovery_s for r in runs if r.recovery_s is not None]
    never = sum(r.never_recovered for r in runs)
    n = len(runs)
    if vals:
        med = statistics.median(vals)
        display = seconds(med) + (f" (median of {len(vals)})" if len(vals) > 1 else "")
        if never:
            display += f", {never}/{n} never recovered"
        tip = ", ".join(seconds(v) for v in vals)
        return Bar(client, med, display, color, tooltip=f"{client}: {tip}")
    if never:
        return Bar(client, None, "never recovered" + (f" ({never}/{n})" if n > 1 else ""), color,
                   tooltip=f"{client}: no traffic flowed after the heal", never=True)
    return Bar(client, None, "no data", color, tooltip=f"{client}: the run recorded no recovery time")


def loss_chart(matrix: Matrix) -> BarChart:
    """Messages lost (told "sent", never seen again) and stranded (only the drain found them),
    summed over every run of each client. A loss the broker or the queue type owes (a quorum queue
    losing a confirmed message under a single-node fault; a classic queue's node down) gets its own
    grey bar, shown only when some run has one: the client's lost bar never carries it."""
    groups = []
    owed = any(r.lost_owed for c in matrix.cells.values() for r in c.runs)
    for client in matrix.clients:
        runs = [r for f in matrix.faults for r in matrix.cell(client, f).runs]
        g = Group(client)
        bars = [("lost", "lost_by_client", LOST_COLOR), ("stranded", "stranded", STRANDED_COLOR)]
        if owed:
            bars.insert(1, (OWED_LABEL, "lost_owed", OWED_COLOR))
        for label, attr, color in bars:
            vals = [getattr(r, attr) for r in runs if getattr(r, attr) is not None]
            if not vals:
                g.bars.append(Bar(label, None, "no data", color))
                continue
            total = sum(vals)
            worst = [f"{r.fault}: {getattr(r, attr)}" for r in runs if getattr(r, attr)]
            g.bars.append(Bar(label, float(total), f"{total} over {len(vals)} run{'s' * (len(vals) != 1)}", color,
                              tooltip=f"{client} {label}: " + (", ".join(worst) or "none")))
        groups.append(g)
    return layout(BarChart(
        "chart-loss", "Loss per client",
        "Lost: the application was told a publish succeeded and no one saw the message again. Stranded: "
        "safe in the broker, but only the harness's drain got it back. Summed over all of the client's runs."
        + (f" {OWED_LABEL.capitalize()}: lost where the broker broke a quorum queue's promise, or a classic "
           "queue's only node went down: not the client's doing, so not in its lost bar." if owed else ""),
        [("lost", LOST_COLOR), *([(OWED_LABEL, OWED_COLOR)] if owed else []), ("stranded", STRANDED_COLOR)],
        groups))
