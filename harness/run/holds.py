"""How long a bare fault is held, and why (recorded as the timeline's ``hold_reason``).

* A user-given duration (``--fault-for``, ``fault_s``) is used as given, even when shorter than
  a silent fault needs: the checker then says "not exercised".
* A silent fault (``Fault.silences()``: the connection stays open and nothing reaches the
  client) is noticed only by the client's heartbeat, so it is held for the targeted clients'
  predicted detection window (``heartbeat_window_s`` in their ``client.start``, upper bound; a
  window with no upper bound counts as twice its lower bound) plus a margin of max(5 s, 25 %).
  With no window known (a client without a model) it gets its default hold.
* Anything else gets its class's ``default_hold_s`` (4 s; alarms 20 s).

Pure functions: the engine reads the windows after warmup (both clients have started by then).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

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


def choose_hold(fault: Fault, user_s: float | None, windows: Mapping[str, object]) -> Hold:
    """The hold of a bare ``fault``. ``windows``: proc -> its declared ``heartbeat_window_s`` (or
    None), for the clients the fault targets."""
    if user_s is not None:
        return Hold(user_s, f"user-given: {user_s:g} s")
    default = Hold(fault.default_hold_s, f"the fault's default hold: {fault.default_hold_s:g} s")
    if not fault.silences():
        return default
    uppers = {proc: u for proc, w in windows.items() if (u := window_upper(w)) is not None}
    if not uppers:
        return Hold(default.seconds, f"silent fault, but no targeted client declared a heartbeat detection window: "
                                     f"the fault's default hold, {fault.default_hold_s:g} s")
    proc, upper = max(uppers.items(), key=lambda kv: kv[1])
    margin = max(MARGIN_MIN_S, MARGIN_FRACTION * upper)
    seconds = round(upper + margin, 1)
    return Hold(seconds, f"silent fault: held for the targeted clients' detection window (upper bound {upper:g} s, "
                         f"{proc}) + margin {margin:g} s = {seconds:g} s")
