"""dropped on crafted histories: a connection lost with no fault to explain it fails, naming what
followed (the redelivery, the reconnect); a loss a fault explains -- inside its window, within the
grace and the client's heartbeat window after its heal, a reconnect attempt of the same outage, or
the client's reaction to the harness stopping it -- does not. No timing is measured; times are the
histories' own."""

from __future__ import annotations

from typing import Any

from harness.checker import CheckOptions, CheckResult, check
from harness.checker.builder import HistoryBuilder, clean_run

RESET = "ConnectionResetError(104, 'Connection reset by peer')"


def run(h: HistoryBuilder, **opts: Any) -> CheckResult:
    return check(h.events(), (), CheckOptions(**opts) if opts else None)


def rules_of(r: CheckResult) -> set[str]:
    return {f["rule"] for f in r.findings}


def effect(h: HistoryBuilder, fault: str, action: str, text: str, t: float, window: int = 0) -> None:
    h.emit("nemesis", "fault.effect", fault=fault, action=action, effect=text, window=window, observed=True, t=t)


def base(window: tuple[float, float] | None = (7.0, 14.0)) -> HistoryBuilder:
    """A clean run (10 messages by 0.5 s) whose consumer declared its heartbeat window (pika at
    heartbeat 2 s: 7-14 s; None: heartbeats off) and opened its connection at 0.2 s."""
    h = HistoryBuilder()
    h.phase("warmup")
    kw: dict[str, Any] = {"heartbeat_s": 0}
    if window is not None:
        kw = {"heartbeat_s": 2, "heartbeat_window_s": list(window)}
    h.start("consumer-0", **kw)
    h.start("publisher-0")
    h.conn("consumer-0", "open", t=0.2)
    h.conn("publisher-0", "open", t=0.2)
    h.at(0.5)
    for seq in range(10):
        h.publish("publisher-0", f"p0-{seq}")
        h.consume("consumer-0", f"p0-{seq}")
    return h


def inline_slow_job(h: HistoryBuilder, lost_at: float, back_at: float | None = None) -> None:
    """The issue-14 consumer: p0-10 delivered at 1.0, a 30 s job inline in pika's callback (its
    I/O loop stalls, the broker closes it on missed heartbeats), acked at 31.0 on a connection
    already gone, the loss noticed at ``lost_at``; back at ``back_at``, p0-10 redelivered."""
    h.publish("publisher-0", "p0-10")
    h.deliver("consumer-0", "p0-10", t=1.0)
    h.ack("consumer-0", "p0-10", t=min(31.0, lost_at - 0.1))
    h.conn("consumer-0", "lost", t=lost_at, error=RESET)
    if back_at is not None:
        h.conn("consumer-0", "open", t=back_at)
        h.deliver("consumer-0", "p0-10", redelivered=True, t=back_at + 0.1)
        h.ack("consumer-0", "p0-10", t=back_at + 0.2)
    h.at(max(lost_at, back_at or 0.0) + 1.0)


# -- fires -------------------------------------------------------------------------------------------
def test_a_connection_lost_with_no_fault_fails_with_the_duplicate_it_caused() -> None:
    h = base()
    inline_slow_job(h, lost_at=31.2, back_at=33.0)
    r = run(h.finish())
    assert r.verdict == "fail" and r.headline == "dropped", r.reasons
    assert rules_of(r) == {"dropped"}
    assert r.reasons == [f"dropped: consumer-0 lost its connection at t=+31.2s with no fault in effect ({RESET}): "
                         "1 message it held was redelivered (duplicate); it reconnected at t=+33.0s"]
    [f] = r.findings
    assert f["count"] == 1 and f["proven"] is True
    [d] = r.metrics["drops"]
    assert d["redelivered_ids"] == ["p0-10"] and d["kind"] == "conn.lost"
    assert r.counts.duplicated_redelivery == 1  # still only a note by itself


def test_a_drop_the_client_never_came_back_from_says_so() -> None:
    h = base()
    inline_slow_job(h, lost_at=31.2)
    r = run(h.finish())
    assert r.verdict == "fail" and "dropped" in rules_of(r)
    assert "it never came back and exited at t=+32.2s" in r.reasons[0]


