"""Detection and recovery times around the fault timeline.

* **Detection**: first ``fault.start`` -> the first event after it showing a client noticed
  (conn.lost, conn.blocked, consume.cancelled, publish.fail, publish.info); overall, per role, per
  process. None when there was no fault or no client noticed.
* **Recovery**: last ``fault.stop`` -> first success after it: per role, the publishers' first
  publish.ok and the consumers' first deliver; overall the later of the roles that had one. None
  when there was no fault, a fault was never healed, or nothing succeeded afterwards (loss or
  stranding then shows it; ``detail["recovered"]`` says False).

Complexity: O(k) over notice events plus O(log n) bisects; the per-process recovery scan walks
forward from the last heal only until every process has succeeded (O(n) worst case, one pass).
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Sequence
from typing import Any

from harness.checker.fold import Fold
from harness.checker.lifecycle import Lifecycle
from harness.checker.model import Timing
from harness.history import Event

NOTICE_KINDS = ("conn.lost", "conn.blocked", "consume.cancelled")
#: seconds a measured detection may fall outside its predicted window before it is called early or
#: late: ``fault.start`` is written before the fault acts (an API call, a signal) and a loaded
#: machine runs timers late; a bug report must not hinge on a few milliseconds
PREDICTION_SLACK_S = 1.0


def _t(ev: Event) -> float:
    return ev["t"]


def _first_after(events: Sequence[Event], t: float, kind: str, want: set[str]) -> tuple[
        float | None, dict[str, float]]:
    """First ``kind`` event after t overall, and per process until all of ``want`` are seen."""
    first: float | None = None
    per: dict[str, float] = {}
    for k in range(bisect_right(events, t, key=_t), len(events)):
        ev = events[k]
        if ev["kind"] != kind:
            continue
        if first is None:
            first = ev["t"]
        p = ev["proc"]
        if p not in per:
            per[p] = ev["t"]
            if want <= per.keys():
                break
    return first, per


def predict_detection(idx: Fold, t_fault: float, det_proc: dict[str, dict[str, Any]]) -> dict[str, Any] | None:
    """The detection time each client's heartbeat predicts, beside the measured one.

    Only when the first fault silences the connection (its ``fault.start`` says ``silent``): a
    fault that closes or resets it is noticed at once, whatever the heartbeat. Per process: the
    window its ``client.start`` declared (``heartbeat_window_s``, see
    :mod:`harness.clients.heartbeat`), the measured time, and whether that fell inside, was
    early (something other than the heartbeat told it first), or late (past the latest time its
    library promises: worth a bug report), each with ``PREDICTION_SLACK_S`` of slack. Processes
    the fault did not target are left out. O(c) for c clients."""
    first = next((ev for ev in idx.kind("fault.start") if ev["t"] == t_fault), None)
    if first is None or not first.get("silent"):
        return None
    params = first.get("params")
    target = params.get("target", "all") if isinstance(params, dict) else "all"
    per: dict[str, Any] = {}
    for ev in idx.kind("client.start"):
        if target not in ("all", ev["role"]) or ev["proc"] in per:
            continue
        window = ev.get("heartbeat_window_s")
        measured = det_proc.get(ev["proc"], {}).get("detection_s")
        row: dict[str, Any] = {"role": ev["role"], "library": ev.get("library"),
                               "heartbeat_s": ev.get("heartbeat_s"), "window_s": window,
                               "measured_s": measured}
        if isinstance(window, list) and len(window) == 2 and measured is not None:
            lo, hi = window
            slack = PREDICTION_SLACK_S
            row["within"] = ("early" if measured < lo - slack
                             else "late" if hi is not None and measured > hi + slack else "inside")
        per[ev["proc"]] = row
    return {"fault": first.get("fault"), "by_proc": per}


def prediction_notes(timing: Timing) -> list[str]:
    """Sentences for the processes that noticed a silent fault later than their heartbeat
    predicts (a library bug or a blocked I/O loop: either way worth reporting). Never a verdict
    change: a late detection loses nothing by itself; the message counts judge that."""
    pred = timing.detail.get("heartbeat_prediction") or {}
    notes = []
    for proc, row in pred.get("by_proc", {}).items():
        if row.get("within") == "late":
            notes.append(f"{proc} ({row['library']}, heartbeat {row['heartbeat_s']} s) noticed the silent fault "
                         f"{pred.get('fault')} after {row['measured_s']:.1f} s, later than its heartbeat predicts "
                         f"(at most {row['window_s'][1]:.1f} s)")
    return notes


def measure(idx: Fold, life: Lifecycle) -> Timing:
    timing = Timing()
    detail: dict[str, Any] = {
        "faults": [{"fault": name, "start_s": a - idx.t0, "stop_s": None if b is None else b - idx.t0}
                   for name, a, b in life.faults],
    }
    timing.detail = detail
    if not life.faults:
        return timing
    t_fault = min(a for _, a, _ in life.faults)
    detail["first_fault_start_s"] = t_fault - idx.t0

    # detection
    notices = [ev for k in NOTICE_KINDS for ev in idx.kind(k) if ev["t"] >= t_fault]
    notices += [ev for ev in idx.notices if ev["t"] >= t_fault]
    notices.sort(key=_t)
    det_role: dict[str, float | None] = {"publisher": None, "consumer": None}
    det_proc: dict[str, dict[str, Any]] = {}
    for ev in notices:
        d = ev["t"] - t_fault
        role = ev["role"]
        if det_role.get(role) is None:
            det_role[role] = d
        if ev["proc"] not in det_proc:
            det_proc[ev["proc"]] = {"detection_s": d, "by": ev["kind"]}
    timing.detection_s = (notices[0]["t"] - t_fault) if notices else None
    timing.detection_by_role = det_role
    detail["detection_by_proc"] = det_proc
    predicted = predict_detection(idx, t_fault, det_proc)
    if predicted is not None:
        detail["heartbeat_prediction"] = predicted

    # recovery
    if any(b is None for _, _, b in life.faults):
        detail["recovered"] = False
        detail["unhealed"] = sorted({name for name, _, b in life.faults if b is None})
        timing.recovery_by_role = {"publisher": None, "consumer": None}
        return timing
    t_heal = max(b for _, _, b in life.faults if b is not None)
    detail["last_fault_stop_s"] = t_heal - idx.t0
    running = [p for p in life.clients() if p.end_t is None or p.end_t > t_heal]
    pubs = {p.name for p in running if p.role == "publisher"}
    cons = {p.name for p in running if p.role == "consumer"}
    first_ok, ok_proc = _first_after(idx.events, t_heal, "publish.ok", pubs)
    first_dl, dl_proc = _first_after(idx.events, t_heal, "deliver", cons)
    rec_role: dict[str, float | None] = {
        "publisher": None if first_ok is None else first_ok - t_heal,
        "consumer": None if first_dl is None else first_dl - t_heal,
    }
    timing.recovery_by_role = rec_role
    have = [v for v in rec_role.values() if v is not None]
    timing.recovery_s = max(have) if have else None
    detail["recovered"] = bool(have)
    detail["recovery_by_proc"] = {p: t - t_heal for p, t in {**ok_proc, **dl_proc}.items()}
    return timing
