"""The one pass over every event (the only Python loop that touches all n of them).

Per-message kinds are folded on the spot into compact per-id state; every other kind is filed in
``lists`` for the rules that read it (lifecycle, liveness, timing, integrity), which then never
scan the whole history.

What the loop keeps, per message:
    publish.invoke  first invoke per id: ``pos_of`` (id -> position in first-invoke order) and
                    ``first`` (the invokes, by position: publisher and publish time); ids invoked
                    again (re-sends, ``invokes``); the invoke times (timeline, bisects)
    publish.ok      an ok flag per position (``okd``: 1 acknowledged, 2 confirmed by the broker at
                    least once; ``ok_orphan`` for ids no invoke ever came for); invoke->ok wait
    publish.fail/info  ids, the events themselves (detection time), waits
    deliver         a delivered flag per position (``seen``; ``early`` for ids delivered before
                    any invoke of theirs), delivery count per consumer, duplicates by cause,
                    reordering (running maximum of first-invoke time per publisher)
    drain           drained ids
    ack             counted only
Re-sent ids are paired invoke->outcome exactly afterwards, over just their events.

Where the time goes, and why it is one loop. On a million events the fold waits on memory more
than it interprets (``perf``): each event dict is read once, in order, and each message costs a
few probes of hash tables far larger than the CPU caches, whose cost per probe grows with the
table (the 2n/n ratio). So each message gets as few cold probes as possible: one, into
``pos_of``, at its invoke. The ok's and the delivery's lookups of the invoke come a few dozen
messages later and find it still cached; a delivery then flags the id by position in a bytearray
(written nearly in order) instead of inserting it into a set of every delivered id (a random write
into a table of 16 B a slot: 8 MB at 1 M events, 16 MB at 2 M), and the rules derive what they need
from one sequential walk over those flags (:meth:`Fold.undelivered`). An ok likewise flags its id
by position (``okd``) where it already looks the invoke up, so no table of acknowledged ids is
built at all (it was, after the loop: one more cold insert per message). The flag arrays are
allocated once, one byte per event (an upper bound on the ids), not grown per id. The per-id
dicts keep their keys' hashes (:func:`hashed_dict`). A columnar fold (a C-level pass per
field -- kinds, times, ids, procs -- then set and dict operations on the columns) was measured
and is ~3x slower here: every pass re-reads all the event dicts from memory, the hash work is the
same but colder, and a C-level ``map`` step costs about what an interpreted one does in CPython
3.11.

Complexity: O(n) time, O(m) space for m distinct ids (plus 2n bytes of flags during the loop). If
the input is not in time order it is sorted (stable, O(n log n)) and folded again; ``resorted``
says so.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from itertools import compress
from operator import itemgetter
from typing import Any

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
    pos_of: dict[str, int] = field(default_factory=dict)  # id -> its position in first-invoke order
    first: list[Event] = field(default_factory=list)  # the first publish.invoke of each id, in order
    invokes: dict[str, int] = field(default_factory=dict)  # id -> invokes, ids invoked more than once
    okd: bytearray = field(default_factory=bytearray)  # by position: 0 no ok, 1 ok, 2 some ok confirmed
    ok_orphan: dict[str, bool] = field(default_factory=dict)  # never-invoked id -> some ok confirmed
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
    seen: bytearray = field(default_factory=bytearray)  # by position: 1 once the id was delivered
    early: set[str] = field(default_factory=set)  # ids delivered while none of their invokes was seen
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
    okc_t: list[float] = field(default_factory=list)  # publish.ok with confirmed=true only (the chart)
    deliver_t: list[float] = field(default_factory=list)
    events: Sequence[Event] = ()  # the history itself, in time order (for bisects by time)
    # everything else, by kind, in time order
    lists: dict[str, list[Event]] = field(default_factory=dict)
    unknown: list[Event] = field(default_factory=list)
    _none: list[Event] = field(default_factory=list)

    def invoke_ends(self) -> list[Event]:
        """The first and the last first-invoke (for clock checks)."""
        return [self.first[0], self.first[-1]] if self.first else []

    def first_invoke(self, i: str) -> Event | None:
        """The first publish.invoke of id ``i``, or None. O(1)."""
        p = self.pos_of.get(i)
        return None if p is None else self.first[p]

    @property
    def pub_of(self) -> dict[str, Event]:
        """id -> first publish.invoke, in first-invoke order. Built on each call, O(m): for
        readers off the hot path; the rules use ``pos_of``/``first``."""
        return dict(zip(self.pos_of, self.first, strict=True))

    @property
    def delivered(self) -> set[str]:
        """Ids delivered at least once. Built on each call, O(m): the rules use
        :meth:`undelivered` and ``early`` instead."""
        return set(compress(self.pos_of, self.seen)) | self.early

    @property
    def ok_of(self) -> dict[str, bool]:
        """id -> any publish.ok for it had confirmed=true, for every id with a publish.ok: the
        published ones in first-invoke order, then those never invoked. Built on each call, O(m):
        for readers off the hot path; the rules use ``okd``, :meth:`acked` and :meth:`confirmed`."""
        out = {i: v == 2 for i, v in zip(self.pos_of, self.okd, strict=True) if v}
        out.update(self.ok_orphan)
        return out

    def acked(self, i: str) -> bool:
        """Id ``i`` had a publish.ok. O(1)."""
        p = self.pos_of.get(i)
        return i in self.ok_orphan if p is None else self.okd[p] != 0

    def confirmed(self, i: str) -> bool:
        """Some publish.ok of id ``i`` had confirmed=true. O(1)."""
        p = self.pos_of.get(i)
        return self.ok_orphan.get(i, False) if p is None else self.okd[p] == 2

    def n_acked(self) -> int:
        """How many distinct ids had a publish.ok. O(m) in C."""
        return len(self.okd) - self.okd.count(0) + len(self.ok_orphan)

    def n_confirmed(self) -> int:
        """How many distinct ids had a confirmed publish.ok. O(m) in C."""
        return self.okd.count(2) + sum(self.ok_orphan.values())

    def unacked(self) -> set[str]:
        """Published ids without a publish.ok: a byte count of the ok flags, then, only if some
        flag is 0, one C-level walk over the ids and their flags. O(m) in C."""
        if not self.okd.count(0):
            return set()
        return set(compress(self.pos_of, self.okd.translate(_NOT)))

    def n_delivered(self) -> int:
        """How many distinct ids were delivered. O(m) in C."""
        return self.seen.count(1) + len(self.early)

    def undelivered(self) -> set[str]:
        """Published ids never delivered: one C-level walk over the ids in first-invoke order and
        their flags, no hash probe per id (the set holds only the undelivered). O(m)."""
        ids = compress(self.pos_of, self.seen.translate(_NOT))
        return set(ids).difference(self.early) if self.early else set(ids)

    def kind(self, kind: str) -> list[Event]:
        """Events of one low-volume kind, in time order."""
        return self.lists.get(kind, self._none)


#: byte translation table: 0 -> 1, anything else -> 0 (``seen`` inverted, in C)
_NOT = bytes([1]) + bytes(255)


def hashed_dict() -> dict[Any, Any]:
    """An empty dict that keeps each key's hash beside it, for the per-id maps.

    CPython (3.11+) stores a dict whose keys are all ``str`` without their hashes ("unicode"
    keys): a probe that lands on another key's slot then reads that key's string object to get its
    hash. In a million-event history the id strings are spread over hundreds of MB, so every such
    collision is a cache miss (``perf`` had 48 % of the fold in ``unicodekeys_lookup_unicode``,
    these probes and the event fields' lookups; 15 % after). A dict that has once held a
    non-``str`` key stays "general", hashes stored in the table, for good; the key is removed at
    once. Same dict to every reader: equal, same order, same type. O(1)."""
    d: dict[Any, Any] = {None: None}
    del d[None]
    return d


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
    runs of one process. The flag arrays (``seen``, ``okd``) get one byte per event up front and
    are cut to the ids' count after the loop."""
    f = Fold(pos_of=hashed_dict(), invokes=hashed_dict(), seen=bytearray(len(events)), okd=bytearray(len(events)))
    lists: dict[str, list[Event]] = {k: [] for k in KINDS if k not in MESSAGE_KINDS}
    file = {k: v.append for k, v in lists.items()}.get
    unknown = f.unknown.append
    pos_of = f.pos_of
    setdefault = pos_of.setdefault
    get_pos = pos_of.get
    first = f.first
    add_first = first.append
    seen = f.seen
    okd = f.okd
    ok_orphan = f.ok_orphan
    early = f.early
    m = 0  # ids invoked so far
    invokes = f.invokes
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
            if setdefault(i, m) != m:
                invokes[i] = invokes.get(i, 1) + 1
                resends(ev)
            else:
                m += 1
                add_first(ev)
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
            ok_t(t)
            if ev["confirmed"]:
                okc_t(t)
            q = get_pos(i)
            if q is None:
                orphans += 1
                ok_orphan[i] = bool(ev["confirmed"]) or ok_orphan.get(i, False)
            else:
                if ev["confirmed"]:
                    okd[q] = 2
                elif not okd[q]:
                    okd[q] = 1
                if i in invokes:
                    resend_out(ev)
                else:
                    iv = first[q]
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
            q = get_pos(i)
            if q is not None and not seen[q] and not (early and i in early):
                # the first delivery of an invoked id: flag it by position (no set probe)
                seen[q] = 1
                iv = first[q]
                p = iv["proc"]
                ti = iv["t"]
                if p is not ro_p:
                    if ro_p is not None:
                        runmax[ro_p] = ro_max  # type: ignore[index]
                    rm = runmax.get(p)
                    ro_p, ro_max = p, (ti if rm is None else rm)
                if ti >= ro_max:
                    ro_max = ti
                else:
                    late((i, p, ti, ro_max))
            elif q is None and i not in early:
                early.add(i)  # delivered before any invoke of it: unexpected, unless one comes
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
                q = get_pos(i)
                if q is None:
                    orphans += 1
                else:
                    iv = first[q]
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
    del seen[m:], okd[m:]  # one byte per id
    for i in [i for i in ok_orphan if i in pos_of]:  # an ok before its id's first invoke: now it has a place
        okd[pos_of[i]] = max(okd[pos_of[i]], 2 if ok_orphan.pop(i) else 1)
    _pair(f, hang)
    return f


def _pair(f: Fold, hang: float) -> None:
    """Invokes still waiting for an outcome, and exact invoke->outcome pairing for re-sent ids.

    The loop paired every outcome that came before its id was re-sent with the first invoke;
    here the outcomes after a re-send answer the latest invoke before them. O(m) set work (a byte
    count alone when every invoked id has an ok) plus O(r log r) for the r events of re-sent ids."""
    unanswered = f.unacked()
    if unanswered and (f.failed or f.info or f.invokes):
        unanswered -= f.failed
        unanswered -= f.info
        unanswered.difference_update(f.invokes)
    first, pos_of = f.first, f.pos_of
    pending = {i: first[pos_of[i]] for i in unanswered}
    if f.invokes:
        multi = f.invokes
        evs = [*(first[pos_of[i]] for i in multi), *f.resend_evs, *f.resend_outcomes]
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
