"""The checker, rule by rule: a crafted history that makes each rule fire, and its negative."""

from __future__ import annotations

import json

import pytest

from harness.checker import CheckOptions, CheckResult, check, check_file
from harness.checker.builder import HistoryBuilder, clean_run


def run(h: HistoryBuilder, problems: tuple[str, ...] = (), **opts: float) -> CheckResult:
    return check(h.events(), problems, CheckOptions(**opts) if opts else None)


def assert_only(r: CheckResult, **expected: int) -> None:
    """The anomaly and duplicate counts are exactly ``expected`` (others zero)."""
    keys = ("lost", "lost_confirmed", "lost_unconfirmed", "stranded", "unexpected", "duplicated",
            "duplicated_redelivery", "duplicated_resend", "recovered", "reordered")
    got = {k: getattr(r.counts, k) for k in keys}
    assert got == {k: expected.get(k, 0) for k in keys}


# -- the clean run --------------------------------------------------------------------------------
def test_clean_run_passes_with_counts() -> None:
    r = run(clean_run(2, 2, 5).finish())
    assert r.verdict == "pass"
    assert r.reasons == [] and r.notes == []
    c = r.counts
    assert (c.published, c.confirmed, c.acknowledged, c.delivered, c.drained) == (10, 10, 10, 10, 0)
    assert_only(r)
    assert r.timing.detection_s is None and r.timing.recovery_s is None


def test_result_is_json_ready() -> None:
    d = run(clean_run().finish()).to_dict()
    json.dumps(d)
    assert d["verdict"] == "pass" and "counts" in d and "timing" in d and "metrics" in d


# -- lost -----------------------------------------------------------------------------------------
def test_lost_after_confirm_fails() -> None:
    h = clean_run(per_publisher=3)
    h.publish("publisher-0", "p0-3")
    h.publish("publisher-0", "p0-4")
    r = run(h.finish())
    assert r.verdict == "fail"
    assert r.reasons == ["lost 2 messages confirmed by the broker (e.g. p0-3, p0-4)"]
    assert_only(r, lost=2, lost_confirmed=2)
    assert r.examples["lost_confirmed"] == ["p0-3", "p0-4"]


def test_lost_after_unconfirmed_send_is_told_apart() -> None:
    h = clean_run(per_publisher=3)
    h.publish("publisher-0", "p0-3", confirmed=False)
    r = run(h.finish())
    assert r.verdict == "fail"
    assert_only(r, lost=1, lost_unconfirmed=1)
    assert "after an unconfirmed send" in r.reasons[0] and "p0-3" in r.reasons[0]


def test_confirm_on_any_attempt_counts_as_confirmed() -> None:
    h = clean_run(per_publisher=1)
    h.publish("publisher-0", "p0-1", confirmed=False)
    h.publish("publisher-0", "p0-1", confirmed=True)  # re-sent, confirmed the second time
    r = run(h.finish())
    assert_only(r, lost=1, lost_confirmed=1)


def test_example_list_is_truncated_with_an_ellipsis() -> None:
    h = clean_run(per_publisher=1)
    for k in range(1, 9):
        h.publish("publisher-0", f"p0-{k}")
    r = run(h.finish())
    assert r.reasons == ["lost 8 messages confirmed by the broker (e.g. p0-1, p0-2, p0-3, p0-4, p0-5, …)"]


def test_failed_or_unknown_publish_never_seen_is_not_lost() -> None:
    h = clean_run(per_publisher=2)
    h.invoke("publisher-0", "p0-2")
    h.fail("publisher-0", "p0-2")
    h.invoke("publisher-0", "p0-3")
    h.info("publisher-0", "p0-3")
    h.invoke("publisher-0", "p0-4")  # no outcome at all
    r = run(h.finish())
    assert r.verdict == "pass"
    assert_only(r)
    assert r.metrics["indeterminate"] == 2 and r.metrics["failed_unseen"] == 1


