"""gave up on crafted histories: a client that ends on its own fails naming its last error; one the
harness aborted or stopped, or that never started, is the harness's to explain (unknown)."""

from __future__ import annotations

from harness.checker import CheckResult, check
from harness.checker.builder import HistoryBuilder, clean_run


def run(h: HistoryBuilder) -> CheckResult:
    return check(h.events())


def rules_of(r: CheckResult) -> set[str]:
    return {f["rule"] for f in r.findings}


def test_a_consumer_that_exits_on_a_connection_error_gave_up_with_it() -> None:
    h = clean_run()
    h.conn("consumer-0", "lost", t=3.0, error="ConnectionResetError(104, 'Connection reset by peer')")
    h.proc_exit("consumer-0", code=1, expected=False, t=3.2, note="exited on its own")
    r = run(h.at(4).finish())
    assert r.verdict == "fail" and r.headline == "gave up" and rules_of(r) == {"gave_up"}
    assert r.reasons == ["gave up: consumer-0 exited at t=+3.2s with code 1 before finishing its workload: last "
                         "error conn.lost at t=+3.0s: ConnectionResetError(104, 'Connection reset by peer')"]
    assert r.findings[0]["proven"] is True


def test_client_exit_error_is_the_last_error() -> None:
    h = clean_run()
    h.emit("consumer-0", "channel.closed", t=2.0, reason="NOT_FOUND - no queue 'q'", code=404)
    h.exit("consumer-0", "channel closed", ok=False, error="ChannelClosedByBroker(404, 'NOT_FOUND')", t=3.0)
    h.proc_exit("consumer-0", code=1, expected=False, t=3.1)
    r = run(h.at(4).finish())
    assert r.reasons == ["gave up: consumer-0 exited at t=+3.0s with code 1 before finishing its workload: "
                         "ChannelClosedByBroker(404, 'NOT_FOUND')"]


def test_a_gave_up_client_strands_and_both_are_reported() -> None:
    h = clean_run(per_publisher=2)
    h.exit("consumer-0", "connection lost", ok=False, t=1.0)
    h.proc_exit("consumer-0", code=1, expected=False, t=1.1)
    h.at(2)
    for k in range(2, 5):
        h.publish("publisher-0", f"p0-{k}")
    r = run(h.finish(drained=["p0-2", "p0-3", "p0-4"]))
    assert r.verdict == "fail" and r.headline == "stranded"
    assert [f["rule"] for f in r.findings] == ["stranded", "gave_up"]


def test_a_client_the_harness_aborted_is_unknown_not_gave_up() -> None:
    h = clean_run()
    h.emit("harness", "proc.signal", t=3.0, target="consumer-0", signal="SIGTERM", why="abort")
    h.proc_exit("consumer-0", code=-15, expected=False, t=3.1, note="the run was aborted by a harness failure")
    r = run(h.at(4).finish())
    assert r.verdict == "unknown" and "gave_up" not in rules_of(r)
    assert r.reasons == ["consumer-0 exited at t=+3.1s with code -15: the run was aborted by a harness failure"]


def test_aborted_without_a_signal_event_is_read_from_the_note() -> None:
    h = clean_run()
    h.proc_exit("consumer-0", code=-15, expected=False, t=3.1, note="the run was aborted by a harness failure")
    r = run(h.at(4).finish())
    assert r.verdict == "unknown" and "gave_up" not in rules_of(r)


def test_a_client_stopped_by_the_harness_that_exits_badly_is_unknown_not_gave_up() -> None:
    h = clean_run()
    h.emit("harness", "proc.signal", t=3.0, target="consumer-0", signal="SIGTERM", why="stop")
    h.proc_exit("consumer-0", code=1, expected=False, t=3.1, note="stopped by the harness (SIGTERM)")
    r = run(h.at(4).finish())
    assert r.verdict == "unknown" and "gave_up" not in rules_of(r)


def test_ok_false_written_after_the_harness_signal_is_a_note() -> None:
    h = clean_run()
    h.emit("harness", "proc.signal", t=3.0, target="consumer-0", signal="SIGTERM", why="stop")
    h.exit("consumer-0", "stopped while reconnecting", ok=False, t=3.1)
    h.proc_exit("consumer-0", code=0, expected=True, t=3.2)
    r = run(h.at(4).finish())
    assert r.verdict == "pass", r.reasons
    assert any("after the harness began stopping it" in n for n in r.notes)


def test_a_client_that_never_started_is_unknown() -> None:
    h = clean_run()
    h.proc_exit("consumer-9", code=1, expected=False, t=1.0, note="exited on its own")
    r = run(h.finish())
    assert r.verdict == "unknown" and "gave_up" not in rules_of(r)
    assert "consumer-9 never wrote client.start (a client that did not start)" in r.reasons


def test_a_publisher_that_finished_did_not_give_up() -> None:
    h = clean_run()
    h.exit("publisher-0", "done", t=1.0)
    h.proc_exit("publisher-0", code=0, expected=True, t=1.1, note="finished")
    assert run(h.at(2).finish()).verdict == "pass"
