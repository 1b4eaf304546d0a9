"""When each fault actually took effect: fault windows from ``fault.start`` / ``fault.effect`` / ``fault.stop``.

The nemesis writes ``fault.start`` *before* it acts and ``fault.stop`` after the heal returned; the
effect itself (broker down, alarm visible, toxic added, queue deleted) can come seconds later on a
loaded machine -- a 3 s memory alarm whose ``rabbitmqctl`` call took 3.7 s took effect only at
its heal. ``fault.effect`` records when the harness saw the effect (``action`` "start" / "heal").
Every time judged against a fault (detection, overlap with traffic, "confirmed while the queue
did not exist", the blocked deadline during a silent fault) is measured against the effect, and
falls back to ``fault.start`` / ``fault.stop`` only when no effect was recorded (older histories, a
fault that writes none).

Pure functions over the fold's low-volume lists: O(k log k) for k fault events, never per message.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from harness.checker.fold import Fold
from harness.history import Event

#: ``fault.effect`` texts the queue-delete fault writes (see harness/faults/catalogue/broker_admin.py)
QUEUE_DELETED = "queue deleted"
QUEUE_DECLARED = "queue declared"
QUEUE_DELETE_FAULT = "queue-delete"


@dataclass(slots=True)
class FaultWindow:
    """One fault window: what the harness did and when the effect was seen.

    ``started_t``: ``fault.start`` (the harness began acting). ``effect_start_t``: the first
    ``fault.effect`` action=start of this window, None when none was written. ``heal_t``:
    ``fault.stop`` (heal done), None when the fault was never healed. ``effect_heal_t``: the last
    ``fault.effect`` action=heal of this window, None when none was written.
    ``silent``: the fault silences connections without closing them (only heartbeats notice).
    ``target``: "all", "publisher" or "consumer" (``params.target``; "all" when not given).
    ``effects``: this window's ``fault.effect`` events, in time order.
    """

    name: str
    window: int | None
    started_t: float
    effect_start_t: float | None = None
    heal_t: float | None = None
    effect_heal_t: float | None = None
    silent: bool = False
    target: str = "all"
    spec: str | None = None
    params: dict[str, Any] = field(default_factory=dict)
    effects: list[Event] = field(default_factory=list)

    @property
    def took_effect_t(self) -> float:
        """When the fault took effect: its first start effect, else ``fault.start``."""
        return self.started_t if self.effect_start_t is None else self.effect_start_t

    @property
    def effect_end_t(self) -> float | None:
        """When the effect ended: its last heal effect, else ``fault.stop`` (None: never healed)."""
        return self.heal_t if self.effect_heal_t is None else self.effect_heal_t

    @property
    def observed(self) -> bool:
        """A start effect was recorded (the harness saw the fault take effect)."""
        return self.effect_start_t is not None

    @property
    def effect_s(self) -> float | None:
        """How long the effect lasted (seconds; None: never healed). Never negative."""
        end = self.effect_end_t
        return None if end is None else max(0.0, end - self.took_effect_t)

    def targets(self, role: str | None) -> bool:
        """The fault was aimed at clients of ``role`` (every role when its target is "all")."""
        return self.target in ("all", role)


def fault_windows(idx: Fold) -> list[FaultWindow]:
    """Every fault window in ``fault.start`` order, with its effects and heal.

    Pairing: by the ``window`` field (the timeline's window index) when the events carry it; else
    by fault name, first open window of that name first (as :func:`harness.checker.lifecycle.scan`
    pairs start/stop). An effect written after its window's ``fault.stop`` (a heal observed by
    polling) still belongs to that window. A ``fault.stop`` of an already healed window, or an
    event matching no window, is ignored here (lifecycle counts unmatched stops). A ``fault.stop``
    with ``healed: false`` (its heal raised) closes its window unhealed. O(k log k) for k fault
    events."""
    starts = idx.kind("fault.start")
    stops = idx.kind("fault.stop")
    effects = idx.kind("fault.effect")
    # start before effect before stop at equal times
    evs = sorted([(e["t"], 0, e) for e in starts] + [(e["t"], 1, e) for e in effects]
                 + [(e["t"], 2, e) for e in stops], key=lambda x: (x[0], x[1]))
    out: list[FaultWindow] = []
    by_window: dict[int, FaultWindow] = {}
    open_by_name: dict[str, list[FaultWindow]] = {}
    closed_by_name: dict[str, FaultWindow] = {}

    def find(ev: Event) -> FaultWindow | None:
        w = ev.get("window")
        if isinstance(w, int) and w in by_window:
            return by_window[w]
        opened = open_by_name.get(str(ev["fault"])) or []
        if opened:
            return opened[0]
        # an effect seen after the heal returned (the broker polled back up) belongs to the window
        # that closed last; a stop never reopens one
        return closed_by_name.get(str(ev["fault"])) if ev["kind"] == "fault.effect" else None

    for t, order, ev in evs:
        if order == 0:
            params = ev.get("params")
            params = params if isinstance(params, dict) else {}
            w = ev.get("window")
            fw = FaultWindow(name=str(ev["fault"]), window=w if isinstance(w, int) else None, started_t=t,
                             silent=bool(ev.get("silent")), target=str(params.get("target") or "all"),
                             spec=ev.get("spec"), params=params)
            out.append(fw)
            if fw.window is not None:
                by_window[fw.window] = fw
            open_by_name.setdefault(fw.name, []).append(fw)
            continue
        hit = find(ev)
        if hit is None:
            continue
        if order == 1:
            hit.effects.append(ev)
            if ev.get("action") == "start":
                if hit.effect_start_t is None:
                    hit.effect_start_t = t
            elif ev.get("action") == "heal":
                hit.effect_heal_t = t
        elif hit.heal_t is None:
            # a heal that raised (``healed: false``) leaves the fault in force: the window closes for
            # pairing, but it was never healed, so nothing is judged against a heal that did not happen
            if ev.get("healed") is not False:
                hit.heal_t = t
            opened = open_by_name.get(hit.name)
            if opened and hit in opened:
                opened.remove(hit)
            closed_by_name[hit.name] = hit
    return out


def first_effect_t(windows: list[FaultWindow]) -> float | None:
    """When the first fault took effect (its first start effect, else its ``fault.start``); None:
    no fault. Each window counts from its own effect, so a fault that wrote no ``fault.effect``
    while others did is measured from its ``fault.start``."""
    return min((w.took_effect_t for w in windows), default=None)


def last_heal_t(windows: list[FaultWindow]) -> float | None:
    """When the last effect ended (heal effect, else ``fault.stop``); None: no fault, or one never healed."""
    if not windows or any(w.effect_end_t is None for w in windows):
        return None
    return max(w.effect_end_t for w in windows if w.effect_end_t is not None)


def silent_windows(idx: Fold) -> list[tuple[float, float | None, FaultWindow]]:
    """(effect start, effect end or None: never healed, window) for each silent fault: while one is
    in effect only a client's heartbeat can tell it anything (the blocked deadline extends then)."""
    return [(w.took_effect_t, w.effect_end_t, w) for w in fault_windows(idx) if w.silent]