# -- stranded -------------------------------------------------------------------------------------
def test_stranded_found_only_by_the_drain_fails() -> None:
    h = clean_run(per_publisher=2)
    h.publish("publisher-0", "p0-2")
    h.invoke("publisher-0", "p0-3")
    h.info("publisher-0", "p0-3")
    r = run(h.finish(drained=["p0-2", "p0-3"]))
    assert r.verdict == "fail"
    assert_only(r, stranded=2)
    assert r.reasons[0].startswith("stranded 2 messages") and "p0-2, p0-3" in r.reasons[0]


def test_drained_after_delivery_is_not_stranded() -> None:
    h = clean_run(per_publisher=2)
    r = run(h.finish(drained=["p0-1"]))
    assert r.verdict == "pass"
    assert_only(r)
    assert r.metrics["drained_after_delivery"] == 1 and "still in the queue" in r.notes[0]


# -- unexpected -----------------------------------------------------------------------------------
def test_delivery_of_a_never_published_id_fails() -> None:
    h = clean_run(per_publisher=2)
    h.deliver("consumer-0", "x-1")
    r = run(h.finish())
    assert r.verdict == "fail"
    assert_only(r, unexpected=1)
    assert r.reasons == ["1 message delivered but never published (unexpected ids) (e.g. x-1)"]


def test_drained_never_published_id_fails() -> None:
    r = run(clean_run(per_publisher=2).finish(drained=["ghost"]))
    assert r.verdict == "fail"
    assert_only(r, unexpected=1)
    assert "drained but never published" in r.reasons[0]


# -- recovered ------------------------------------------------------------------------------------
@pytest.mark.parametrize("outcome", ["info", "none", "fail"])
def test_unknown_or_failed_outcome_then_delivered_is_recovered(outcome: str) -> None:
    h = clean_run(per_publisher=1)
    h.invoke("publisher-0", "p0-1")
    if outcome == "info":
        h.info("publisher-0", "p0-1")
    elif outcome == "fail":
        h.fail("publisher-0", "p0-1")
    h.consume("consumer-0", "p0-1")
    r = run(h.finish())
    assert r.verdict == "pass"
    assert_only(r, recovered=1)
    assert r.metrics["recovered_after_fail"] == (1 if outcome == "fail" else 0)
    assert "recovered" in r.notes[0]


# -- duplicates -----------------------------------------------------------------------------------
def test_broker_redelivery_is_reported_not_failed() -> None:
    h = clean_run(per_publisher=3)
    h.deliver("consumer-0", "p0-1", redelivered=True)
    r = run(h.finish())
    assert r.verdict == "pass"
    assert_only(r, duplicated=1, duplicated_redelivery=1)
    assert "1 broker redelivery" in r.notes[0]


def test_publisher_resend_duplicate() -> None:
    h = clean_run(per_publisher=3)
    h.publish("publisher-0", "p0-1")  # re-sent after a reconnect
    h.deliver("consumer-0", "p0-1", redelivered=False)
    r = run(h.finish())
    assert r.verdict == "pass"
    assert_only(r, duplicated=1, duplicated_resend=1)
    assert r.metrics["resent_ids"] == 1


def test_unflagged_duplicate_without_resend_counts_as_redelivery() -> None:
    h = clean_run(per_publisher=3)
    h.deliver("consumer-0", "p0-2", redelivered=False)
    r = run(h.finish())
    assert_only(r, duplicated=1, duplicated_redelivery=1)
    assert r.metrics["duplicated_unflagged"] == 1


# -- reordering -----------------------------------------------------------------------------------
def test_reordered_delivery_is_counted_with_displacement() -> None:
    h = HistoryBuilder()
    h.start("consumer-0")
    h.start("publisher-0")
    for k in range(6):
        h.publish("publisher-0", f"p0-{k}")
    for k in (0, 4, 1, 2, 3, 5):
        h.consume("consumer-0", f"p0-{k}")
    r = run(h.finish())
    assert r.verdict == "pass"
    assert_only(r, reordered=3)
    assert r.metrics["reorder_max_displacement"] == 3
    assert r.examples["reordered"] == ["p0-1", "p0-2", "p0-3"]