def test_each_drop_counts_and_a_channel_closed_then_conn_lost_is_one() -> None:
    h = base()
    h.emit("consumer-0", "channel.closed", reason="PRECONDITION_FAILED - delivery acknowledgement timed out",
           code=406, t=20.0)
    h.conn("consumer-0", "lost", t=20.01, error="channel closed: reconnecting")  # the same outage
    h.conn("consumer-0", "open", t=21.0)
    h.cancelled("consumer-0", reason="basic.cancel from the broker", t=40.0)
    h.conn("consumer-0", "open", t=41.0)
    r = run(h.at(42).finish())
    [f] = r.findings
    assert f["rule"] == "dropped" and f["count"] == 2
    assert f["text"].startswith("dropped: consumer-0 had its channel closed at t=+20.0s with no fault in effect "
                                "(406 PRECONDITION_FAILED - delivery acknowledgement timed out): it reconnected at "
                                "t=+21.0s; and 1 more drop (at t=+40.0s)")


def test_a_loss_after_a_window_and_its_grace_and_heartbeat_bound_fires() -> None:
    h = base(window=None)  # heartbeats off: bound 0
    h.fault_start("force-close", window=0, t=10.0)
    h.fault_stop("force-close", window=0, t=10.0)
    h.conn("consumer-0", "lost", t=15.5)  # 5.5 s after the heal: past fault_grace_s 5
    h.conn("consumer-0", "open", t=16.0)
    r = run(h.at(17).finish())
    assert "dropped" in rules_of(r)
    assert "at t=+15.5s" in r.reasons[0]


def test_reconnecting_after_an_outage_does_not_blind_the_rule() -> None:
    h = broker_restart()
    h.conn("consumer-0", "lost", t=60.0)  # a working connection, long after the outage
    r = run(h.at(61).finish())
    assert "dropped" in rules_of(r), r.reasons


# -- does not fire -----------------------------------------------------------------------------------
def test_a_loss_inside_a_connection_cut_window_is_the_fault() -> None:
    h = base()
    h.fault_start("connection-cut", window=0, t=5.0)
    effect(h, "connection-cut", "start", "connections closed", 5.1)
    h.conn("consumer-0", "lost", t=5.2)
    h.conn("publisher-0", "lost", t=5.3)
    effect(h, "connection-cut", "heal", "toxic removed", 9.0)
    h.fault_stop("connection-cut", window=0, t=9.0)
    h.conn("consumer-0", "open", t=9.5)
    h.conn("publisher-0", "open", t=9.6)
    r = run(h.at(10).finish())
    assert "dropped" not in rules_of(r), r.reasons


def test_a_loss_3s_after_a_zero_length_force_close_is_in_its_grace() -> None:
    h = base(window=None)
    h.fault_start("force-close", window=0, t=10.0)
    h.fault_stop("force-close", window=0, t=10.0)
    h.conn("consumer-0", "lost", t=13.0)
    h.conn("consumer-0", "open", t=13.5)
    r = run(h.at(14).finish())
    assert "dropped" not in rules_of(r), r.reasons


def broker_restart() -> HistoryBuilder:
    """A broker restart at 5-12 s (broker up seen at 12); the consumer loses its connection at
    once, its reconnect attempts fail (an outside client writes each) until 26 s, and the first
    connection after that drops at once (the broker still coming up); it is back for good at 28 s."""
    h = base(window=None)
    h.fault_start("broker-restart", window=0, t=5.0)
    effect(h, "broker-restart", "start", "broker down", 5.2)
    h.conn("consumer-0", "lost", t=5.3, error="ConnectionResetError")
    for t in (14.0, 18.0, 25.0):
        h.conn("consumer-0", "lost", t=t, error="ConnectionRefusedError(111, 'Connection refused')")
    effect(h, "broker-restart", "heal", "broker up", 12.0)
    h.fault_stop("broker-restart", window=0, t=12.1)
    h.conn("consumer-0", "open", t=26.0)
    h.conn("consumer-0", "lost", t=26.5, error="ConnectionClosedByBroker(320, 'CONNECTION_FORCED')")
    h.conn("consumer-0", "open", t=28.0)
    return h


def test_reconnect_attempts_failing_after_a_broker_restart_are_the_same_outage() -> None:
    r = run(broker_restart().at(30).finish())
    assert "dropped" not in rules_of(r), r.reasons


