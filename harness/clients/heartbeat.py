"""When should a client notice a silent peer? The detection time its heartbeat setting predicts.

A fault that silences a connection without closing it (a blackhole, a paused broker, a held
proxy) is noticed only by the client's heartbeat logic, and every library implements that
differently. The checker shows the measured detection time beside the window predicted here,
so a report can say "pika noticed after 131 s; its heartbeat of 60 s predicts 65-130 s": a
number outside the window is a bug report, a number inside it is a configuration question.

Each model is read from the library's source (versions pinned in pyproject.toml) and assumes
traffic flowed until the fault started (the harness's workloads keep it flowing):

pika 1.x (``pika/heartbeat.py``)
    A timer fires every ``heartbeat + 5`` s and closes the connection when no byte arrived
    during the whole previous interval. The fault lands somewhere inside an interval, so the
    first fully silent interval ends between ``heartbeat + 5`` and ``2 × (heartbeat + 5)`` s.
aio-pika (aiormq 6, ``connection.py``)
    The heartbeat task wakes every ``max(1, heartbeat // 2)`` s and cancels the reader once no
    frame arrived for ``(heartbeat + 1) × 3`` s: ``3(hb + 1)`` to ``3(hb + 1) + max(1, hb // 2)``.
aioamqp 0.15 (``protocol.py``)
    A timer closes the connection ``2 × heartbeat`` s after the last received byte. The broker
    sends a heartbeat every ``heartbeat / 2`` s when idle, so the last byte is at most that
    long before the fault: ``1.5 × hb`` to ``2 × hb``.
kombu (py-amqp 5, ``Connection.heartbeat_tick``)
    Raises "Too many heartbeats missed" once ``2 × heartbeat`` s passed without a received
    byte, but only when the application calls ``heartbeat_check()``: the lower bound is
    ``1.5 × hb``; there is no upper bound the library guarantees (None).

Any other library (a user's client, the Node example) has no model: None.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any

Window = tuple[float, float | None]


def _pika(hb: float) -> Window:
    return hb + 5, 2 * (hb + 5)


def _aiormq(hb: float) -> Window:
    grace = (hb + 1) * 3
    return grace, grace + max(1, hb // 2)


def _aioamqp(hb: float) -> Window:
    return 1.5 * hb, 2 * hb


def _py_amqp(hb: float) -> Window:
    return 1.5 * hb, None


#: distribution name (what a strategy's LIBRARY says) -> model
MODELS: dict[str, Callable[[float], Window]] = {
    "pika": _pika,
    "aio-pika": _aiormq,
    "aiormq": _aiormq,
    "aioamqp": _aioamqp,
    "kombu": _py_amqp,
    "amqp": _py_amqp,
}


def detection_window(library: str, heartbeat_s: object) -> Window | None:
    """(earliest, latest or None) seconds after a connection goes silent at which ``library``
    with ``heartbeat_s`` closes it; None when heartbeats are off (0/None: the client may never
    notice), the setting is not a number, or the library has no model."""
    model = MODELS.get(library)
    try:
        hb = float(heartbeat_s)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    if model is None or hb <= 0:
        return None
    lo, hi = model(hb)
    return round(lo, 3), None if hi is None else round(hi, 3)


def client_window(start: Mapping[str, Any]) -> Window | None:
    """The detection window a ``client.start`` event declares (``heartbeat_window_s``), else the one
    its library's model predicts from ``heartbeat_s``; None when neither gives one (heartbeats
    off, or an unknown library)."""
    w = start.get("heartbeat_window_s")
    if isinstance(w, list | tuple) and len(w) == 2 and _finite(w[0]):
        return float(w[0]), float(w[1]) if _finite(w[1]) else None
    return detection_window(str(start.get("library")), start.get("heartbeat_s"))


def exercise_bound(start: Mapping[str, Any], max_block_s: float) -> tuple[float, str, str]:
    """How long a silent fault must last before it can show anything about this client, as
    (seconds, what the bound is as a phrase, the advice when a fault was shorter).

    One definition for both sides of a run: the engine holds a silent fault past it by default
    (:mod:`harness.run.holds`) and the checker calls a shorter one "not exercised"
    (:mod:`harness.checker.rules.not_exercised`).

    * a window (declared, or predicted from ``heartbeat_s``): its upper bound; the lower bound + 1 s
      when the library promises no latest time (py-amqp);
    * a heartbeat but no model (an unknown library): 2 × heartbeat (AMQP 0-9-1: a peer is dead after
      two missed heartbeats);
    * heartbeats off: such a client cannot notice silence at all; what a silent fault can still
      show is whether its waiting calls block past ``max_block_s``, so that is the bound.
    """
    lib = str(start.get("library") or start.get("proc") or "the client")
    hb = float(start["heartbeat_s"]) if _finite(start.get("heartbeat_s")) else None
    window = client_window(start)
    if window is not None:
        lo, hi = window
        at = f" at heartbeat {hb:g} s" if hb is not None else ""
        if hi is None:
            return lo + 1.0, f"{lib}'s detection window ({lo:g} s or later{at})", "lower the client's heartbeat"
        return hi, f"{lib}'s detection window ({lo:g}–{hi:g} s{at})", "lower the client's heartbeat"
    if hb is not None and hb > 0:
        return (2 * hb, f"two missed heartbeats of {lib} ({2 * hb:g} s at heartbeat {hb:g} s; no model for it)",
                "lower the client's heartbeat")
    return (max_block_s, f"max_block_s ({max_block_s:g} s), and {lib} runs with heartbeats off so only a "
            "blocked call could show anything", "enable the client's heartbeat")


def _finite(x: object) -> bool:
    return isinstance(x, int | float) and not isinstance(x, bool) and math.isfinite(x)