def test_interleaved_publishers_in_their_own_order_are_not_reordered() -> None:
    h = HistoryBuilder()
    h.start("consumer-0")
    for p in ("publisher-0", "publisher-1"):
        h.start(p)
        for k in range(3):
            h.publish(p, f"{p[-1]}-{k}")
    for k in range(3):  # publisher-1's messages first: a different publisher, not a reorder
        h.consume("consumer-0", f"1-{k}")
    for k in range(3):
        h.consume("consumer-0", f"0-{k}")
    r = run(h.finish())
    assert_only(r)


# -- liveness: stalls -----------------------------------------------------------------------------
def stalled(ready: int = 50, consumers: int = 1, deliver_at: float | None = None,
            fault: tuple[float, float] | None = None) -> HistoryBuilder:
    h = clean_run(per_publisher=3)
    if fault:
        h.fault_start(t=fault[0])
        h.fault_stop(t=fault[1])
    for s in range(12):  # 1 s .. 12 s
        h.sample(ready, 0, consumers, t=1.0 + s)
    if deliver_at is not None:
        h.publish("publisher-0", "p0-3")
        h.consume("consumer-0", "p0-3")
        h.deliver("consumer-0", "p0-3", t=deliver_at, redelivered=True)
    h.at(14.0)
    return h.finish()


def test_stall_fails() -> None:
    r = run(stalled())
    assert r.verdict == "fail"
    assert r.reasons[0].startswith("stalled: nothing delivered for 11.0 s from t=+1.0s to t=+12.0s")
    assert "consumer-0 held no unacked delivery" in r.reasons[0]
    assert r.metrics["stalls"][0]["duration_s"] == pytest.approx(11.0)
    assert r.headline == "stalled"


def test_consumers_zero_is_a_lost_consumer() -> None:
    r = run(stalled(consumers=0))
    assert r.verdict == "fail"
    assert r.reasons[0].startswith("consumer lost: the broker reported 0 consumers for 11.0 s")


def test_delivery_breaks_the_stall() -> None:
    r = run(stalled(deliver_at=6.5), max_stall_s=4.5)  # 1..6 and 7..12: 5 s each, past 4.5 s -> stall
    assert r.verdict == "fail"
    r = run(stalled(deliver_at=6.5), max_stall_s=5.0)  # not longer than 5 s
    assert r.verdict == "pass", r.reasons


def test_empty_queue_is_no_stall() -> None:
    assert run(stalled(ready=0)).verdict == "pass"


def test_fault_window_plus_grace_is_no_stall() -> None:
    r = run(stalled(fault=(0.9, 8.0)))  # excluded until 13 s: no sample left outside
    assert r.verdict != "fail" and r.metrics["stalls"] == [], r.reasons  # (no traffic overlapped the fault)
    r = run(stalled(fault=(0.9, 3.0)), fault_grace_s=1.0, max_stall_s=5.0)  # excluded until 4 s: 4..12 stalls
    assert r.verdict == "fail" and "from t=+4.0s" in r.reasons[0]


def test_no_stall_before_the_consumer_started_or_after_it_exited() -> None:
    h = HistoryBuilder()
    h.start("publisher-0")
    h.publish("publisher-0", "p0-0")
    for s in range(10):
        h.sample(1, 0, 0, t=1.0 + s)
    h.start("consumer-0", t=11.0)
    h.consume("consumer-0", "p0-0")
    assert run(h.finish()).verdict == "pass"


# -- liveness: blocked publish (was "publisher hang") ---------------------------------------------
def test_slow_outcome_told_nothing_is_blocked() -> None:
    h = clean_run(per_publisher=1)
    h.invoke("publisher-0", "p0-1", t=1.0)
    h.ok("publisher-0", "p0-1", t=41.0)
    h.consume("consumer-0", "p0-1")
    r = run(h.at(42).finish())
    assert r.verdict == "fail" and r.headline == "blocked"
    assert r.reasons == ["blocked: publisher-0 was told nothing while 1 publish waited past the deadline of 10 s "
                         "(max_block_s) (longest: p0-1 invoked at t=+1.0s got its outcome only after 40.0 s; no "
                         "error, conn.blocked, conn.lost or channel.closed meanwhile)"]
    assert r.metrics["publisher_hangs"][0]["id"] == "p0-1"


