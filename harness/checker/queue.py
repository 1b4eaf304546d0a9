"""Jepsen total-queue over a run: what the application was told vs what came out of the queue.

The per-message state comes from the single pass in :mod:`harness.checker.fold`; :func:`judge`
derives the categories with set arithmetic (C-level, no per-event Python):

    lost         acknowledged (any publish.ok) - delivered - drained   split by the confirmed flag
    stranded     (drained - delivered) & published
    unexpected   (delivered | drained) - published
    recovered    (published - acknowledged) & delivered                 fine
    duplicated   deliveries after an id's first, by cause (from the fold)
    reordered    first deliveries behind a later-published message of the same publisher

Complexity: O(m) for m distinct ids (plus O(r log r) over r reordered deliveries).
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from harness.checker.findings import PROOF_HISTORY, PROOF_QUEUE, Finding
from harness.checker.fold import Fold
from harness.checker.text import eg, ordered_examples, plural


@dataclass(slots=True)
class QueueResult:
    counts: dict[str, int]
    findings: list[Finding]  # anomalies that fail the run once proven (the rules lost, stranded,
    # unexpected in harness/checker/rules/ report them, with their headline)
    notes: list[str]  # reported, verdict unchanged
    examples: dict[str, list[str]]
    metrics: dict[str, Any]


def reorder(f: Fold) -> tuple[dict[str, int], dict[str, int], list[str]]:
    """Per publisher: out-of-order first deliveries, and the largest displacement in positions of
    that publisher's first-invoke order. O(r log m) for r late deliveries."""
    count: dict[str, int] = {}
    disp: dict[str, int] = {}
    ids: list[str] = []
    for i, p, t, m in f.late:
        pts = f.publish_t[p]
        d = bisect_left(pts, m) - bisect_left(pts, t)
        count[p] = count.get(p, 0) + 1
        disp[p] = max(disp.get(p, 0), d)
        ids.append(i)
    return count, disp, ids


#: what a lost message's category says about its cause
LOST_WHY = {
    "lost_confirmed": "confirmed by the broker",
    "lost_unconfirmed": "after an unconfirmed send (publish.ok with confirmed=false)",
}


def lost_finding(category: str, n: int, examples: list[str]) -> Finding:
    """``n`` lost messages of one category (``LOST_WHY``), quoting ``examples``."""
    return Finding(category, n, f"lost {plural(n, 'message')} {LOST_WHY[category]}{eg(examples, n)}",
                   PROOF_QUEUE, headline="lost")


def lost_ids(f: Fold, undelivered: set[str] | None = None) -> set[str]:
    """acknowledged - delivered - drained. An acknowledged id is published unless no invoke ever
    came for it (``ok_orphan``: empty unless the fold counted an outcome without its invoke).
    ``undelivered``: :meth:`Fold.undelivered`, when the caller has it already. O(m)."""
    lost = set(filter(f.acked, f.undelivered() if undelivered is None else undelivered))
    if f.ok_orphan:
        lost |= f.ok_orphan.keys() - f.early
    if f.drained:
        lost -= f.drained
    return lost