def queue_absent_windows(idx: Fold) -> list[tuple[float, float | None]]:
    """(t deleted, t declared again or None: never) for each time the queue under test did not exist.

    From ``fault.effect`` texts "queue deleted" / "queue declared" (in time order, each deletion
    closed by the next declaration). A queue-delete fault window with no such effect falls back to
    its ``fault.start`` / ``fault.stop``. A message confirmed inside one of these spans was
    routed nowhere: "confirmed but unroutable". O(k log k)."""
    out: list[tuple[float, float | None]] = []
    for w in fault_windows(idx):
        texts = [(e["t"], str(e.get("effect", "")).lower()) for e in w.effects]
        if any(QUEUE_DELETED in s or QUEUE_DECLARED in s for _, s in texts):
            deleted: float | None = None
            for t, s in texts:
                if QUEUE_DELETED in s and deleted is None:
                    deleted = t
                elif QUEUE_DECLARED in s and deleted is not None:
                    out.append((deleted, t))
                    deleted = None
            if deleted is not None:
                out.append((deleted, None))
        elif w.name == QUEUE_DELETE_FAULT:
            out.append((w.started_t, w.heal_t))
    return sorted(out, key=lambda x: x[0])


def describe(w: FaultWindow, t0: float) -> dict[str, Any]:
    """A window as results.json ``timing.detail["faults"]`` shows it (seconds from the run's start)."""
    def rel(t: float | None) -> float | None:
        return None if t is None else t - t0

    return {"fault": w.name, "window": w.window, "start_s": rel(w.started_t), "stop_s": rel(w.heal_t),
            "effect_start_s": rel(w.effect_start_t), "effect_end_s": rel(w.effect_end_t),
            "observed": w.observed, "silent": w.silent, "target": w.target,
            "effects": [{"t_s": rel(e["t"]), "action": e.get("action"), "effect": e.get("effect"),
                         "observed": e.get("observed")} for e in w.effects]}
