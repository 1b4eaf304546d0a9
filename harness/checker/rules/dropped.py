"""dropped: a client lost its connection, channel or consumer while no fault could explain it.

Contract. A client under test (``client.start``) wrote ``conn.lost``, ``channel.closed`` or
``consume.cancelled`` (a *notice*) of a live connection while no fault was in effect: outside
every fault window from its ``fault.start`` (or its first start effect, whichever is earlier) to
its heal -- the later of ``fault.stop`` and its last heal effect (:mod:`harness.checker.effects`)
-- plus ``fault_grace_s`` plus that client's heartbeat bound (a silent fault, or a slow one, can
be noticed after a short heal: the upper end of ``client.start`` ``heartbeat_window_s``, lower + 1 s
when it has none; without the field the library's model from ``heartbeat_s``, else 2 x heartbeat,
else 0). An unhealed fault excuses everything after its start. With no fault at all, nothing
excuses a drop: the broker or the library closed a working connection, e.g. a consumer that runs
a long job inline in pika's I/O callback misses its heartbeats and the broker closes it, then
redelivers what it held (the duplicate that follows is this drop's doing).

Not a drop:

* a notice written at or after the harness began stopping the process (``proc.signal``, else
  its ``proc.exit`` / ``client.exit``; in histories without ``proc.signal``, a process whose
  ``proc.exit`` note says the harness stopped it is judged only before the drain phase);
* a notice of a connection that was not live: before the process's first ``conn.open``, or with
  no ``conn.open`` since its previous notice -- failed reconnect attempts while the broker is
  still down, and the ``conn.lost`` a library writes right after the ``channel.closed`` /
  ``consume.cancelled`` it follows, belong to the outage that began it (a process that never
  writes ``conn.open`` counts its first notice only);
* a notice of a connection that opened less than ``fault_grace_s`` after an excused notice of
  the same outage ended (a connection that could not stay up while the broker came back: a
  client still reconnecting after a broker restart is not dropped);
* a client that gave up after the drop without reconnecting: *gave up* reports it, naming that
  error.

A deliberate close is no notice at all (the strategies write ``conn.lost`` only for a close they
did not ask for). Any fault excuses every client, whatever its target (conservative: a broker-wide
effect can reach all). Under-counts by design: a second channel closed on a connection that never
reopened is folded into the first.

The text names the process, the time, the error/reason, and what followed that the drop explains:
how many messages it had been delivered before the drop were redelivered after it (``deliver``
``redelivered: true`` of those ids, to any consumer: the duplicates), and whether it came back (its
next ``conn.open``, or for a channel/consumer, its next ``deliver``) or was stopped or exited.
"Had been delivered": since that connection opened, less the ones it acked more than its
heartbeat bound + ``fault_grace_s`` before the drop (an ack written on a connection the broker had
already closed never reached it). One finding per process, count = its drops;
``metrics.drops`` lists each. Proof: the notice itself (``PROOF_POSITIVE``); timed when it was
judged against fault windows, or came within ``clock_tolerance_s`` of the harness's signal (other
processes' clocks).

Cost: O(k log k) over the low-volume connection and lifecycle events. Only when a drop is found
(a failing run): one pass over the history from the dropped connection's ``conn.open`` onwards,
reading the dropping processes' ``deliver``/``ack`` events, to count the redeliveries (the fold
keeps duplicates only as a global count and id set, not per process or time); it stops once
every held id was redelivered and every comeback seen. Measured on the bench's 1 M-event synthetic
history: 0.60 s with its in-window losses excused (no pass), 0.77 s with a consumer dropped at 10 %
of the run (a full pass: some held ids were acked and are never redelivered).
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from dataclasses import dataclass, field

from harness.checker.findings import PROOF_POSITIVE, Finding
from harness.checker.lifecycle import HARNESS_NOTES, Proc
from harness.checker.rules import RuleContext, rule
from harness.checker.text import plural, rel
from harness.clients.heartbeat import client_window
from harness.history import Event

INF = float("inf")
#: what a client writes when its connection, channel or consumer is gone
NOTICES = ("conn.lost", "channel.closed", "consume.cancelled")
HEADLINE = "dropped"


def _t(ev: Event) -> float:
    return float(ev["t"])


@dataclass(slots=True)
class Drop:
    """One unexplained drop: the notice, and what followed it."""

    proc: str
    ev: Event
    #: when the connection it lost was opened (None: the process writes no ``conn.open``)
    opened_t: float | None
    #: ids it had been delivered before the drop (see the module docstring), in delivery order
    held: dict[str, None] = field(default_factory=dict)
    redelivered: list[str] = field(default_factory=list)
    reopened_t: float | None = None  # its next conn.open
    delivered_again_t: float | None = None  # its next deliver (a channel or consumer came back)

    @property
    def t(self) -> float:
        return float(self.ev["t"])

    @property
    def what(self) -> str:
        k = self.ev["kind"]
        if k == "conn.lost":
            return "lost its connection"
        return "had its channel closed" if k == "channel.closed" else "had its consumer cancelled"

    @property
    def error(self) -> str:
        e = self.ev.get("error") if self.ev["kind"] == "conn.lost" else self.ev.get("reason")
        code = self.ev.get("code")
        text = str(e) if e not in (None, "") else "no error text"
        return f"{code} {text}" if isinstance(code, int) and str(code) not in text else text


def heartbeat_bound(start: Event | None) -> float:
    """Seconds after a heal within which ``start``'s client may still notice the fault: its
    detection window's upper end (lower + 1 s when open-ended), else 2 x heartbeat, else 0."""
    if start is None:
        return 0.0
    window = client_window(start)
    if window is not None:
        lo, hi = window
        return hi if hi is not None else lo + 1.0
    hb = start.get("heartbeat_s")
    if isinstance(hb, int | float) and not isinstance(hb, bool) and hb > 0:
        return 2.0 * float(hb)
    return 0.0