def judge(f: Fold, max_examples: int = 5, max_listed: int = 20) -> QueueResult:
    """Derive the total-queue categories with set arithmetic. O(m) for m distinct ids.

    No step probes a hash table once per id: ``undelivered`` (published, never delivered) comes
    from one walk over the ids in publish order and their delivered flags, and every other set
    is built from it, from the drained ids or from ``early`` (delivered before any invoke), all
    small in a sound run; whether an id was acknowledged or confirmed is its ok flag (``okd``),
    read by position for the few undelivered ids, or walked in C (``not_acked``) only when some
    id has no ok."""
    order = f.pos_of  # published ids, in first-invoke order
    published = order.keys()
    drained = f.drained
    early = f.early
    n_confirmed = f.n_confirmed()
    undelivered = f.undelivered()

    lost = lost_ids(f, undelivered)
    lost_confirmed = {i for i in lost if f.confirmed(i)}
    lost_unconfirmed = lost - lost_confirmed
    stranded = drained & undelivered  # (drained - delivered) & published
    unexpected_delivered = early.difference(order)  # a dict argument: membership tests only
    unexpected = unexpected_delivered | drained.difference(order)
    not_acked = f.unacked()
    recovered = not_acked - undelivered  # not_acked holds published ids only
    recovered_after_fail = recovered & f.failed
    unseen_not_acked = (not_acked & undelivered) - drained
    indeterminate = unseen_not_acked - f.failed  # unknown outcome, never seen: allowed
    failed_unseen = unseen_not_acked & f.failed
    drained_after_delivery = (set(filter(order.__contains__, drained)) - undelivered) | (drained & early)
    # the fold counted every outcome whose id had no invoke yet: none means none without one at all
    outcome_without_invoke = (f.ok_orphan.keys() | f.failed | f.info) - published if f.orphan_outcomes else set()

    reordered_by, displacement, reordered_ids = reorder(f)
    reordered = len(reordered_ids)
    duplicated = f.redelivery + f.resend
    counts = {
        "published": len(published),
        "confirmed": n_confirmed,
        "acknowledged": f.n_acked(),
        "delivered": f.n_delivered(),
        "drained": len(drained),
        "lost": len(lost),
        "lost_confirmed": len(lost_confirmed),
        "lost_unconfirmed": len(lost_unconfirmed),
        "stranded": len(stranded),
        "duplicated": duplicated,
        "duplicated_redelivery": f.redelivery,
        "duplicated_resend": f.resend,
        "unexpected": len(unexpected),
        "recovered": len(recovered),
        "reordered": reordered,
    }

    def ex(ids: Iterable[str], k: int = max_examples) -> list[str]:
        return ordered_examples(ids, f.first_invoke, k)

    findings: list[Finding] = []
    notes: list[str] = []
    if lost_confirmed:
        findings.append(lost_finding("lost_confirmed", len(lost_confirmed), ex(lost_confirmed)))
    if lost_unconfirmed:
        findings.append(lost_finding("lost_unconfirmed", len(lost_unconfirmed), ex(lost_unconfirmed)))
    if stranded:
        n = len(stranded)
        findings.append(Finding(
            "stranded", n,
            f"stranded {plural(n, 'message')}: still in the queue for the drain reader, never delivered "
            f"to the client under test{eg(ex(stranded), n)}",
            PROOF_HISTORY, headline="stranded"))
    if unexpected:
        n = len(unexpected)
        where = "delivered" if not (drained - published) else (
            "drained" if not unexpected_delivered else "delivered or drained")
        findings.append(Finding(
            "unexpected", n,
            f"{plural(n, 'message')} {where} but never published (unexpected ids){eg(ex(unexpected), n)}",
            PROOF_HISTORY, headline="unexpected"))

    if duplicated:
        parts = []
        if f.redelivery:
            parts.append(f"{f.redelivery} broker redelivery")
        if f.resend:
            parts.append(f"{f.resend} publisher re-send")
        notes.append(f"{plural(duplicated, 'duplicate delivery', 'duplicate deliveries')} of "
                     f"{plural(len(f.dup_ids), 'message')} ({', '.join(parts)})"
                     f"{eg(ex(f.dup_ids), len(f.dup_ids))}")
    if f.unflagged:
        notes.append(f"{plural(f.unflagged, 'duplicate delivery', 'duplicate deliveries')} came without "
                     "the redelivered flag and without a publisher re-send (counted as redelivery)")
    if reordered:
        worst = max(displacement.values(), default=0)
        notes.append(f"{plural(reordered, 'message')} delivered out of publish order "
                     f"(largest displacement {worst}){eg(reordered_ids[:max_examples], reordered)}")
    if recovered:
        n = len(recovered)
        extra = f", {len(recovered_after_fail)} of them after a publish.fail" if recovered_after_fail else ""
        notes.append(f"{plural(n, 'message')} with no publish.ok delivered anyway (recovered{extra})"
                     f"{eg(ex(recovered), n)}")
    if drained_after_delivery:
        n = len(drained_after_delivery)
        notes.append(f"{plural(n, 'message')} delivered to the client but still in the queue at the "
                     f"drain (not acked, or the ack was lost){eg(ex(drained_after_delivery), n)}")

    examples = {
        name: ex(ids, max_listed)
        for name, ids in (
            ("lost_confirmed", lost_confirmed),
            ("lost_unconfirmed", lost_unconfirmed),
            ("stranded", stranded),
            ("unexpected", unexpected),
            ("duplicated", f.dup_ids),
            ("recovered", recovered),
            ("indeterminate", indeterminate),
            ("drained_after_delivery", drained_after_delivery),
            ("outcome_without_invoke", outcome_without_invoke),
        )
        if ids
    }
    if reordered_ids:
        examples["reordered"] = reordered_ids[:max_listed]

    metrics: dict[str, Any] = {
        "failed": len(f.failed),
        "info": len(f.info),
        "recovered_after_fail": len(recovered_after_fail),
        "indeterminate": len(indeterminate),
        "failed_unseen": len(failed_unseen),
        "resent_ids": len(f.invokes),
        "duplicated_unflagged": f.unflagged,
        "drained_after_delivery": len(drained_after_delivery),
        "drain_events": f.drain_events,
        "deliveries": f.deliveries,
        "acks": f.acks,
        "reorder_max_displacement": max(displacement.values(), default=0),
        "reordered_by_publisher": reordered_by,
        "reorder_displacement_by_publisher": displacement,
        "published_by_proc": dict(f.per_proc),
        "delivered_by_proc": dict(f.by_proc),
        "max_outcome_wait_s": f.max_wait_s,
        "no_outcome": len(f.pending),
        "orphan_outcomes": f.orphan_outcomes,
        "outcome_without_invoke": len(outcome_without_invoke),
    }
    return QueueResult(counts, findings, notes, examples, metrics)