def test_no_outcome_while_running_is_blocked() -> None:
    h = clean_run(per_publisher=1)
    h.invoke("publisher-0", "p0-1", t=1.0)
    r = run(h.at(40).finish())
    assert r.verdict == "fail"
    assert "had no outcome after" in r.reasons[0]
    assert r.metrics["publisher_hangs"][0]["id"] == "p0-1"


def test_no_outcome_because_the_publisher_died_is_not_blocked_but_gave_up() -> None:
    h = clean_run(per_publisher=1)
    h.invoke("publisher-0", "p0-1", t=1.0)
    h.proc_exit("publisher-0", code=-9, expected=False, t=2.0)
    r = run(h.at(40).finish())
    assert r.verdict == "fail" and r.headline == "gave up"
    assert r.reasons == ["gave up: publisher-0 exited at t=+2.0s with code -9 before finishing its workload: "
                         "no client.exit written and no error recorded"]


def test_quick_outcome_is_not_blocked() -> None:
    h = clean_run(per_publisher=1)
    h.invoke("publisher-0", "p0-1", t=1.0)
    h.ok("publisher-0", "p0-1", t=10.5)
    h.consume("consumer-0", "p0-1")
    assert run(h.at(42).finish()).verdict == "pass"


def test_resend_pairs_outcomes_with_the_latest_invoke() -> None:
    h = clean_run(per_publisher=1)
    h.invoke("publisher-0", "p0-1", t=1.0)
    h.info("publisher-0", "p0-1", t=2.0)
    h.invoke("publisher-0", "p0-1", t=35.0)
    h.ok("publisher-0", "p0-1", t=36.0)
    h.consume("consumer-0", "p0-1")
    r = run(h.at(40).finish())
    assert r.verdict == "pass", r.reasons
    assert r.metrics["max_outcome_wait_s"] == pytest.approx(1.0)


# -- timing and timeline --------------------------------------------------------------------------
def test_detection_and_recovery_times() -> None:
    h = clean_run(per_publisher=1)  # ~0.5 s
    h.fault_start(t=2.0)
    h.conn("consumer-0", "lost", t=2.5)
    h.invoke("publisher-0", "p0-1", t=2.1)
    h.info("publisher-0", "p0-1", t=3.0)
    h.fault_stop(t=5.0)
    h.invoke("publisher-0", "p0-2", t=5.5)
    h.ok("publisher-0", "p0-2", t=6.0)
    h.deliver("consumer-0", "p0-2", t=7.0)
    h.ack("consumer-0", "p0-2", t=7.1)
    r = run(h.at(8).finish())
    t = r.timing
    assert t.detection_s == pytest.approx(0.5)
    assert t.detection_by_role == {"publisher": pytest.approx(1.0), "consumer": pytest.approx(0.5)}
    assert t.recovery_by_role == {"publisher": pytest.approx(1.0), "consumer": pytest.approx(2.0)}
    assert t.recovery_s == pytest.approx(2.0)
    assert t.detail["detection_by_proc"]["consumer-0"]["by"] == "conn.lost"
    assert t.detail["recovered"] is True


def test_unhealed_fault_has_no_recovery_time() -> None:
    h = clean_run(per_publisher=1)
    h.fault_start(t=2.0)
    r = run(h.at(3).finish())
    assert r.timing.recovery_s is None and r.timing.detail["unhealed"] == ["proxy_down"]
    assert r.timing.detection_s is None


def test_throughput_timeline_buckets() -> None:
    h = HistoryBuilder()
    h.start("consumer-0", t=0.0)
    h.start("publisher-0", t=0.0)
    for k, t in enumerate((0.05, 0.15, 0.16, 0.35)):
        h.invoke("publisher-0", f"p0-{k}", t=t)
        h.ok("publisher-0", f"p0-{k}", t=t + 0.01)
        h.deliver("consumer-0", f"p0-{k}", t=t + 0.06)
    h.at(0.45)
    tl = run(h.finish()).metrics["throughput"]
    assert tl["bucket_s"] == 0.1
    assert tl["publish_invoke"][:4] == [1, 2, 0, 1]
    assert tl["publish_ok"][:4] == [1, 2, 0, 1]
    assert tl["deliver"][:5] == [0, 1, 2, 0, 1]