def judged_until(p: Proc, drain_t: float | None) -> float | None:
    """The end of the span in which ``p``'s notices are its own (module docstring); None: never."""
    ends = [t for t in (p.signal_t, p.proc_exit_t, p.exit_t) if t is not None]
    if p.signal_t is None and (p.note or "").startswith(HARNESS_NOTES):
        # an older history: stopped by the harness, but when is not written; it stopped clients at drain
        if drain_t is None:
            return None
        ends.append(drain_t)
    return min(ends) if ends else INF


def fault_spans(ctx: RuleContext) -> list[tuple[float, float]]:
    """(from, healed) per fault window: from its ``fault.start`` or first effect, whichever is
    earlier, to the later of ``fault.stop`` and its last heal effect (INF: never healed)."""
    out = []
    for w in ctx.faults:
        a = min(w.started_t, w.took_effect_t)
        if w.heal_t is None:
            out.append((a, INF))
        else:
            out.append((a, max(w.heal_t, w.effect_heal_t if w.effect_heal_t is not None else w.heal_t)))
    return out


def find_drops(ctx: RuleContext) -> list[Drop]:
    """Every unexplained drop, in time order (no redelivery counts yet). O(k log k)."""
    idx, life, grace = ctx.idx, ctx.life, ctx.opts.fault_grace_s
    spans = fault_spans(ctx)
    starts: dict[str, Event] = {}
    for ev in idx.kind("client.start"):
        starts.setdefault(ev["proc"], ev)
    per_proc: dict[str, list[tuple[float, int, Event]]] = {}
    for rank, kind in enumerate((*NOTICES, "conn.open")):  # at equal times a notice comes first
        for ev in idx.kind(kind):
            per_proc.setdefault(ev["proc"], []).append((ev["t"], rank, ev))
    out: list[Drop] = []
    for name, evs in per_proc.items():
        p = life.procs.get(name)
        if p is None or p.start_t is None or p.aborted or p.role not in ("publisher", "consumer"):
            continue
        until = judged_until(p, life.drain_t)
        if until is None:
            continue
        evs.sort(key=lambda x: (x[0], x[1]))
        upto = grace + heartbeat_bound(starts.get(name))
        writes_open = any(ev["kind"] == "conn.open" for _, _, ev in evs)
        live = not writes_open
        opened: float | None = None
        excused_outage = False  # the current outage began inside a fault window
        outage_end: float | None = None  # when the excused outage's last notice was written
        for t, _, ev in evs:
            if ev["kind"] == "conn.open":
                live, opened = True, t
                continue
            if not live:
                if excused_outage:
                    outage_end = t
                continue
            live = False
            if t >= until:
                break
            flapping = excused_outage and opened is not None and outage_end is not None and \
                opened - outage_end < grace and t - opened < grace
            excused = flapping or any(a <= t <= b + upto for a, b in spans)
            excused_outage, outage_end = excused, t
            if not excused:
                out.append(Drop(name, ev, opened))
    out = [d for d in out if not _gave_up_after(d, life.procs[d.proc], per_proc[d.proc])]
    out.sort(key=lambda d: (d.t, d.proc))
    return out


