"""FROZEN REFERENCE: harness/checker/fold.py as it was before the columnar fold (commit 5918f62).

Do not edit: tests/checker/test_fold_equivalence.py asserts that the columnar fold computes exactly
what this loop computed, on every history it is given. The original docstring follows.

The one pass over every event (the only Python loop that touches all n of them).

Per-message kinds are folded on the spot into compact per-id state (hash-table operations are
what a history of a million events costs, so each message gets as few as possible: one per
invoke, two per ok, two per delivery); every other kind is filed in ``lists`` for the rules that
read it (lifecycle, liveness, timing, integrity), which then never scan the whole history.

What the loop keeps, per message:
    publish.invoke  first invoke per id (``pub_of``: its publisher and publish time); ids invoked
                    again (re-sends, ``invokes``); the invoke times (timeline, bisects)
    publish.ok      ``ok_of`` id -> confirmed by the broker at least once; invoke->ok wait
    publish.fail/info  ids, the events themselves (detection time), waits
    deliver         first-delivery set, delivery count per consumer, duplicates by cause,
                    reordering (running maximum of first-invoke time per publisher)
    drain           drained ids
    ack             counted only
Re-sent ids are paired invoke->outcome exactly afterwards, over just their events.

Complexity: O(n) time, O(m) space for m distinct ids. If the input is not in time order it is
sorted (stable, O(n log n)) and folded again; ``resorted`` says so.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from itertools import filterfalse
from operator import itemgetter

from harness.history import KINDS, Event

get_t = itemgetter("t")
# The kinds the loop compares, interned: a literal with a dot is not interned by the compiler, so
# ``k == "publish.ok"`` would compare bytes even when the reader interned ``k``; against these,
# equality of interned strings is a pointer test.
INVOKE, OK, INFO, FAIL = map(sys.intern, ("publish.invoke", "publish.ok", "publish.info", "publish.fail"))
#: kinds the loop folds itself; every other kind in KINDS is filed in ``Fold.lists``
MESSAGE_KINDS = ("publish.invoke", "publish.ok", "publish.fail", "publish.info", "deliver", "ack", "drain")


@dataclass(slots=True)
class Fold:
    n: int = 0
    t0: float = 0.0
    t_end: float = 0.0
    resorted: bool = False
    # publish
    pub_of: dict[str, Event] = field(default_factory=dict)  # id -> first publish.invoke
    invokes: dict[str, int] = field(default_factory=dict)  # id -> invokes, ids invoked more than once
    ok_of: dict[str, bool] = field(default_factory=dict)  # id -> any publish.ok had confirmed=true
    failed: set[str] = field(default_factory=set)
    info: set[str] = field(default_factory=set)
    notices: list[Event] = field(default_factory=list)  # publish.fail / publish.info events
    max_wait_s: float = 0.0  # longest invoke -> outcome wait (ids invoked once)
    slow: list[tuple[Event, Event]] = field(default_factory=list)  # (invoke, outcome) over the hang window
    orphan_outcomes: int = 0  # outcomes whose id was never invoked before
    resend_evs: list[Event] = field(default_factory=list)  # invokes after an id's first
    resend_outcomes: list[Event] = field(default_factory=list)  # outcomes that came after a re-send
    pending: dict[str, Event] = field(default_factory=dict)  # id -> last invoke, never answered
    # deliver
    delivered: set[str] = field(default_factory=set)
    by_proc: dict[str, int] = field(default_factory=dict)  # consumer -> deliveries
    publish_t: dict[str, list[float]] = field(default_factory=dict)  # publisher -> first-invoke times

    @property
    def per_proc(self) -> dict[str, int]:
        """Distinct ids published per publisher."""
        return {p: len(ts) for p, ts in self.publish_t.items()}
    deliveries: int = 0
    redelivery: int = 0  # duplicates flagged redelivered (plus unflagged ones, see below)
    resend: int = 0  # duplicates not flagged, of ids the publisher invoked more than once
    unflagged: int = 0  # duplicates neither flagged nor explained by a re-send (included in redelivery)
    dup_ids: set[str] = field(default_factory=set)
    late: list[tuple[str, str, float, float]] = field(default_factory=list)  # (id, publisher, t, max t)
    # drain / ack
    drained: set[str] = field(default_factory=set)
    drain_events: int = 0
    acks: int = 0
    # time arrays (sorted): timeline buckets and bisects
    invoke_t: list[float] = field(default_factory=list)
    ok_t: list[float] = field(default_factory=list)
    okc_t: list[float] = field(default_factory=list)
    deliver_t: list[float] = field(default_factory=list)
    events: Sequence[Event] = ()  # the history itself, in time order (for bisects by time)
    # everything else, by kind, in time order
    lists: dict[str, list[Event]] = field(default_factory=dict)
    unknown: list[Event] = field(default_factory=list)
    _none: list[Event] = field(default_factory=list)

    def invoke_ends(self) -> list[Event]:
        """The first and the last first-invoke (for clock checks)."""
        if not self.pub_of:
            return []
        return [next(iter(self.pub_of.values())), next(reversed(self.pub_of.values()))]

    def kind(self, kind: str) -> list[Event]:
        """Events of one low-volume kind, in time order."""
        return self.lists.get(kind, self._none)

    def first_invoke(self, i: str) -> Event | None:
        """Added after the freeze (an accessor, not a change of the fold): the checker's timing and
        rules read an id's first invoke through it; the same answer, from ``pub_of``."""
        return self.pub_of.get(i)


