"""Who ran when: client process lifetimes, fault windows and run phases, from low-volume events.

Complexity: O(k) over the k lifecycle events (client.*, proc.exit, fault.*, run.phase, conn.*);
none of them is per message.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from harness.checker.fold import Fold

CLIENT_ROLES = frozenset({"publisher", "consumer"})
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
    proc_exit_t: float | None = None  # proc.exit written by the harness
    code: int | None = None
    expected: bool | None = None

    @property
    def end_t(self) -> float | None:
        """When the process stopped running, as far as the history knows (None: no end seen)."""
        ends = [t for t in (self.exit_t, self.proc_exit_t) if t is not None]
        return min(ends) if ends else None


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
    for ev in idx.kind("proc.exit"):
        p = proc(str(ev["target"]))
        if p.proc_exit_t is None:
            p.proc_exit_t = ev["t"]
            p.code = ev.get("code")
            p.expected = bool(ev.get("expected"))

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
            faults[i] = (name, faults[i][1], t)
        else:
            unmatched_stops += 1
    phases = [(str(ev["phase"]), ev["t"]) for ev in idx.kind("run.phase")]
    run_end = idx.kind("run.end")
    drain_t = next((t for ph, t in phases if ph == "drain"), None)
    return Lifecycle(procs, faults, phases, run_end[0]["t"] if run_end else None, drain_t,
                     {"unmatched_fault_stops": unmatched_stops})
