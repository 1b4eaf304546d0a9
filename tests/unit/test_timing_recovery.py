"""Recovery on crafted histories: credited only to live clients, never while work was left, and
"not needed" for a role with nothing left to do; the not_recovered rule."""

from __future__ import annotations

import pytest
from timing_context import ctx_of, timing_of

from harness.checker.builder import HistoryBuilder, clean_run
from harness.checker.findings import Finding
from harness.checker.rules.not_recovered import not_recovered


def findings(h: HistoryBuilder, **opts: float | None) -> list[Finding]:
    return not_recovered(ctx_of(h, **opts))


def cut(fault: str = "connection-cut", start: float = 2.0, stop: float = 5.0) -> HistoryBuilder:
    """Traffic until ~0.5 s (p0-0, p0-1 published and consumed), then one fault window."""
    h = clean_run(per_publisher=2)
    h.fault_start(fault, window=0, t=start)
    h.fault_stop(fault, window=0, t=stop)
    return h


def test_recovery_when_both_roles_come_back_on_live_connections() -> None:
    h = cut()
    h.conn("consumer-0", "lost", t=2.1)
    h.conn("publisher-0", "lost", t=2.1)
    h.conn("publisher-0", "open", t=5.5)
    h.invoke("publisher-0", "p0-2", t=5.6)
    h.ok("publisher-0", "p0-2", t=6.0)
    h.conn("consumer-0", "open", t=6.5)
    h.deliver("consumer-0", "p0-2", t=7.0)
    h.ack("consumer-0", "p0-2", t=7.1)
    r = ctx_of(h.at(8).finish())
    assert r.timing.recovery_by_role == {"publisher": pytest.approx(1.0), "consumer": pytest.approx(2.0)}
    assert r.timing.recovery_s == pytest.approx(2.0)
    assert r.timing.detail["recovered"] is True and "recovery_never" not in r.timing.detail
    assert not_recovered(r) == []


def test_recovery_is_measured_from_the_heal_effect() -> None:
    h = cut("broker-restart", stop=9.0)
    h.emit("nemesis", "fault.effect", fault="broker-restart", action="heal", effect="broker up", window=0,
           observed=True, t=7.0)
    h.at(7.2).publish("publisher-0", "p0-2")
    h.at(7.5).consume("consumer-0", "p0-2")
    t = timing_of(h.at(10).finish())
    assert t.detail["last_heal_s"] - t.detail["last_fault_stop_s"] == pytest.approx(-2.0)
    assert t.recovery_by_role == {"publisher": pytest.approx(0.201), "consumer": pytest.approx(0.5)}


# -- a dead consumer is never credited --------------------------------------------------------------
def test_recovery_never_for_a_consumer_that_gave_up_with_work_stranded() -> None:
    h = cut()
    h.conn("consumer-0", "lost", error="ConnectionResetError", t=2.1)
    h.exit("consumer-0", "ConnectionResetError: reconnect failed", ok=False, t=2.5)
    h.proc_exit("consumer-0", 1, False, t=2.6)
    h.at(5.5)
    for k in range(2, 6):  # the publisher goes on after the heal
        h.publish("publisher-0", f"p0-{k}")
    h.at(6.0)
    t = timing_of(h.finish(drained=[f"p0-{k}" for k in range(2, 6)]))
    assert t.recovery_s is None and t.detail["recovered"] is False
    assert t.recovery_by_role["consumer"] is None and t.recovery_by_role["publisher"] is not None
    why = t.detail["recovery_never"]["consumer"]
    assert "consumer-0 gave up at t=+" in why and "reconnect failed" in why
    assert "the drain found 4 messages left in the queue" in why
    (f,) = findings(h)
    assert (f.rule, f.effect, f.headline) == ("not_recovered", "fail", "not recovered")
    assert f.text.startswith("not recovered: the consumers never came back after the heal: no delivery")