def _gave_up_after(d: Drop, p: Proc, evs: list[tuple[float, int, Event]]) -> bool:
    """``p`` gave up after drop ``d`` without a ``conn.open`` between: *gave up* reports it."""
    g = p.gave_up_t
    return g is not None and g >= d.t and not any(
        ev["kind"] == "conn.open" and d.t < t <= g for t, _, ev in evs)


def follow(ctx: RuleContext, drops: list[Drop]) -> None:
    """Fill each drop's held ids, their redeliveries and the comebacks: one pass over the history
    from the earliest dropped connection's opening (module docstring: paid only by a failing run)."""
    idx = ctx.idx
    starts: dict[str, Event] = {}
    for ev in idx.kind("client.start"):
        starts.setdefault(ev["proc"], ev)
    opens = idx.kind("conn.open")
    for d in drops:
        d.reopened_t = next((ev["t"] for ev in opens[bisect_right(opens, d.t, key=_t):] if ev["proc"] == d.proc),
                            None)
    queue = sorted(drops, key=lambda d: d.t)  # stable: same-time drops keep find_drops' order
    dropping = {d.proc for d in drops}
    collecting: dict[str, dict[str, float | None]] = {}  # proc -> id -> ack time (None: unacked)
    awaiting: dict[str, Drop] = {}  # held id -> the latest drop that held it
    behind: dict[str, list[Drop]] = {}  # proc -> its drops already passed, still waiting to come back
    grace = ctx.opts.fault_grace_s
    #: per process, how long before a drop an ack may still have been lost with the connection,
    #: and the time before which its acks reached the broker (its next drop's t - margin)
    margin = {p: grace + heartbeat_bound(starts.get(p)) for p in dropping}
    cut = {p: next(d.t for d in queue if d.proc == p) - margin[p] for p in dropping}
    k = 0  # queue[k] is the next drop to pass, at next_t
    next_t: float = queue[0].t
    next_ev: Event | None = queue[0].ev  # None: every drop passed
    events = idx.events
    lo = min(d.opened_t if d.opened_t is not None else idx.t0 for d in drops)
    for i in range(bisect_left(events, lo, key=_t), len(events)):
        ev = events[i]
        t = ev["t"]
        while t > next_t or ev is next_ev:
            d = queue[k]
            _close(d, collecting.pop(d.proc, {}), awaiting)
            if d.reopened_t is None:
                behind.setdefault(d.proc, []).append(d)
            k += 1
            cut[d.proc] = next((e.t - margin[d.proc] for e in queue[k:] if e.proc == d.proc), INF)
            next_t, next_ev = (queue[k].t, queue[k].ev) if k < len(queue) else (INF, None)
        kind = ev["kind"]
        if kind == "deliver":
            if awaiting and ev["redelivered"] and ev["id"] in awaiting:
                awaiting.pop(ev["id"]).redelivered.append(ev["id"])
            p = ev["proc"]
            if p in dropping:
                collecting.setdefault(p, {})[ev["id"]] = None
                for d in behind.pop(p, ()):
                    d.delivered_again_t = t
        elif kind == "ack":
            held = collecting.get(ev["proc"])
            if held is not None and ev["id"] in held:
                if t < cut[ev["proc"]]:
                    del held[ev["id"]]  # acked long before the drop: it reached the broker
                else:
                    held[ev["id"]] = t
        elif kind == "conn.open" and ev["proc"] in dropping:
            collecting.pop(ev["proc"], None)  # a new connection: what the old one held is gone
            behind.pop(ev["proc"], None)
        elif k == len(queue) and not awaiting and not behind:
            break  # nothing left to learn
    for d in queue[k:]:
        _close(d, collecting.pop(d.proc, {}), awaiting)


