"""Who ran when: client process lifetimes, fault windows and run phases, from low-volume events.

Complexity: O(k) over the k lifecycle events (client.*, proc.exit, proc.signal, fault.*, run.phase, conn.*);
none of them is per message.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from harness.checker.fold import Fold

CLIENT_ROLES = frozenset({"publisher", "consumer"})
#: how harness/clients/supervisor.py notes a process the harness aborted (a harness failure)
ABORT_NOTE = "the run was aborted"
#: proc.exit notes of processes the harness stopped (for histories without ``proc.signal``)
HARNESS_NOTES = ("stopped by the harness", "ignored SIGTERM")
#: low-volume kinds a client writes (used to learn which processes are clients)
CLIENT_KINDS = ("client.start", "client.exit", "conn.open", "conn.lost", "conn.blocked",
                "conn.unblocked", "consume.cancelled")


@dataclass(slots=True)
class Proc:
    """One client process as the history shows it."""

    name: str
    role: str | None = None
    pid: int | None = None
    start_t: float | None = None  # client.start
    library: str | None = None
    strategy: str | None = None
    exit_t: float | None = None  # client.exit
    exit_reason: str | None = None
    exit_ok: bool | None = None
    exit_error: str | None = None  # client.exit ``error``: the last error the client saw
    proc_exit_t: float | None = None  # proc.exit written by the harness
    code: int | None = None
    expected: bool | None = None
    note: str | None = None  # proc.exit ``note`` ("exited on its own", "the run was aborted ...")
    signal_t: float | None = None  # the first proc.signal to it: the harness began stopping it
    signal_why: str | None = None

    @property
    def end_t(self) -> float | None:
        """When the process stopped running, as far as the history knows (None: no end seen)."""
        ends = [t for t in (self.exit_t, self.proc_exit_t) if t is not None]
        return min(ends) if ends else None

    @property
    def aborted(self) -> bool:
        """The harness aborted it (a harness failure, not the client's doing): its end proves nothing."""
        return self.signal_why == "abort" or (self.note or "").startswith(ABORT_NOTE)

    def signalled_before(self, t: float) -> bool:
        """The harness had begun stopping it at or before ``t`` (a ``proc.signal``; in histories
        older than ``proc.signal``, a proc.exit note that says the harness stopped it)."""
        if self.signal_t is not None:
            return self.signal_t <= t
        # no proc.signal (an older history): when it was signalled is not known, only that it was
        return (self.note or "").startswith(HARNESS_NOTES)

    @property
    def gave_up_t(self) -> float | None:
        """When the client gave up: it exited on its own (``proc.exit`` expected=false with no
        ``proc.signal`` to it before) or said so (``client.exit`` ok=false before any signal).
        None when it did not, never started (``client.start``), or the harness aborted it:
        those are the harness's to explain (integrity), never a finding about the client."""
        if self.start_t is None or self.aborted:
            return None
        ts = []
        if self.exit_ok is False and self.exit_t is not None and not self.signalled_before(self.exit_t):
            ts.append(self.exit_t)
        if self.expected is False and self.proc_exit_t is not None and not self.signalled_before(self.proc_exit_t):
            ts.append(self.proc_exit_t)
        return min(ts) if ts else None


@dataclass(slots=True)
class Lifecycle:
    procs: dict[str, Proc]  # clients (and any proc.exit target)
    faults: list[tuple[str, float, float | None]]  # (fault name, start t, stop t or None: never healed)
    phases: list[tuple[str, float]]  # (phase, t)
    run_end_t: float | None = None
    drain_t: float | None = None  # when the drain phase began (clients are done by then)
    extra: dict[str, int] = field(default_factory=dict)

    def clients(self, role: str | None = None) -> list[Proc]:
        return [p for p in self.procs.values() if p.role in CLIENT_ROLES and (role is None or p.role == role)]


def _opt_str(value: object) -> str | None:
    """An optional event field as text: None stays None (absent), anything else is ``str``-ed."""
    return None if value is None else str(value)


def scan(idx: Fold, publishers: dict[str, int], consumers: dict[str, int]) -> Lifecycle:
    """Collect lifetimes. ``publishers``/``consumers``: procs seen writing message events. O(k)."""
    procs: dict[str, Proc] = {}

    def proc(name: str) -> Proc:
        p = procs.get(name)
        if p is None:
            p = procs[name] = Proc(name)
        return p

    for name in publishers:
        proc(name).role = "publisher"
    for name in consumers:
        proc(name).role = "consumer"
    for kind in CLIENT_KINDS:
        for ev in idx.kind(kind):
            p = proc(ev["proc"])
            p.role = p.role or ev["role"]
            if p.pid is None:
                p.pid = ev.get("pid")
            if kind == "client.start" and p.start_t is None:
                p.start_t = ev["t"]
                p.library = ev.get("library")
                p.strategy = ev.get("strategy")
            elif kind == "client.exit" and p.exit_t is None:
                p.exit_t = ev["t"]
                p.exit_reason = str(ev.get("reason"))
                ok = ev.get("ok")
                p.exit_ok = None if ok is None else bool(ok)
                p.exit_error = _opt_str(ev.get("error"))
    for ev in idx.kind("proc.exit"):
        p = proc(str(ev["target"]))
        if p.proc_exit_t is None:
            p.proc_exit_t = ev["t"]
            p.code = ev.get("code")
            p.expected = bool(ev.get("expected"))
            p.note = _opt_str(ev.get("note"))
    for ev in idx.kind("proc.signal"):
        p = proc(str(ev["target"]))
        if p.signal_t is None:
            p.signal_t = ev["t"]
            p.signal_why = _opt_str(ev.get("why"))

    faults: list[tuple[str, float, float | None]] = []
    open_: dict[str, list[int]] = {}
    # pair starts and stops by fault name, in time order
    starts = idx.kind("fault.start")
    stops = idx.kind("fault.stop")
    events = sorted([(e["t"], 0, e) for e in starts] + [(e["t"], 1, e) for e in stops],
                    key=lambda x: (x[0], x[1]))
    unmatched_stops = 0
    for t, is_stop, ev in events:
        name = str(ev["fault"])
        if not is_stop:
            open_.setdefault(name, []).append(len(faults))
            faults.append((name, t, None))
        elif open_.get(name):
            i = open_[name].pop(0)
            # a heal that raised (healed: false) leaves the fault unhealed
            faults[i] = (name, faults[i][1], None if ev.get("healed") is False else t)
        else:
            unmatched_stops += 1
    phases = [(str(ev["phase"]), ev["t"]) for ev in idx.kind("run.phase")]
    run_end = idx.kind("run.end")
    drain_t = next((t for ph, t in phases if ph == "drain"), None)
    return Lifecycle(procs, faults, phases, run_end[0]["t"] if run_end else None, drain_t,
                     {"unmatched_fault_stops": unmatched_stops})