def test_recovery_not_credited_to_a_consumer_whose_connection_is_lost() -> None:
    """chat-app x connection-cut: deliveries right at the heal of messages the library had buffered
    before the connection died, no reconnect, 499-style stranding."""
    h = clean_run(per_publisher=2)
    for k in range(2, 8):
        h.publish("publisher-0", f"p0-{k}")  # published before the fault, not yet delivered
    h.fault_start("connection-cut", window=0, t=2.0)
    h.conn("consumer-0", "lost", error="ConnectionResetError", t=2.1)
    h.fault_stop("connection-cut", window=0, t=5.0)
    h.deliver("consumer-0", "p0-2", t=5.0)  # 0.00 s after the heal, on the dead connection
    h.deliver("consumer-0", "p0-3", t=5.01)
    t = timing_of(h.at(6).finish(drained=[f"p0-{k}" for k in range(2, 8)]))
    assert t.recovery_by_role["consumer"] is None and t.recovery_s is None
    assert "on a connection lost at t=+" in t.detail["recovery_never"]["consumer"]
    assert "publisher" in t.detail["recovery_not_needed"]  # it had finished before the fault


def test_a_reconsume_after_queue_delete_is_credited_by_a_message_published_after_the_break() -> None:
    h = cut("queue-delete")
    h.cancelled("consumer-0", reason="queue deleted", t=2.2)  # re-consumes on the same connection
    h.at(5.5).publish("publisher-0", "p0-2")
    h.at(6.0).consume("consumer-0", "p0-2")
    t = timing_of(h.at(7).finish())
    assert t.recovery_by_role["consumer"] == pytest.approx(1.0)


def test_a_consumer_that_gave_up_after_delivering_is_still_never_credited() -> None:
    h = cut()
    h.at(5.5).publish("publisher-0", "p0-2")
    h.at(6.0).consume("consumer-0", "p0-2")
    h.exit("consumer-0", "gave up", ok=False, t=7.0)
    h.proc_exit("consumer-0", 1, False, t=7.1)
    t = timing_of(h.at(8).finish())
    assert t.recovery_by_role["consumer"] is None and t.detail["recovered"] is False


def test_a_sigkill_after_an_ignored_sigterm_is_not_giving_up() -> None:
    h = cut()
    h.at(5.5).publish("publisher-0", "p0-2")
    h.at(6.0).consume("consumer-0", "p0-2")
    h.emit("harness", "proc.signal", target="consumer-0", signal="SIGTERM", t=8.0)
    h.emit("harness", "proc.signal", target="consumer-0", signal="SIGKILL", t=9.0)
    h.proc_exit("consumer-0", -9, False, t=9.1)
    t = timing_of(h.at(10).finish())
    assert t.recovery_by_role["consumer"] == pytest.approx(1.0)


# -- publishers ---------------------------------------------------------------------------------------
def test_an_unconfirmed_ok_from_a_confirming_publisher_is_not_recovery() -> None:
    h = cut()
    h.invoke("publisher-0", "p0-2", t=5.5)
    h.ok("publisher-0", "p0-2", confirmed=False, t=5.6)
    h.invoke("publisher-0", "p0-3", t=7.0)
    h.ok("publisher-0", "p0-3", confirmed=True, t=7.5)
    t = timing_of(h.at(8).finish(drained=["p0-2", "p0-3"]))
    assert t.recovery_by_role["publisher"] == pytest.approx(2.5)


def test_an_unconfirmed_client_recovers_with_its_first_ok_on_a_live_connection() -> None:
    h = clean_run(per_publisher=2, confirmed=False)
    h.fault_start("connection-cut", window=0, t=2.0)
    h.conn("publisher-0", "lost", t=2.1)
    h.fault_stop("connection-cut", window=0, t=5.0)
    h.invoke("publisher-0", "p0-2", t=5.1)
    h.ok("publisher-0", "p0-2", confirmed=False, t=5.2)  # returned on the dead connection
    h.conn("publisher-0", "open", t=6.0)
    h.invoke("publisher-0", "p0-3", t=6.1)
    h.ok("publisher-0", "p0-3", confirmed=False, t=6.2)
    h.at(6.5).consume("consumer-0", "p0-3")
    t = timing_of(h.at(7).finish())
    assert t.recovery_by_role["publisher"] == pytest.approx(1.2)