def _close(d: Drop, held: dict[str, float | None], awaiting: dict[str, Drop]) -> None:
    """The drop happened: what its connection held (``follow`` left out acks old enough to have
    reached the broker) now awaits its redelivery."""
    d.held = dict.fromkeys(held)
    for i in held:
        awaiting[i] = d


def describe(d: Drop, p: Proc | None, t0: float) -> str:
    """One drop as a sentence: what, when, why, and what followed."""
    head = f"{d.proc} {d.what} at {rel(d.t, t0)} with no fault in effect ({d.error})"
    tail = []
    n = len(d.redelivered)
    if n:
        tail.append(f"{plural(n, 'message')} it held {'was' if n == 1 else 'were'} redelivered "
                    f"(duplicate{'' if n == 1 else 's'})")
    if d.reopened_t is not None:
        tail.append(f"it reconnected at {rel(d.reopened_t, t0)}")
    elif d.delivered_again_t is not None:
        tail.append(f"it consumed again from {rel(d.delivered_again_t, t0)}")
    elif p is not None and p.signal_t is not None and p.signal_t > d.t:
        tail.append(f"it had not come back when the harness stopped it at {rel(p.signal_t, t0)}")
    elif p is not None and p.end_t is not None:
        tail.append(f"it never came back and exited at {rel(p.end_t, t0)}")
    else:
        tail.append("it never came back")
    return f"{head}: {'; '.join(tail)}"


@rule("dropped", order=55)
def dropped(ctx: RuleContext) -> list[Finding]:
    """Per process, its connections, channels or consumers lost with no fault to explain them."""
    drops = find_drops(ctx)
    if not drops:
        return []
    follow(ctx, drops)
    t0 = ctx.idx.t0
    ctx.metrics["drops"] = [
        {"proc": d.proc, "t_s": d.t - t0, "kind": d.ev["kind"], "error": d.error,
         "held": len(d.held), "redelivered": len(d.redelivered),
         "redelivered_ids": d.redelivered[:ctx.opts.max_examples],
         "reopened_s": None if d.reopened_t is None else d.reopened_t - t0,
         "delivered_again_s": None if d.delivered_again_t is None else d.delivered_again_t - t0}
        for d in drops]
    by_proc: dict[str, list[Drop]] = {}
    for d in drops:
        by_proc.setdefault(d.proc, []).append(d)
    out: list[Finding] = []
    for name, ds in by_proc.items():
        p = ctx.life.procs.get(name)
        text = "dropped: " + describe(ds[0], p, t0)
        if len(ds) > 1:
            text += f"; and {plural(len(ds) - 1, 'more drop')} (at {', '.join(rel(d.t, t0) for d in ds[1:])})"
        # judged against other processes' clocks: fault windows, or a harness signal close behind it
        tol = ctx.opts.clock_tolerance_s
        timed = bool(ctx.faults) or (p is not None and any(
            (judged_until(p, ctx.life.drain_t) or INF) - d.t <= tol for d in ds))
        out.append(Finding("dropped", len(ds), text, PROOF_POSITIVE, timed=timed, headline=HEADLINE))
    return out