def fold_events(events: Sequence[Event], hang_window_s: float) -> Fold:
    """Fold the history in one pass (sorting first if it is not in time order). O(n)."""
    f = _fold(events, hang_window_s)
    if f is None:
        f = _fold(sorted(events, key=get_t), hang_window_s)
        assert f is not None
        f.resorted = True
    return f


def _fold(events: Sequence[Event], hang: float) -> Fold | None:
    """The loop. Written for CPython's speed, not its looks: every name it uses per event is a
    local; the four bulk kinds come first, in the order of a typical history; kinds are compared
    with ``==``, which is a pointer comparison when the reader interned them
    (:func:`harness.history.read_events`), and likewise ids. The per-process maps (first-invoke
    times, delivery counts, reorder maxima) are read through a one-entry cache of the last
    process seen (checked with ``is``, falling back to the dict), since bulk events come in long
    runs of one process."""
    f = Fold()
    lists: dict[str, list[Event]] = {k: [] for k in KINDS if k not in MESSAGE_KINDS}
    file = {k: v.append for k, v in lists.items()}.get
    unknown = f.unknown.append
    pub_of = f.pub_of
    setdefault = pub_of.setdefault
    get_invoke = pub_of.get
    invokes = f.invokes
    ok_of = f.ok_of
    delivered = f.delivered
    add_delivered = delivered.add
    by_proc = f.by_proc
    proc_ts = f.publish_t
    drained_add = f.drained.add
    late = f.late.append
    runmax: dict[str, float] = {}
    inv_t = f.invoke_t.append
    ok_t = f.ok_t.append
    okc_t = f.okc_t.append
    dl_t = f.deliver_t.append
    slow = f.slow.append
    resends = f.resend_evs.append
    resend_out = f.resend_outcomes.append
    dup_add = f.dup_ids.add
    max_wait = 0.0
    acks = drains = orphans = redelivery = resend = unflagged = 0
    last = float("-inf")
    # one-entry caches: the last publisher seen invoking (and its first-invoke times), the last
    # consumer seen delivering (and its run of deliveries), the publisher of the last first
    # delivery (and its running maximum of first-invoke time)
    inv_p: object = None
    inv_append = None
    dl_p: object = None
    dl_n = 0
    ro_p: object = None
    ro_max = 0.0

    for ev in events:
        t = ev["t"]
        if t < last:
            return None
        last = t
        k = ev["kind"]
        if k == INVOKE:
            i = ev["id"]
            if setdefault(i, ev) is not ev:
                invokes[i] = invokes.get(i, 1) + 1
                resends(ev)
            else:
                p = ev["proc"]
                if p is not inv_p:
                    pt = proc_ts.get(p)
                    if pt is None:
                        pt = proc_ts[p] = []
                    inv_p, inv_append = p, pt.append
                inv_append(t)  # type: ignore[misc]
            inv_t(t)
        elif k == OK:
            i = ev["id"]
            if ev["confirmed"]:
                ok_of[i] = True
            elif i not in ok_of:
                ok_of[i] = False
            ok_t(t)
            if ev["confirmed"]:
                okc_t(t)
            if i in invokes:
                resend_out(ev)
            else:
                iv = get_invoke(i)
                if iv is None:
                    orphans += 1
                else:
                    w = t - iv["t"]
                    if w > max_wait:
                        max_wait = w
                    if w > hang:
                        slow((iv, ev))
        elif k == "deliver":
            i = ev["id"]
            dl_t(t)
            p = ev["proc"]
            if p is dl_p:
                dl_n += 1
            else:
                if dl_p is not None:
                    by_proc[dl_p] = by_proc.get(dl_p, 0) + dl_n  # type: ignore[index,call-overload]
                dl_p, dl_n = p, 1
            if i not in delivered:
                add_delivered(i)
                iv = get_invoke(i)
                if iv is not None:
                    p = iv["proc"]
                    ti = iv["t"]
                    if p is not ro_p:
                        if ro_p is not None:
                            runmax[ro_p] = ro_max  # type: ignore[index]
                        m = runmax.get(p)
                        ro_p, ro_max = p, (ti if m is None else m)
                    if ti >= ro_max:
                        ro_max = ti
                    else:
                        late((i, p, ti, ro_max))
            else:
                dup_add(i)
                if ev["redelivered"]:
                    redelivery += 1
                elif i in invokes:
                    resend += 1
                else:
                    unflagged += 1
        elif k == "ack":
            acks += 1
        elif k == "drain":
            drained_add(ev["id"])
            drains += 1
        elif k in (INFO, FAIL):
            i = ev["id"]
            (f.info if k == INFO else f.failed).add(i)
            f.notices.append(ev)
            if i in invokes:
                resend_out(ev)
            else:
                iv = get_invoke(i)
                if iv is None:
                    orphans += 1
                else:
                    w = t - iv["t"]
                    max_wait = max(max_wait, w)
                    if w > hang:
                        slow((iv, ev))
        else:
            file(k, unknown)(ev)

    if dl_p is not None:
        by_proc[dl_p] = by_proc.get(dl_p, 0) + dl_n  # type: ignore[index,call-overload]
    f.n = len(events)
    f.events = events
    if f.n:
        f.t0 = events[0]["t"]
        f.t_end = last
    f.max_wait_s = max_wait
    f.orphan_outcomes = orphans
    f.acks = acks
    f.drain_events = drains
    f.deliveries = len(f.deliver_t)
    f.resend = resend
    f.unflagged = unflagged
    f.redelivery = redelivery + unflagged
    f.lists = {k: v for k, v in lists.items() if v}
    _pair(f, hang)
    return f