def test_a_notice_written_after_the_harness_signal_is_its_reaction_to_being_stopped() -> None:
    h = base()
    h.emit("harness", "proc.signal", target="consumer-0", signal="SIGTERM", why="stop", t=20.0)
    h.conn("consumer-0", "lost", t=20.1, error="stopped while consuming")
    h.exit("consumer-0", "sigterm", t=20.2)
    h.proc_exit("consumer-0", 0, True, t=20.3, note="stopped by the harness (SIGTERM)")
    r = run(h.at(21).finish())
    assert "dropped" not in rules_of(r), r.reasons


def silent_partition(window: tuple[float, float]) -> HistoryBuilder:
    """A silent partition 5-9 s, noticed by the consumer 10 s after its heal."""
    h = base(window=window)
    h.fault_start("partition", window=0, silent=True, t=5.0)
    effect(h, "partition", "start", "rules installed", 5.1)
    effect(h, "partition", "heal", "rules removed", 9.0)
    h.fault_stop("partition", window=0, t=9.0)
    h.conn("consumer-0", "lost", t=19.0, error="StreamLostError: missed heartbeats from broker")
    h.conn("consumer-0", "open", t=19.5)
    return h.at(20)


def test_a_silent_partition_noticed_10s_after_its_heal_within_the_heartbeat_window() -> None:
    r = run(silent_partition((7.0, 14.0)).finish())  # 9 + 5 + 14 = 28 > 19
    assert "dropped" not in rules_of(r), r.reasons


def test_the_same_notice_past_a_short_heartbeat_window_is_a_drop() -> None:
    r = run(silent_partition((2.0, 4.0)).finish())  # 9 + 5 + 4 = 18 < 19
    assert "dropped" in rules_of(r), r.reasons


def test_an_unhealed_fault_explains_every_later_loss() -> None:
    h = base()
    h.fault_start("broker-crash", window=0, t=5.0)
    h.conn("consumer-0", "lost", t=50.0)
    r = run(h.at(51).finish())
    assert "dropped" not in rules_of(r)


def test_a_failed_first_connect_is_not_a_drop() -> None:
    h = clean_run()
    h.conn("consumer-0", "lost", t=0.01, error="ConnectionRefusedError")  # before its first conn.open
    h.conn("consumer-0", "open", t=0.02)
    r = run(h.at(2).finish())
    assert "dropped" not in rules_of(r), r.reasons


def test_a_client_that_gave_up_after_the_loss_is_reported_as_gave_up_only() -> None:
    h = base()
    h.conn("consumer-0", "lost", t=3.0, error=RESET)
    h.proc_exit("consumer-0", code=1, expected=False, t=3.2, note="exited on its own")
    r = run(h.at(4).finish())
    assert rules_of(r) == {"gave_up"}
    assert RESET in r.reasons[0]


def test_the_redelivery_to_another_consumer_counts_and_old_acks_are_not_held() -> None:
    h = base()
    h.start("consumer-1", heartbeat_s=2, heartbeat_window_s=[7, 14])
    h.conn("consumer-1", "open", t=0.3)
    inline_slow_job(h, lost_at=31.2)
    h.deliver("consumer-1", "p0-10", redelivered=True, t=31.5)
    h.ack("consumer-1", "p0-10", t=31.6)
    r = run(h.at(33).finish())
    assert rules_of(r) == {"dropped"}, r.reasons
    assert "1 message it held was redelivered (duplicate)" in r.reasons[0]
    [d] = r.metrics["drops"]
    assert d["held"] == 1  # p0-0..9 were acked long before: they reached the broker


def test_two_drops_of_one_consumer_each_count_their_own_redeliveries() -> None:
    h = base()
    inline_slow_job(h, lost_at=31.2, back_at=33.0)
    h.publish("publisher-0", "p0-11")
    h.deliver("consumer-0", "p0-11", t=34.0)
    h.conn("consumer-0", "lost", t=60.0, error=RESET)
    h.conn("consumer-0", "open", t=61.0)
    h.deliver("consumer-0", "p0-11", redelivered=True, t=61.1)
    h.ack("consumer-0", "p0-11", t=61.2)
    r = run(h.at(62).finish())
    [f] = r.findings
    assert f["count"] == 2 and f["text"].endswith("; and 1 more drop (at t=+60.0s)")
    assert [(d["redelivered_ids"], d["reopened_s"]) for d in r.metrics["drops"]] == [
        (["p0-10"], 33.0), (["p0-11"], 61.0)]
