"""How long a bare fault is held, and why (recorded as the timeline's ``hold_reason``).

* A user-given duration (``--fault-for``, ``fault_s``) is used as given, even when shorter than
  a silent fault needs: the checker then says "not exercised".
* A silent fault (``Fault.silences()``: the connection stays open and nothing reaches the
  client) is noticed only by the client's heartbeat, so it is held for the targeted clients'
  predicted detection window (``heartbeat_window_s`` in their ``client.start``, or the window its
  library's model predicts from ``heartbeat_s``: upper bound; a window with no upper bound counts
  as twice its lower bound) plus a margin of max(5 s, 25 %) -- or the fault's
  ``hold_after_detection_s`` when larger (``node-pause``: the client's failover is judged from its
  loss, for the checker's ``max_failover_s``). A client with no window gets the
  bound the checker uses for "not exercised" (:func:`harness.clients.heartbeat.exercise_bound`:
  two missed heartbeats of an unknown library, ``max_block_s`` with heartbeats off), so a default
  hold is never one the checker then calls too short. With no client.start at all: the default.
* Anything else gets its class's ``default_hold_s`` (4 s; alarms 20 s).

Pure functions: the engine reads the windows after warmup (both clients have started by then).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from harness.clients.heartbeat import client_window, exercise_bound
from harness.faults.base import Fault

MARGIN_MIN_S = 5.0
MARGIN_FRACTION = 0.25


@dataclass(frozen=True)
class Hold:
    seconds: float
    reason: str


def window_upper(window: object) -> float | None:
    """The upper bound of a declared ``heartbeat_window_s`` ([lo, hi|null]); 2 × lo when hi is
    null; None when the window is absent or malformed."""
    if not isinstance(window, list | tuple) or len(window) != 2:
        return None
    lo, hi = window
    ok = [isinstance(x, int | float) and not isinstance(x, bool) and math.isfinite(x) and x > 0 for x in (lo, hi)]
    if ok[1]:
        return float(hi)
    if hi is None and ok[0]:
        return 2 * float(lo)
    return None


def silent_bound(start: Mapping[str, Any], max_block_s: float) -> float:
    """How long a silent fault must last for this client (its ``client.start``): the upper bound
    of its detection window (2 × lower when open-ended), else the checker's exercise bound."""
    window = client_window(start)
    if window is not None:
        upper = window_upper(list(window))
        if upper is not None:
            return upper
    return exercise_bound(start, max_block_s)[0]


def choose_hold(fault: Fault, user_s: float | None, starts: Mapping[str, Mapping[str, Any] | None],
                max_block_s: float) -> Hold:
    """The hold of a bare ``fault``. ``starts``: proc -> its ``client.start`` event (None: not seen),
    for the clients the fault targets; ``max_block_s``: the run's blocked deadline."""
    if user_s is not None:
        return Hold(user_s, f"user-given: {user_s:g} s")
    default = Hold(fault.default_hold_s, f"the fault's default hold: {fault.default_hold_s:g} s")
    if not fault.silences():
        return default
    bounds = {proc: silent_bound(start, max_block_s) for proc, start in starts.items() if start}
    if not bounds:
        return Hold(default.seconds, f"silent fault, but no targeted client wrote client.start: "
                                     f"the fault's default hold, {fault.default_hold_s:g} s")
    proc, upper = max(bounds.items(), key=lambda kv: kv[1])
    margin = max(MARGIN_MIN_S, MARGIN_FRACTION * upper, fault.hold_after_detection_s)
    seconds = round(upper + margin, 1)
    return Hold(seconds, f"silent fault: held for the targeted clients' detection bound ({upper:g} s, "
                         f"{proc}) + margin {margin:g} s = {seconds:g} s")
