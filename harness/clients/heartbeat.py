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

from collections.abc import Callable

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