# -- integrity: unknown ---------------------------------------------------------------------------
def test_history_problems_make_it_unknown() -> None:
    r = run(clean_run().finish(), problems=("consumer-0.jsonl:7: unparseable line '{\"t\":'",))
    assert r.verdict == "unknown"
    assert r.reasons[0].startswith("history problems: 1 unreadable or invalid line (e.g. consumer-0.jsonl:7")


def test_no_run_end_is_unknown() -> None:
    h = clean_run()
    h.finish()
    evs = [e for e in h.events() if e["kind"] != "run.end"]
    r = check(evs)
    assert r.verdict == "unknown" and r.reasons == ["no run.end event: the history was cut short"]


def test_no_drain_done_is_unknown_and_loss_is_not_proven() -> None:
    h = clean_run(per_publisher=2)
    h.publish("publisher-0", "p0-2")
    h.finish()
    evs = [e for e in h.events() if e["kind"] != "drain.done"]
    r = check(evs)
    assert r.verdict == "unknown"
    assert r.counts.lost == 1
    assert r.reasons[0].startswith("lost 1 message confirmed by the broker (e.g. p0-2); not proven: the "
                                   "drain did not finish could explain it")
    assert any(x.startswith("no drain.done event") for x in r.reasons)


def test_incomplete_drain_bounds_what_loss_it_can_hide() -> None:
    h = clean_run(per_publisher=1)
    for k in range(1, 11):
        h.publish("publisher-0", f"p0-{k}")
    r = run(h.finish(complete=False, remaining=4))
    assert r.verdict == "fail"  # 10 unseen, at most 4 still queued: at least 6 lost
    assert "at least 6 proven: 4 messages the drain left in the queue could hide the rest" in r.reasons[0]
    assert "drain timed out with 4 messages still queued" in r.reasons
    h = clean_run(per_publisher=1)
    for k in range(1, 11):
        h.publish("publisher-0", f"p0-{k}")
    r = run(h.finish(complete=False, remaining=12))
    assert r.verdict == "unknown"


def test_unexpected_crash_gives_up_with_its_reason() -> None:
    h = clean_run()
    h.exit("consumer-0", "ConnectionClosed(320, 'CONNECTION_FORCED')", ok=False, t=4.2)
    h.proc_exit("consumer-0", code=1, expected=False, t=4.2)
    r = run(h.at(5).finish())
    assert r.verdict == "fail"
    assert r.reasons == ["gave up: consumer-0 exited at t=+4.2s with code 1 before finishing its workload: "
                         "ConnectionClosed(320, 'CONNECTION_FORCED')"]


def test_crash_that_strands_messages_fails_with_both_reasons() -> None:
    h = clean_run(per_publisher=2)
    h.exit("consumer-0", "ConnectionClosed(320)", ok=False, t=4.2)
    h.proc_exit("consumer-0", code=1, expected=False, t=4.2)
    h.at(5)
    for k in range(2, 5):
        h.publish("publisher-0", f"p0-{k}")
    r = run(h.finish(drained=["p0-2", "p0-3", "p0-4"]))
    assert r.verdict == "fail"
    assert r.reasons[0].startswith("stranded 3 messages")
    assert r.reasons[1] == ("gave up: consumer-0 exited at t=+4.2s with code 1 before finishing its workload: "
                            "ConnectionClosed(320)")


def test_giving_up_fails() -> None:
    h = clean_run()
    h.exit("consumer-0", "gave up after 3 reconnects", ok=False, t=3.0)
    r = run(h.at(4).finish())
    assert r.verdict == "fail"
    assert r.reasons == ["gave up: consumer-0 exited at t=+3.0s (client.exit ok=false) before finishing its "
                         "workload: gave up after 3 reconnects"]


def test_client_without_client_start_is_unknown() -> None:
    h = clean_run()
    h.proc_exit("consumer-9", code=1, expected=True)
    r = run(h.finish())
    assert r.verdict == "unknown"
    assert r.reasons == ["consumer-9 never wrote client.start (a client that did not start)"]


