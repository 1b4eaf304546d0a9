"""Build histories by hand, readably: for the checker's tests, the benchmark, and anyone checking
how the checker judges a story.

    h = HistoryBuilder()
    h.start("publisher-0"); h.start("consumer-0")
    h.at(1.0).publish("publisher-0", "p0-0")          # invoke + ok (confirmed)
    h.consume("consumer-0", "p0-0")                    # deliver + ack
    h.finish()                                         # exits, drain phase, drain.done, run.end
    result = check(h.events())

Times are seconds relative to the builder's start. Without an explicit ``t=``, each event is
``step`` after the previous one; ``at(t)`` moves the clock. ``events()`` returns them sorted
(stable) by time, like a merged history. Roles follow process names ("publisher-*",
"consumer-*") unless given to :meth:`start`.
"""

from __future__ import annotations

from typing import Any

from harness.history import Event


class HistoryBuilder:
    def __init__(self, t0: float = 1000.0, wall_offset: float = 1_700_000_000.0, step: float = 0.001) -> None:
        self.t0 = t0
        self.now = t0
        self.step = step
        self.wall_offset = wall_offset
        self._events: list[Event] = []
        self._roles: dict[str, str] = {"nemesis": "nemesis", "drain": "drain", "harness": "harness"}
        self._pids: dict[str, int] = {}
        #: per-process clock skew (seconds added to wall): to make clocks disagree in tests
        self.skew: dict[str, float] = {}

    # -- clock and raw events -------------------------------------------------------------------
    def at(self, t: float) -> HistoryBuilder:
        """Move the clock to ``t`` seconds after the start."""
        self.now = self.t0 + t
        return self

    def role_of(self, proc: str) -> str:
        role = self._roles.get(proc)
        if role is None:
            role = "publisher" if proc.startswith("pub") else "consumer" if proc.startswith("con") else "harness"
            self._roles[proc] = role
        return role

    def emit(self, proc: str, kind: str, *, t: float | None = None, role: str | None = None,
             **fields: Any) -> Event:
        """Append one event (``t`` relative to the start; default: the clock, which then steps)."""
        if t is None:
            ts = self.now
            self.now += self.step
        else:
            ts = self.t0 + t
        pid = self._pids.setdefault(proc, 1000 + len(self._pids))
        ev: Event = {
            "t": ts,
            "wall": ts + self.wall_offset + self.skew.get(proc, 0.0),
            "pid": pid,
            "proc": proc,
            "role": role or self.role_of(proc),
            "kind": kind,
            **fields,
        }
        self._events.append(ev)
        return ev

    def events(self) -> list[Event]:
        """The history so far, sorted by time (stable), as merge() would write it."""
        return sorted(self._events, key=lambda e: e["t"])

    # -- clients --------------------------------------------------------------------------------
    def start(self, proc: str, role: str | None = None, library: str = "pika", version: str = "1.3.2",
              strategy: str = "test", **kw: Any) -> Event:
        if role:
            self._roles[proc] = role
        return self.emit(proc, "client.start", library=library, version=version, strategy=strategy, **kw)

    def exit(self, proc: str, reason: str = "done", ok: bool = True, **kw: Any) -> Event:
        return self.emit(proc, "client.exit", reason=reason, ok=ok, **kw)

    def invoke(self, proc: str, id: str, **kw: Any) -> Event:
        return self.emit(proc, "publish.invoke", id=id, **kw)

    def ok(self, proc: str, id: str, confirmed: bool = True, **kw: Any) -> Event:
        return self.emit(proc, "publish.ok", id=id, confirmed=confirmed, **kw)

    def fail(self, proc: str, id: str, error: str = "nack", **kw: Any) -> Event:
        return self.emit(proc, "publish.fail", id=id, error=error, **kw)

    def info(self, proc: str, id: str, error: str = "timeout", **kw: Any) -> Event:
        return self.emit(proc, "publish.info", id=id, error=error, **kw)

    def publish(self, proc: str, id: str, confirmed: bool = True) -> None:
        """invoke then ok."""
        self.invoke(proc, id)
        self.ok(proc, id, confirmed=confirmed)

    def deliver(self, proc: str, id: str, redelivered: bool = False, **kw: Any) -> Event:
        return self.emit(proc, "deliver", id=id, redelivered=redelivered, **kw)

    def ack(self, proc: str, id: str, **kw: Any) -> Event:
        return self.emit(proc, "ack", id=id, **kw)

    def consume(self, proc: str, id: str, redelivered: bool = False) -> None:
        """deliver then ack."""
        self.deliver(proc, id, redelivered)
        self.ack(proc, id)

    def conn(self, proc: str, what: str, **kw: Any) -> Event:
        """conn.open / conn.lost (error=...) / conn.blocked / conn.unblocked: ``what`` is the suffix."""
        if what == "lost":
            kw.setdefault("error", "ConnectionResetError")
        return self.emit(proc, f"conn.{what}", **kw)

    def cancelled(self, proc: str, **kw: Any) -> Event:
        return self.emit(proc, "consume.cancelled", **kw)

    # -- nemesis, drain, harness ----------------------------------------------------------------
    def fault_start(self, fault: str = "proxy_down", **kw: Any) -> Event:
        return self.emit("nemesis", "fault.start", fault=fault, **kw)

    def fault_stop(self, fault: str = "proxy_down", **kw: Any) -> Event:
        return self.emit("nemesis", "fault.stop", fault=fault, **kw)

    def drain(self, id: str, redelivered: bool = False, **kw: Any) -> Event:
        return self.emit("drain", "drain", id=id, redelivered=redelivered, **kw)

    def drain_done(self, complete: bool = True, remaining: int = 0, **kw: Any) -> Event:
        return self.emit("drain", "drain.done", complete=complete, remaining=remaining, **kw)

    def phase(self, phase: str, **kw: Any) -> Event:
        return self.emit("harness", "run.phase", phase=phase, **kw)

    def proc_exit(self, target: str, code: int | None = 0, expected: bool = True, **kw: Any) -> Event:
        return self.emit("harness", "proc.exit", target=target, code=code, expected=expected, **kw)

    def sample(self, ready: int, unacked: int = 0, consumers: int = 1, **kw: Any) -> Event:
        return self.emit("harness", "queue.sample", messages_ready=ready, messages_unacked=unacked,
                         consumers=consumers, **kw)

    def run_end(self, **kw: Any) -> Event:
        return self.emit("harness", "run.end", **kw)

    def clients(self) -> list[str]:
        """Client processes that have written something, in first-seen order."""
        seen: dict[str, None] = {}
        for ev in self._events:
            if ev["role"] in ("publisher", "consumer"):
                seen.setdefault(ev["proc"], None)
        return list(seen)

    def finish(self, drained: tuple[str, ...] | list[str] = (), complete: bool = True,
               remaining: int = 0) -> HistoryBuilder:
        """End the run cleanly: every client exits (consumers by SIGTERM), proc.exit for each,
        the drain phase finds ``drained``, drain.done, phase done, run.end."""
        procs = self.clients()
        exited = {ev["proc"] for ev in self._events if ev["kind"] in ("client.exit", "proc.exit")}
        exited |= {ev.get("target") for ev in self._events if ev["kind"] == "proc.exit"}
        self.phase("settle")
        for p in procs:
            if p in exited:
                continue
            self.exit(p, "sigterm" if self.role_of(p) == "consumer" else "done")
            self.proc_exit(p, 0, True)
        self.phase("drain")
        for i in drained:
            self.drain(i)
        self.drain_done(complete, remaining)
        self.phase("done")
        self.run_end()
        return self


def clean_run(publishers: int = 1, consumers: int = 1, per_publisher: int = 10,
              confirmed: bool = True) -> HistoryBuilder:
    """A complete run where every message is published, confirmed and delivered once, in order.

    Messages are published round-robin across publishers and delivered round-robin across
    consumers, so each publisher's messages arrive in its publish order. Call ``finish()`` (or add
    more events first).
    """
    h = HistoryBuilder()
    h.phase("warmup")
    cons = [f"consumer-{c}" for c in range(consumers)]
    pubs = [f"publisher-{p}" for p in range(publishers)]
    for c in cons:
        h.start(c)
    for p in pubs:
        h.start(p)
    h.at(0.5)
    k = 0
    for seq in range(per_publisher):
        for pn, p in enumerate(pubs):
            i = f"p{pn}-{seq}"
            h.publish(p, i, confirmed=confirmed)
            h.consume(cons[k % len(cons)], i)
            k += 1
    return h
