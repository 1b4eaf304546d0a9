"""no effect: a fault that acted on nothing (force-close closing 0 connections) is unknown, not pass;
the same fault closing a connection is judged as usual."""

from __future__ import annotations

from harness.checker import check
from harness.checker.builder import clean_run


def _force_close(closed: int) -> list[dict]:
    h = clean_run(per_publisher=2)
    h.fault_start("force-close", window=0, t=2.0)
    h.emit("nemesis", "fault.effect", fault="force-close", action="start", effect="connections closed",
           window=0, observed=True, count=closed, t=2.2)
    h.fault_stop("force-close", window=0, t=2.2)
    if closed:
        h.conn("consumer-0", "lost", error="CONNECTION_FORCED", t=2.3)
        h.conn("consumer-0", "open", t=2.8)
    h.at(3.0)
    for k in range(2, 4):
        h.publish("publisher-0", f"p0-{k}")
        h.consume("consumer-0", f"p0-{k}")
    return h.at(4).finish().events()


def test_a_force_close_that_closed_nothing_is_unknown() -> None:
    r = check(_force_close(0))
    assert r.verdict == "unknown", r.reasons
    assert any(x.startswith("not exercised: force-close acted on nothing") for x in r.reasons), r.reasons
    assert r.headline == "not exercised"


def test_a_force_close_that_closed_a_connection_is_judged_as_usual() -> None:
    r = check(_force_close(1))
    assert r.verdict == "pass", r.reasons
