"""lost with its cause: messages confirmed while queue-delete had removed the queue are counted
and explained apart from broker loss; they stay lost and the run still fails."""

from __future__ import annotations

from harness.checker import CheckResult, check
from harness.checker.builder import HistoryBuilder, clean_run


def run(h: HistoryBuilder) -> CheckResult:
    return check(h.events())


UNROUTABLE = ("confirmed but unroutable: 3 messages were sent and confirmed while queue-delete had removed the queue "
              "(the broker confirms an unroutable message without mandatory): publish with mandatory=True and "
              "handle basic.return (e.g. p0-3, p0-4, p0-5)")


def queue_deleted(effects: bool) -> HistoryBuilder:
    """3 messages confirmed while the queue was gone, 1 confirmed later and lost anyway."""
    h = clean_run(per_publisher=3)
    h.fault_start("queue-delete", t=1.0, window=0)
    if effects:
        h.emit("nemesis", "fault.effect", t=1.1, fault="queue-delete", action="start", effect="queue deleted",
               window=0, observed=True)
    h.at(1.2)
    for k in range(3, 6):
        h.publish("publisher-0", f"p0-{k}")
    if effects:
        h.emit("nemesis", "fault.effect", t=2.0, fault="queue-delete", action="heal", effect="queue declared",
               window=0, observed=True)
    h.fault_stop("queue-delete", t=2.1, window=0)
    h.at(3.0).publish("publisher-0", "p0-6")  # after the queue was back: broker loss
    h.at(3.5).publish("publisher-0", "p0-7")
    h.consume("consumer-0", "p0-7")
    return h.at(4).finish()


def test_confirmed_while_the_queue_was_deleted_is_lost_unroutable() -> None:
    r = run(queue_deleted(effects=True))
    assert r.verdict == "fail" and r.headline == "lost"
    c = r.counts
    assert (c.lost, c.lost_confirmed, c.lost_unconfirmed, c.lost_unroutable) == (4, 4, 0, 3)
    assert r.reasons[:2] == ["lost 1 message confirmed by the broker (e.g. p0-6)", UNROUTABLE]
    assert r.examples["lost_unroutable"] == ["p0-3", "p0-4", "p0-5"]
    assert [(f["rule"], f["category"]) for f in r.findings][:2] == [("lost", "lost_confirmed"),
                                                                     ("lost", "lost_unroutable")]
    assert all(f["headline"] == "lost" for f in r.findings[:2])


def test_without_effects_the_queue_delete_fault_window_is_used() -> None:
    r = run(queue_deleted(effects=False))
    assert r.counts.lost_unroutable == 3 and UNROUTABLE in r.reasons


def test_loss_outside_a_queue_deletion_is_broker_loss() -> None:
    h = clean_run(per_publisher=3)
    h.publish("publisher-0", "p0-3")
    r = run(h.finish())
    assert r.counts.lost_unroutable == 0
    assert r.reasons == ["lost 1 message confirmed by the broker (e.g. p0-3)"]
    assert r.to_dict()["counts"]["lost_unroutable"] == 0  # the key is always there


def test_a_message_confirmed_while_the_queue_was_gone_but_delivered_is_not_lost() -> None:
    h = clean_run(per_publisher=3)
    h.fault_start("queue-delete", t=1.0)
    h.at(1.2).publish("publisher-0", "p0-3")
    h.fault_stop("queue-delete", t=2.0)
    h.consume("consumer-0", "p0-3")
    r = run(h.at(3).finish())
    assert r.counts.lost == 0 and r.counts.lost_unroutable == 0


def test_messages_sent_before_the_deletion_are_deleted_with_the_queue_not_lost() -> None:
    """In the queue (or on the way into it) when queue-delete removed it: the fault destroys them by
    design; counted apart, out of lost, in a note. A re-send while the queue was gone is unroutable."""
    h = clean_run(per_publisher=2)
    h.at(0.9).publish("publisher-0", "p0-2")  # confirmed, waiting in the queue behind a slow consumer
    h.invoke("publisher-0", "p0-3", t=0.95)  # in flight when the queue went
    h.fault_start("queue-delete", t=1.0, window=0)
    h.ok("publisher-0", "p0-3", t=1.05)
    h.emit("nemesis", "fault.effect", t=1.1, fault="queue-delete", action="start", effect="queue deleted",
           window=0, observed=True)
    h.at(1.2).publish("publisher-0", "p0-4")  # sent while it was gone: unroutable
    h.emit("nemesis", "fault.effect", t=2.0, fault="queue-delete", action="heal", effect="queue declared",
           window=0, observed=True)
    h.fault_stop("queue-delete", t=2.1, window=0)
    r = run(h.at(3).finish())
    c = r.counts
    assert (c.deleted_with_queue, c.lost, c.lost_unroutable) == (2, 1, 1), r.counts
    assert r.examples["deleted_with_queue"] == ["p0-2", "p0-3"]
    assert any(n.startswith("2 messages were deleted with the queue by queue-delete") for n in r.notes), r.notes
    assert r.verdict == "fail" and r.reasons[0].startswith("confirmed but unroutable: 1 message was sent")


def test_a_run_whose_only_missing_messages_went_with_the_queue_passes() -> None:
    h = clean_run(per_publisher=2)
    h.at(0.9).publish("publisher-0", "p0-2")
    h.fault_start("queue-delete", t=1.0, window=0)
    h.emit("nemesis", "fault.effect", t=1.1, fault="queue-delete", action="start", effect="queue deleted",
           window=0, observed=True)
    h.emit("nemesis", "fault.effect", t=2.0, fault="queue-delete", action="heal", effect="queue declared",
           window=0, observed=True)
    h.fault_stop("queue-delete", t=2.1, window=0)
    h.at(2.5).publish("publisher-0", "p0-3")
    h.consume("consumer-0", "p0-3")
    r = run(h.at(3).finish())
    assert r.counts.deleted_with_queue == 1 and r.counts.lost == 0
    assert r.verdict == "pass", r.reasons
