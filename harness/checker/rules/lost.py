"""lost: acknowledged, never delivered, never drained; and why, when the history says.

Contract. An id the application was told was published (any ``publish.ok``) that no client under
test was delivered and the drain did not find (``queue.judge``: acknowledged - delivered -
drained). Split by what the application was told: ``lost_confirmed`` (some ``publish.ok`` had
``confirmed: true``: the broker promised it) and ``lost_unconfirmed`` (only unconfirmed oks).

When the run's queue was deleted (queue-delete: absent between ``fault.effect`` "queue deleted"
and "queue declared", else that fault's ``fault.start`` .. ``fault.stop``), the history tells two
more causes apart, by when each lost id was *sent* (its ``publish.invoke``) and *told* (its last
``publish.ok``):

* **unroutable**: sent while the queue did not exist and told ok: the broker confirms an
  unroutable message unless it was published with ``mandatory`` (then it comes back as
  basic.return). The client could have known: reported with the fix, and still lost
  (``counts.lost_unroutable``, still in ``lost_confirmed``/``lost_unconfirmed`` by their flag).
* **deleted with the queue**: sent before the deletion and told ok before the queue was declared
  again, never sent again while it was absent: it was in the queue (or on its way into it) when
  the fault deleted the queue with its content. The fault destroys those by design and no client
  can prevent it (they were routed: no basic.return comes), so they are not the client's loss:
  counted apart (``counts.deleted_with_queue``), taken out of ``lost``, and stated in a note.

**Whose loss** (:mod:`harness.checker.cluster`), for the confirmed ones left, when the run's queue
type is known and a node fault happened:

* **lost by the broker** (``counts.lost_by_broker``, owner "broker", headline "broker lost"): a
  quorum queue's run whose faults hit at most one node at a time, with consumers that ack. A
  quorum queue promises to keep a confirmed message through that.
* **lost while the classic queue's node was down** (``counts.lost_queue_node_down``, owner
  "config", headline "lost (classic queue)"): confirmed while a fault had the classic queue's
  only node down. The queue type's doing: it is not replicated.
* the rest stay the client's ``lost_confirmed``; under a classic queue's node fault their reason
  says so (a durable classic queue keeps *persistent* messages across its node's restart).

Both owed categories stay in ``lost`` and ``lost_confirmed`` (the data is gone) and fail the run.

Proof: an absence, so the drain must have emptied the queue (``PROOF_QUEUE``).

Cost: the queue judge's O(m) set arithmetic; on a run that lost something, the cause split when a
queue was absent (one pass over the events up to the last re-declare, reading only the lost ids'
invokes and oks) and the classic queue's split under a node fault (one pass up to that fault's
end): O(n) on that path only.
"""

from __future__ import annotations

from dataclasses import replace

from harness.checker.cluster import Attribution, attribute, may_owe
from harness.checker.effects import queue_absent_windows
from harness.checker.findings import PROOF_QUEUE, Finding
from harness.checker.fold import Fold
from harness.checker.queue import lost_finding, lost_ids
from harness.checker.rules import RuleContext, rule
from harness.checker.text import eg, ordered_examples, plural

CATEGORIES = ("lost_confirmed", "lost_unconfirmed")


def split_by_cause(idx: Fold, ids: set[str], absent: list[tuple[float, float | None]]) -> tuple[set[str], set[str]]:
    """(unroutable, deleted with the queue) among the lost ``ids``: see the module docstring."""
    last_ok: dict[str, float] = {}
    first_sent: dict[str, float] = {}
    sent_absent: set[str] = set()
    horizon = max((float("inf") if b is None else b) for _, b in absent)

    def inside(t: float) -> bool:
        return any(a <= t and (b is None or t <= b) for a, b in absent)

    for ev in idx.events:
        t = ev["t"]
        if t > horizon:
            break
        kind = ev["kind"]
        if kind != "publish.ok" and kind != "publish.invoke":
            continue
        i = ev.get("id")
        if i not in ids:
            continue
        if kind == "publish.ok":
            last_ok[i] = t
        else:
            first_sent.setdefault(i, t)
            if inside(t):
                sent_absent.add(i)
    unroutable = {i for i in sent_absent if i in last_ok and inside(last_ok[i])}
    deleted: set[str] = set()
    for i, told in last_ok.items():
        if i in sent_absent or i not in first_sent:
            continue
        if any(first_sent[i] < a and (b is None or told <= b) for a, b in absent):
            deleted.add(i)
    return unroutable, deleted