def test_publisher_never_recovered_while_it_had_work_left() -> None:
    h = cut()
    h.invoke("publisher-0", "p0-2", t=4.0)  # blocked through the heal, never answered
    h.emit("harness", "proc.signal", target="publisher-0", signal="SIGTERM", t=40.0)
    h.info("publisher-0", "p0-2", error="stopped (SIGTERM) before the broker confirmed", t=40.1)
    h.exit("publisher-0", "sigterm", t=40.2)
    h.proc_exit("publisher-0", 0, True, t=40.3)
    t = timing_of(h.at(41).finish())
    why = t.detail["recovery_never"]["publisher"]
    assert why.startswith("no successful publish after the heal, while ")
    assert "1 publish was still waiting for an outcome at the heal" in why
    assert "publisher-0 never finished its workload" in why
    assert "consumer" in t.detail["recovery_not_needed"]
    (f,) = findings(h)
    assert "the publishers never came back" in f.text


# -- not needed ---------------------------------------------------------------------------------------
def test_no_work_left_means_recovery_not_needed_not_never() -> None:
    h = cut()
    h.conn("consumer-0", "lost", t=2.1)
    h.conn("consumer-0", "open", t=5.5)
    t = timing_of(h.at(6).finish())
    assert t.recovery_s is None and t.detail["recovered"] is True
    assert set(t.detail["recovery_not_needed"]) == {"publisher", "consumer"}
    assert "no messages were left" in t.detail["recovery_not_needed"]["consumer"]
    assert findings(h) == []


def test_a_not_needed_role_does_not_hold_back_the_other() -> None:
    h = clean_run(per_publisher=2)
    h.publish("publisher-0", "p0-2")  # finished before the fault; p0-2 waits in the queue
    h.fault_start("connection-cut", window=0, t=2.0)
    h.fault_stop("connection-cut", window=0, t=5.0)
    h.at(5.5).consume("consumer-0", "p0-2")
    t = timing_of(h.at(6).finish())
    assert t.recovery_s == pytest.approx(0.5) and "publisher" in t.detail["recovery_not_needed"]


# -- not_recovered deadline ---------------------------------------------------------------------------
def _slow(after_heal: float) -> HistoryBuilder:
    h = cut()
    h.invoke("publisher-0", "p0-2", t=5.0 + after_heal)
    h.ok("publisher-0", "p0-2", t=5.0 + after_heal)
    h.at(5.0 + after_heal).consume("consumer-0", "p0-2")
    return h.at(6.0 + after_heal).finish()


def test_recovery_later_than_max_recovery_fails() -> None:
    fs = findings(_slow(45.0))
    assert [f.text for f in fs] == [
        "not recovered within max_recovery_s 30 s: the publishers' first successful publish came 45.0 s after the heal",
        "not recovered within max_recovery_s 30 s: the consumers' first delivery on a live connection came 45.0 s "
        "after the heal"]


def test_recovery_within_max_recovery_passes_and_the_rule_can_be_off() -> None:
    assert findings(_slow(20.0)) == []
    assert findings(_slow(45.0), max_recovery_s=None) == []
    assert findings(_slow(45.0), max_recovery_s=60.0) == []


def test_an_unhealed_fault_is_not_a_recovery_finding() -> None:
    h = clean_run(per_publisher=2)
    h.fault_start("connection-cut", window=0, t=2.0)
    r = ctx_of(h.at(3).finish())
    assert r.timing.detail["unhealed"] == ["connection-cut"] and not_recovered(r) == []