def test_clocks_that_disagree_are_unknown_and_void_timed_findings() -> None:
    evs = [dict(e, wall=e["wall"] + (3600.0 if e["proc"] == "consumer-0" else 0.0))
           for e in stalled().events()]  # consumer-0 on another machine's monotonic clock
    r = check(evs)
    assert r.verdict == "unknown"
    assert r.reasons[0].startswith("stalled: ") and r.reasons[0].endswith("not proven: the process clocks disagree")
    assert any(x.startswith("clocks disagree: wall - monotonic differs by 3600.0 s") for x in r.reasons)


def test_nothing_published_is_unknown() -> None:
    h = HistoryBuilder()
    h.start("publisher-0")
    h.start("consumer-0")
    r = run(h.finish())
    assert r.verdict == "unknown" and r.reasons == ["nothing was published: nothing to judge"]


def test_empty_history_is_unknown() -> None:
    r = check([])
    assert r.verdict == "unknown" and "the history is empty" in r.reasons


def test_unknown_kind_is_unknown() -> None:
    h = clean_run()
    h.emit("consumer-0", "consumer.mood", mood="grumpy")
    r = run(h.finish())
    assert r.verdict == "unknown" and "1 event of unknown kind (consumer.mood)" in r.reasons


def test_malformed_event_fails_closed() -> None:
    h = clean_run()
    h.finish()
    evs = h.events()
    del evs[5]["id"]
    r = check(evs)
    assert r.verdict == "unknown"
    assert r.reasons[0].startswith("the checker could not read the history (KeyError")
    assert "missing field 'id'" in r.reasons[1]


def test_outcome_without_invoke_is_unknown() -> None:
    h = clean_run()
    h.ok("publisher-0", "zz")
    h.consume("consumer-0", "zz")
    r = run(h.finish())
    assert r.verdict == "fail"  # and zz was delivered without a publish.invoke: unexpected
    assert any("publish outcome without a publish.invoke" in x for x in r.reasons)


def test_history_problems_bound_absence_findings() -> None:
    h = clean_run(per_publisher=3)
    h.publish("publisher-0", "p0-3")
    r = run(h.finish(), problems=("consumer-0.jsonl:12: unparseable line",))
    assert r.verdict == "unknown"  # the torn line might have been p0-3's delivery
    h = clean_run(per_publisher=3)
    h.publish("publisher-0", "p0-3")
    h.publish("publisher-0", "p0-4")
    r = run(h.finish(), problems=("consumer-0.jsonl:12: unparseable line",))
    assert r.verdict == "fail" and "at least 1 proven" in r.reasons[0]


# -- precedence, order, files ---------------------------------------------------------------------
def test_fail_beats_unknown_beats_pass() -> None:
    lost = clean_run(per_publisher=2)
    lost.publish("publisher-0", "p0-2")
    lost.finish()
    no_end = [e for e in lost.events() if e["kind"] != "run.end"]
    r = check(no_end)
    assert r.verdict == "fail"
    assert r.reasons == ["lost 1 message confirmed by the broker (e.g. p0-2)",
                         "no run.end event: the history was cut short"]
    clean = clean_run(per_publisher=2).finish().events()
    assert check(clean).verdict == "pass"
    assert check([e for e in clean if e["kind"] != "run.end"]).verdict == "unknown"


def test_unsorted_input_is_sorted_first() -> None:
    h = clean_run(2, 2, 4)
    h.deliver("consumer-0", "p0-1", redelivered=True)
    evs = h.finish().events()
    r1 = check(evs)
    r2 = check(list(reversed(evs)))
    assert r2.metrics["resorted"] and not r1.metrics["resorted"]
    assert r1.counts == r2.counts and r1.verdict == r2.verdict


def test_check_file_reads_and_flags_a_torn_line(tmp_path) -> None:  # type: ignore[no-untyped-def]
    p = tmp_path / "history.jsonl"
    lines = [json.dumps(e) for e in clean_run().finish().events()]
    p.write_text("\n".join(lines) + '\n{"t": 12')
    r = check_file(p)
    assert r.verdict == "unknown" and r.reasons[0].startswith("history problems: 1 unreadable")
    p.write_text("\n".join(lines) + "\n")
    assert check_file(p).verdict == "pass"
