"""Detection and recovery times, measured on the clients under test and on when faults took effect.

**Fault times** come from :mod:`harness.checker.effects`: a fault *took effect* at its first
``fault.effect`` action=start (else its ``fault.start``), and its effect *ended* at its last
``fault.effect`` action=heal (else its ``fault.stop``). A loaded machine can run the harness's
tools seconds late; measuring from the moment the harness began acting would credit the client
with the tool's latency.

**Detection**: the first fault's effect -> the first notice a client under test gave itself:
``conn.lost``, ``conn.blocked``, ``channel.closed``, ``consume.cancelled``, ``publish.fail``,
``publish.info``. Notices are taken from the first ``fault.start`` on (a client can notice before
the harness's poll confirmed the effect: that counts as 0 s, never negative). Never counted: an
event a process wrote at or after a ``proc.signal`` to it or its ``proc.exit`` -- that is its
reaction to the harness stopping it ("stopped (SIGTERM) before the broker confirmed"), not to the
fault. Per role and per process, each with ``by`` (the kind) and ``text`` (its error/reason).

**Recovery**: the last heal (effect end) -> per role, the first sign of work flowing again on a
client that is still alive:

* publisher: the first ``publish.ok`` after the heal -- a confirmed one from a client that
  confirms, an unconfirmed one (on a live connection) from a client that never confirms;
* consumer: the first ``deliver`` after the heal on a live connection by a consumer still running
  that did not give up. *Live*: no ``conn.lost`` / ``channel.closed`` / ``consume.cancelled`` of
  that process since its last ``conn.open`` -- or the delivered message was first published after
  that break (it cannot have been buffered before it: e.g. a re-consume after queue-delete, which
  writes no ``conn.open``). A library can hand over messages it buffered before the connection
  died; those prove nothing.

Overall recovery is the later of the roles that recovered. A role that never recovered while work
was left for it after the heal makes recovery ``None`` ("never", ``detail["recovered"] = False``,
``detail["recovery_never"][role]`` says why). Work left -- publisher: publishes invoked after the
heal, publishes still open (no outcome) at the heal, or a publisher that did not finish its
workload; consumer: the drain found messages, or messages were published after the heal. A role
with no work left and no recovery is "not needed" (``detail["recovery_not_needed"][role]``) and
does not make recovery never. An unhealed fault has no recovery time (``detail["unhealed"]``).

Complexity: O(k log k) over the low-volume kinds plus one forward walk from the last heal that
stops once every live client has recovered (O(n) worst case, one pass).
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from dataclasses import dataclass, field
from typing import Any

from harness.checker.effects import FaultWindow, describe, fault_windows, first_effect_t, last_heal_t
from harness.checker.fold import Fold
from harness.checker.lifecycle import Lifecycle, Proc
from harness.checker.model import CheckOptions, Timing
from harness.checker.text import plural
from harness.clients.heartbeat import client_window
from harness.history import Event

#: kinds by which a client shows it noticed something (publish.fail/info come from ``Fold.notices``)
NOTICE_KINDS = ("conn.lost", "conn.blocked", "channel.closed", "consume.cancelled")
#: kinds after which a process's connection (or channel, or consumer) is no longer live
BREAK_KINDS = ("conn.lost", "channel.closed", "consume.cancelled")
#: seconds a measured detection may fall outside its predicted window before it is called early or
#: late: a loaded machine runs timers late; a bug report must not hinge on a few milliseconds
PREDICTION_SLACK_S = 1.0


def _t(ev: Event) -> float:
    return ev["t"]


def notice_text(ev: Event) -> str:
    """The error or reason a notice carries ("" when it has none)."""
    for key in ("error", "reason"):
        v = ev.get(key)
        if v:
            return str(v)
    return ""


def stopped_t(p: Proc) -> float | None:
    """When the harness began stopping ``p`` (its first ``proc.signal``, else its ``proc.exit``):
    anything ``p`` wrote from then on is its reaction to being stopped."""
    ts = [t for t in (p.signal_t, p.proc_exit_t) if t is not None]
    return min(ts) if ts else None


def gave_up(p: Proc) -> bool:
    """``p`` ended on its own before finishing (:attr:`Proc.gave_up_t`: ``client.exit`` ok=false
    or ``proc.exit`` expected=false, with no ``proc.signal`` before; a SIGKILL after an ignored
    SIGTERM, or a process the harness aborted, is the harness's doing, not giving up)."""
    return p.gave_up_t is not None


def finished(p: Proc) -> bool:
    """A publisher finished its workload: it wrote ``client.exit`` "done" (not ok=false), or it
    exited 0 by itself (``proc.exit`` expected=true before any ``proc.signal``)."""
    if p.exit_ok is False:
        return False
    if p.exit_reason == "done":
        return True
    return bool(p.expected) and p.proc_exit_t is not None and not p.signalled_before(p.proc_exit_t)


# ---- detection ---------------------------------------------------------------------------------
def detect(idx: Fold, life: Lifecycle, t_from: float, t_fault: float) -> tuple[dict[str, dict[str, Any]], int]:
    """The clients' own notices from ``t_from`` (the first fault.start) on: the first
    per process as ``{detection_s, by, text, role}`` measured from ``t_fault`` (the first effect,
    clamped at 0); and how many notices were left out as the harness's doing. O(k log k)."""
    stop = {p.name: stopped_t(p) for p in life.procs.values()}
    cands = [ev for k in NOTICE_KINDS for ev in idx.kind(k) if ev["t"] >= t_from]
    cands += [ev for ev in idx.notices[bisect_left(idx.notices, t_from, key=_t):]]
    cands.sort(key=_t)
    notices: list[Event] = []
    excluded = 0
    for ev in cands:
        s = stop.get(ev["proc"])
        if s is not None and ev["t"] >= s:
            excluded += 1
            continue
        notices.append(ev)
    per: dict[str, dict[str, Any]] = {}
    for ev in notices:
        if ev["proc"] not in per:
            d = ev["t"] - t_fault
            row: dict[str, Any] = {"detection_s": max(0.0, d), "by": ev["kind"], "text": notice_text(ev),
                                   "role": ev["role"]}
            if d < 0:
                row["before_effect_s"] = -d  # noticed before the harness's poll saw the effect
            per[ev["proc"]] = row
    return per, excluded


def noticed_between(idx: Fold, life: Lifecycle, proc: str, a: float, b: float) -> Event | None:
    """``proc``'s first own notice (the detection kinds) in [a, b], before the harness began stopping
    it; None when it wrote none. O(k) over the notice kinds."""
    stop = stopped_t(life.procs[proc]) if proc in life.procs else None
    end = b if stop is None else min(b, stop - 1e-9)
    best: Event | None = None
    for src in (*(idx.kind(k) for k in NOTICE_KINDS), idx.notices):
        for ev in src[bisect_left(src, a, key=_t):bisect_right(src, end, key=_t)]:
            if ev["proc"] == proc and (best is None or ev["t"] < best["t"]):
                best = ev
                break
    return best


def predict_detection(idx: Fold, first: FaultWindow, det_proc: dict[str, dict[str, Any]]) -> dict[str, Any] | None:
    """The detection time each client's heartbeat predicts, beside the measured one.

    Only when the first fault silences the connection (its ``fault.start`` says ``silent``): a
    fault that closes or resets it is noticed at once, whatever the heartbeat. Per process: the
    window its ``client.start`` declared (``heartbeat_window_s``, see
    :mod:`harness.clients.heartbeat`), the measured time (from the fault's effect), and whether that
    fell inside, was early (something other than the heartbeat told it first), or late (past the
    latest time its library promises: worth a bug report), each with ``PREDICTION_SLACK_S`` of
    slack. Processes the fault did not target are left out. O(c) for c clients."""
    if not first.silent:
        return None
    per: dict[str, Any] = {}
    for ev in idx.kind("client.start"):
        if not first.targets(ev["role"]) or ev["proc"] in per:
            continue
        window = client_window(ev)
        measured = det_proc.get(ev["proc"], {}).get("detection_s")
        row: dict[str, Any] = {"role": ev["role"], "library": ev.get("library"),
                               "heartbeat_s": ev.get("heartbeat_s"),
                               "window_s": None if window is None else list(window), "measured_s": measured}
        if window is not None and measured is not None:
            lo, hi = window
            slack = PREDICTION_SLACK_S
            row["within"] = ("early" if measured < lo - slack
                             else "late" if hi is not None and measured > hi + slack else "inside")
        per[ev["proc"]] = row
    return {"fault": first.name, "by_proc": per}


def prediction_notes(timing: Timing) -> list[str]:
    """Sentences for the processes that noticed a silent fault later than their heartbeat
    predicts (a library bug or a blocked I/O loop: either way worth reporting). Never a verdict
    change by itself: ``max_detection_s`` is the deadline a user sets (rule late_detection)."""
    pred = timing.detail.get("heartbeat_prediction") or {}
    notes = []
    for proc, row in pred.get("by_proc", {}).items():
        if row.get("within") == "late":
            notes.append(f"{proc} ({row['library']}, heartbeat {row['heartbeat_s']} s) noticed the silent fault "
                         f"{pred.get('fault')} after {row['measured_s']:.1f} s, later than its heartbeat predicts "
                         f"(at most {row['window_s'][1]:.1f} s)")
    return notes


# ---- recovery ----------------------------------------------------------------------------------
@dataclass(slots=True)
class _Conn:
    """One process's connection history: break and (re)open times, sorted."""

    breaks: list[float] = field(default_factory=list)
    opens: list[float] = field(default_factory=list)

    def last_break(self, t: float) -> float | None:
        """The last break at or before ``t`` that no ``conn.open`` at or before ``t`` followed."""
        k = bisect_right(self.breaks, t)
        if not k:
            return None
        b = self.breaks[k - 1]
        j = bisect_right(self.opens, t)
        if j and self.opens[j - 1] >= b:
            return None
        return b


def _conns(idx: Fold) -> dict[str, _Conn]:
    out: dict[str, _Conn] = {}
    for kind in BREAK_KINDS:
        for ev in idx.kind(kind):
            out.setdefault(ev["proc"], _Conn()).breaks.append(ev["t"])
    for ev in idx.kind("conn.open"):
        out.setdefault(ev["proc"], _Conn()).opens.append(ev["t"])
    for c in out.values():
        c.breaks.sort()
        c.opens.sort()
    return out


def _confirms_before(idx: Fold, proc: str, t: float) -> bool:
    """Whether ``proc``'s last publish.ok before ``t`` was confirmed (a client that confirms).
    Walks back from ``t``; O(distance to that ok)."""
    evs = idx.events
    for k in range(bisect_left(evs, t, key=_t) - 1, -1, -1):
        ev = evs[k]
        if ev["kind"] == "publish.ok" and ev["proc"] == proc:
            return bool(ev["confirmed"])
    return False


def recover(idx: Fold, life: Lifecycle, t_heal: float, detail: dict[str, Any]) -> dict[str, float | None]:
    """Per role, seconds from ``t_heal`` to the first credited success (module docstring); fills
    ``detail`` with per-process times, work left, and why a role never recovered or was not needed."""
    conns = _conns(idx)
    empty = _Conn()
    pubs = {p.name: p for p in life.clients("publisher") if p.end_t is None or p.end_t > t_heal}
    dead = {p.name for p in life.clients("consumer") if gave_up(p)}
    cons = {p.name: p for p in life.clients("consumer")
            if p.name not in dead and (p.end_t is None or p.end_t > t_heal)}
    first_ok: dict[str, float] = {}  # publisher -> first confirmed ok after the heal
    first_plain: dict[str, float] = {}  # publisher -> first unconfirmed ok on a live connection
    first_dl: dict[str, float] = {}  # consumer -> first credited deliver
    uncredited: dict[str, float] = {}  # consumer -> the break before its first deliver on a dead link
    open_outcomes = 0  # outcomes after the heal of publishes invoked before it
    evs = idx.events
    want = len(pubs) + len(cons)
    done: set[str] = set()
    for k in range(bisect_left(evs, t_heal, key=_t), len(evs)):
        if len(done) >= want:
            break
        ev = evs[k]
        kind = ev["kind"]
        if kind == "publish.ok" or kind == "publish.info" or kind == "publish.fail":
            inv = idx.first_invoke(ev["id"])
            if inv is not None and inv["t"] < t_heal:
                open_outcomes += 1
            p = ev["proc"]
            if kind != "publish.ok" or p not in pubs:
                continue
            t = ev["t"]
            end = pubs[p].end_t
            if end is not None and t > end:
                continue
            if ev["confirmed"]:
                if p not in first_ok:
                    first_ok[p] = t
                    done.add(p)
            elif p not in first_plain and conns.get(p, empty).last_break(t) is None:
                first_plain[p] = t
        elif kind == "deliver":
            p = ev["proc"]
            if p not in cons or p in first_dl:
                continue
            t = ev["t"]
            end = cons[p].end_t
            if end is not None and t > end:
                continue
            brk = conns.get(p, empty).last_break(t)
            if brk is not None:
                inv = idx.first_invoke(ev["id"])
                if inv is None or inv["t"] <= brk:
                    uncredited.setdefault(p, brk)
                    continue
            first_dl[p] = t
            done.add(p)
    # an unconfirmed ok counts for a client that never confirms
    for p, t in first_plain.items():
        if p not in first_ok and not _confirms_before(idx, p, t_heal):
            first_ok[p] = t
    rec_proc = {p: t - t_heal for p, t in {**first_ok, **first_dl}.items()}
    detail["recovery_by_proc"] = rec_proc
    roles: dict[str, float | None] = {
        "publisher": min((first_ok[p] for p in first_ok), default=None),
        "consumer": min((first_dl[p] for p in first_dl), default=None),
    }
    rec_role = {r: None if t is None else t - t_heal for r, t in roles.items()}

    work = {"publisher": _publisher_work(idx, life, t_heal, open_outcomes),
            "consumer": _consumer_work(idx, life, t_heal)}
    detail["work_left"] = {r: w for r, w in work.items() if w}
    never: dict[str, str] = {}
    not_needed: dict[str, str] = {}
    for role in ("publisher", "consumer"):
        if rec_role[role] is not None:
            continue
        if not life.clients(role):
            not_needed[role] = f"no {role} in the run"
        elif not work[role]:
            not_needed[role] = ("no work was left for the publishers after the heal" if role == "publisher"
                                else "no messages were left for the consumers after the heal")
        elif role == "publisher":
            never[role] = _publisher_never(life, pubs, work[role], idx.t0)
        else:
            never[role] = _consumer_never(life, cons, dead, uncredited, work[role], idx.t0)
    if never:
        detail["recovery_never"] = never
    if not_needed:
        detail["recovery_not_needed"] = not_needed
    return rec_role


def _were(n: int, word: str, many: str | None = None) -> str:
    """``3 messages were`` / ``1 message was``."""
    return f"{plural(n, word, many)} {'was' if n == 1 else 'were'}"


def _publisher_work(idx: Fold, life: Lifecycle, t_heal: float, open_outcomes: int) -> str:
    """Why the publishers still had work at the heal ("" when none)."""
    parts = []
    after = len(idx.invoke_t) - bisect_left(idx.invoke_t, t_heal)
    if after:
        parts.append(f"{_were(after, 'publish', 'publishes')} invoked after the heal")
    pending = sum(1 for ev in idx.pending.values() if ev["t"] < t_heal) + open_outcomes
    if pending:
        parts.append(f"{_were(pending, 'publish', 'publishes')} still waiting for an outcome at the heal")
    unfinished = [p.name for p in life.clients("publisher") if not finished(p)]
    if unfinished:
        parts.append(f"{', '.join(unfinished)} never finished its workload")
    return "; ".join(parts)


def _consumer_work(idx: Fold, life: Lifecycle, t_heal: float) -> str:
    """Why the consumers still had work after the heal ("" when none)."""
    parts = []
    if idx.drained:
        parts.append(f"the drain found {plural(len(idx.drained), 'message')} left in the queue")
    else:
        rem = [ev.get("remaining") for ev in idx.kind("drain.done")]
        left = max((r for r in rem if isinstance(r, int)), default=0)
        if left > 0:
            parts.append(f"the drain left {plural(left, 'message')} in the queue")
    after = len(idx.invoke_t) - bisect_left(idx.invoke_t, t_heal)
    if after:
        parts.append(f"{_were(after, 'message')} published after the heal")
    return "; ".join(parts)


def _publisher_never(life: Lifecycle, pubs: dict[str, Proc], work: str, t0: float) -> str:
    why = "no successful publish after the heal"
    gone = [p for p in life.clients("publisher") if p.name not in pubs]
    if gone:
        why += " (" + "; ".join(_ended(p, t0) for p in gone) + ")"
    return f"{why}, while {work}"


def _consumer_never(life: Lifecycle, cons: dict[str, Proc], dead: set[str],
                    uncredited: dict[str, float], work: str, t0: float) -> str:
    why = "no delivery on a live connection after the heal"
    causes = []
    for p in life.clients("consumer"):
        if p.name in dead:
            err = p.exit_error or p.exit_reason
            causes.append(f"{p.name} gave up at t=+{(p.gave_up_t or p.end_t or t0) - t0:.1f}s"
                          + (f": {err}" if err and err != "None" else ""))
        elif p.name not in cons:
            causes.append(f"{p.name} had stopped before the heal")
        elif p.name in uncredited:
            causes.append(f"{p.name}'s deliveries after the heal came on a connection lost at "
                          f"t=+{uncredited[p.name] - t0:.1f}s and never reopened")
    if causes:
        why += " (" + "; ".join(causes) + ")"
    return f"{why}, while {work}"


def _ended(p: Proc, t0: float) -> str:
    how = "gave up" if gave_up(p) else "ended"
    return f"{p.name} {how} at t=+{(p.end_t or 0) - t0:.1f}s before the heal"


# ---- both --------------------------------------------------------------------------------------
def measure(idx: Fold, life: Lifecycle, opts: CheckOptions | None = None) -> Timing:
    """Detection and recovery (module docstring). ``detail`` keeps the fault windows with their
    effects, the per-process times, and the reasons behind a "never" or a "not needed"."""
    timing = Timing()
    windows = fault_windows(idx)
    detail: dict[str, Any] = {"faults": [describe(w, idx.t0) for w in windows]}
    timing.detail = detail
    t_fault = first_effect_t(windows)
    if t_fault is None:
        return timing
    t_from = min(w.started_t for w in windows)
    first = min(windows, key=lambda w: w.took_effect_t)
    detail["first_fault_start_s"] = t_from - idx.t0
    detail["first_effect_s"] = t_fault - idx.t0

    # detection
    det_proc, excluded = detect(idx, life, t_from, t_fault)
    det_role: dict[str, float | None] = {"publisher": None, "consumer": None}
    for row in det_proc.values():
        r = row["role"]
        if det_role.get(r) is None or row["detection_s"] < (det_role[r] or 0.0):
            det_role[r] = row["detection_s"]
    timing.detection_s = min((row["detection_s"] for row in det_proc.values()), default=None)
    timing.detection_by_role = det_role
    detail["detection_by_proc"] = det_proc
    if excluded:
        detail["detection_excluded"] = excluded  # notices written while the harness stopped their process
    predicted = predict_detection(idx, first, det_proc)
    if predicted is not None:
        detail["heartbeat_prediction"] = predicted

    # recovery
    t_heal = last_heal_t(windows)
    if t_heal is None:
        detail["recovered"] = False
        detail["unhealed"] = sorted({w.name for w in windows if w.effect_end_t is None})
        timing.recovery_by_role = {"publisher": None, "consumer": None}
        return timing
    stops = [w.heal_t for w in windows if w.heal_t is not None]
    if stops:
        detail["last_fault_stop_s"] = max(stops) - idx.t0
    detail["last_heal_s"] = t_heal - idx.t0
    rec_role = recover(idx, life, t_heal, detail)
    timing.recovery_by_role = rec_role
    have = [v for v in rec_role.values() if v is not None]
    never = detail.get("recovery_never")
    timing.recovery_s = None if never or not have else max(have)
    detail["recovered"] = not never
    return timing