@rule("lost", order=10)
def lost(ctx: RuleContext) -> list[Finding]:
    """Lost messages, split by what the application was told, by cause when the queue was absent,
    and by owner when a node fault hit a quorum or classic queue's run."""
    ctx.counts.setdefault("lost_unroutable", 0)
    ctx.counts.setdefault("lost_by_broker", 0)
    ctx.counts.setdefault("lost_queue_node_down", 0)
    found = [replace(f, headline="lost") for f in ctx.queue.findings if f.rule in CATEGORIES]
    if not found:
        return []
    idx = ctx.idx
    absent = queue_absent_windows(idx)
    owing = may_owe(ctx.faults, ctx.opts.queue_type)
    if not absent and not owing:
        return found
    lost_all = lost_ids(idx)
    unroutable: set[str] = set()
    deleted: set[str] = set()
    if absent:
        unroutable, deleted = split_by_cause(idx, lost_all, absent)
    rest = lost_all - unroutable - deleted
    owed = Attribution()
    if owing:
        owed = attribute(idx, ctx.faults, ctx.opts.queue_type, {i for i in rest if idx.confirmed(i)})
        ctx.notes.extend(owed.notes)
    if not unroutable and not deleted and not owed.broker and not owed.queue_type and not owed.context:
        return found
    if deleted:
        _take_out_deleted(ctx, deleted)
    if unroutable:
        ctx.counts["lost_unroutable"] = len(unroutable)
        ctx.examples["lost_unroutable"] = ordered_examples(unroutable, idx.first_invoke, ctx.opts.max_listed)
    out: list[Finding] = []
    if owed.broker:
        out.append(_broker_finding(ctx, owed))
    rest -= owed.broker | owed.queue_type
    for category in CATEGORIES:
        ids = {i for i in rest if idx.confirmed(i) == (category == "lost_confirmed")}
        if ids:
            f = lost_finding(category, len(ids), ordered_examples(ids, idx.first_invoke, ctx.opts.max_examples))
            if category == "lost_confirmed" and owed.context:
                f = replace(f, text=f"{f.text}; {owed.context}")
            out.append(f)
    if unroutable:
        n = len(unroutable)
        ex = ordered_examples(unroutable, idx.first_invoke, ctx.opts.max_examples)
        out.append(Finding(
            "lost_unroutable", n,
            f"confirmed but unroutable: {plural(n, 'message was', 'messages were')} sent and confirmed while "
            "queue-delete had removed the queue (the broker confirms an unroutable message without mandatory): "
            f"publish with mandatory=True and handle basic.return{eg(ex, n)}",
            PROOF_QUEUE, headline="lost"))
    if owed.queue_type:
        out.append(_queue_type_finding(ctx, owed))
    return out


def _broker_finding(ctx: RuleContext, owed: Attribution) -> Finding:
    """The quorum queue's lost confirmed messages: the broker's finding (``counts.lost_by_broker``)."""
    n = len(owed.broker)
    ctx.counts["lost_by_broker"] = n
    ctx.examples["lost_by_broker"] = ordered_examples(owed.broker, ctx.idx.first_invoke, ctx.opts.max_listed)
    ex = ctx.examples["lost_by_broker"][:ctx.opts.max_examples]
    return Finding(
        "lost_by_broker", n,
        f"the broker lost {plural(n, 'confirmed message')} from a quorum queue during a single-node fault "
        f"({owed.broker_why}): a quorum queue confirms a message once a majority of its replicas has written it, "
        f"so losing one node must not lose it. A broker finding, not the client's{eg(ex, n)}",
        PROOF_QUEUE, headline="broker lost", owner="broker")


def _queue_type_finding(ctx: RuleContext, owed: Attribution) -> Finding:
    """Confirmed while the classic queue's only node was down: the queue type's doing
    (``counts.lost_queue_node_down``), not the client's."""
    n = len(owed.queue_type)
    ctx.counts["lost_queue_node_down"] = n
    ctx.examples["lost_queue_node_down"] = ordered_examples(owed.queue_type, ctx.idx.first_invoke,
                                                            ctx.opts.max_listed)
    ex = ctx.examples["lost_queue_node_down"][:ctx.opts.max_examples]
    what = "; ".join(h.says(ctx.idx.t0) for h in owed.down)
    return Finding(
        "lost_queue_node_down", n,
        f"lost {plural(n, 'message')} the broker confirmed while the classic queue's node was down ({what}"
        f"{'' if owed.queue_node_known else '; the queue node is not recorded: taken to be the one down'}): "
        "a classic queue lives on one node and is not replicated, so what was confirmed into it then had no "
        "replica to survive in. The queue type's doing, not the client's: a quorum queue keeps them"
        f"{eg(ex, n)}",
        PROOF_QUEUE, headline="lost (classic queue)", owner="config")


def _take_out_deleted(ctx: RuleContext, deleted: set[str]) -> None:
    """Count the ids the fault deleted with the queue apart, out of ``lost``, with a note."""
    idx = ctx.idx
    n = len(deleted)
    confirmed = sum(1 for i in deleted if idx.confirmed(i))
    ctx.counts["deleted_with_queue"] = n
    ctx.counts["lost"] = ctx.counts.get("lost", 0) - n
    ctx.counts["lost_confirmed"] = ctx.counts.get("lost_confirmed", 0) - confirmed
    ctx.counts["lost_unconfirmed"] = ctx.counts.get("lost_unconfirmed", 0) - (n - confirmed)
    ex = ordered_examples(deleted, idx.first_invoke, ctx.opts.max_listed)
    ctx.examples["deleted_with_queue"] = ex
    ctx.notes.append(f"{plural(n, 'message was', 'messages were')} deleted with the queue by queue-delete (sent "
                     "before the deletion, in the queue or on their way into it when it went): the fault destroys "
                     f"them by design, so they are not counted as lost{eg(ex[:ctx.opts.max_examples], n)}")