def _pair(f: Fold, hang: float) -> None:
    """Invokes still waiting for an outcome, and exact invoke->outcome pairing for re-sent ids.

    The loop paired every outcome that came before its id was re-sent with the first invoke;
    here the outcomes after a re-send answer the latest invoke before them. O(m) set work plus
    O(r log r) for the r events of re-sent ids."""
    unanswered = set(filterfalse(f.ok_of.__contains__, f.pub_of))  # not a keys-view difference: no copy
    if f.failed or f.info or f.invokes:
        unanswered -= f.failed
        unanswered -= f.info
        unanswered.difference_update(f.invokes)
    pending = {i: f.pub_of[i] for i in unanswered}
    if f.invokes:
        multi = f.invokes
        evs = [*(f.pub_of[i] for i in multi), *f.resend_evs, *f.resend_outcomes]
        evs.sort(key=get_t)  # stable: an invoke listed before an outcome at the same t stays first
        waiting: dict[str, Event] = {}
        for ev in evs:
            i = ev["id"]
            if ev["kind"] == "publish.invoke":
                waiting[i] = ev
                continue
            iv = waiting.pop(i, None)
            if iv is None:  # a second outcome for one invoke
                continue
            w = ev["t"] - iv["t"]
            f.max_wait_s = max(f.max_wait_s, w)
            if w > hang:
                f.slow.append((iv, ev))
        pending.update(waiting)
        f.slow.sort(key=lambda p: p[0]["t"])
    f.pending = pending
