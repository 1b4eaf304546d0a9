"""Broker process faults: graceful restart, crash (SIGKILL) and pause (SIGSTOP).

Each acts on the one beam.smp of the node (the pid file's process, not the shell wrapper) and
heals by bringing it back: ``start_node`` waits for an AMQP handshake, so after heal the broker
really answers. Heals check the process state first, which makes them idempotent and safe after
a start that failed half-way.

Effects: "broker down" once the beam process is gone (observed: the pid is no longer alive),
"broker up" once ``start_node`` got an AMQP handshake (observed); "broker paused" / "broker
resumed" once the kernel shows the process stopped / running again (``/proc/<pid>/stat``;
observed=false where the process is not ours to inspect, e.g. in a container).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from harness.errors import ChaosError
from harness.faults.base import Fault, FaultContext, Scope


def _require_process(fault: Fault, ctx: FaultContext) -> None:
    if not getattr(ctx.broker, "supports_process_faults", False):
        raise ChaosError(f"fault {fault.name!r} needs control of the broker process, which this backend lacks",
                         "use the local backend (--backend local) or a proxy/admin fault")


def _stopped(pid: int | None) -> bool | None:
    """Is the process stopped (SIGSTOP: state T)? None when we cannot see it."""
    if pid is None:
        return None
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rpartition(")")[2].split()[0] in ("T", "t")


def _await_state(pid: int | None, stopped: bool, timeout: float = 5.0) -> bool:
    """Poll the kernel's view of ``pid`` until it is (not) stopped; False when unseen in time.
    A signal is delivered at once, but every thread must stop: this waits for that, briefly."""
    deadline = time.monotonic() + timeout
    while True:
        state = _stopped(pid)
        if state is None:
            return False
        if state == stopped:
            return True
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)


def _record_down(ctx: FaultContext) -> None:
    ctx.effect("broker down", observed=ctx.broker.beam_pid() is None)


def _heal_process(ctx: FaultContext) -> None:
    """Start the node unless it runs; "broker up" once it answers an AMQP handshake."""
    if ctx.broker.beam_pid() is None:
        ctx.broker.start_node()  # returns after an AMQP handshake
    ctx.effect("broker up", observed=ctx.broker.beam_pid() is not None)


@dataclass
class BrokerRestart(Fault):
    name: ClassVar[str] = "broker-restart"
    description: ClassVar[str] = ("graceful stop of the broker node (clients get connection.close), "
                                  "started again at heal; data dir kept")
    family: ClassVar[str] = "broker process"
    needs: ClassVar[frozenset[str]] = frozenset({"process"})
    scope: ClassVar[Scope] = "broker"  # the node's one process: every run on it

    def start(self, ctx: FaultContext) -> None:
        _require_process(self, ctx)
        ctx.broker.stop_node()
        _record_down(ctx)

    def heal(self, ctx: FaultContext) -> None:
        _heal_process(ctx)


@dataclass
class BrokerCrash(Fault):
    name: ClassVar[str] = "broker-crash"
    description: ClassVar[str] = ("SIGKILL of the broker (no connection.close, no flush: transient messages "
                                  "lost, persistent ones in durable queues kept), started again at heal")
    family: ClassVar[str] = "broker process"
    needs: ClassVar[frozenset[str]] = frozenset({"process"})
    scope: ClassVar[Scope] = "broker"  # the node's one process: every run on it

    def start(self, ctx: FaultContext) -> None:
        _require_process(self, ctx)
        ctx.broker.kill_node()
        _record_down(ctx)

    def heal(self, ctx: FaultContext) -> None:
        _heal_process(ctx)


@dataclass
class BrokerPause(Fault):
    name: ClassVar[str] = "broker-pause"
    description: ClassVar[str] = ("SIGSTOP of the broker: TCP still connects (kernel backlog) but AMQP is "
                                  "silent, a hung broker; SIGCONT at heal, connections carry on")
    family: ClassVar[str] = "broker process"
    needs: ClassVar[frozenset[str]] = frozenset({"process"})
    scope: ClassVar[Scope] = "broker"  # the node's one process: every run on it

    def start(self, ctx: FaultContext) -> None:
        _require_process(self, ctx)
        ctx.broker.pause()
        ctx.effect("broker paused", observed=_await_state(ctx.broker.beam_pid(), stopped=True))

    def silences(self) -> bool:
        return True  # held to the clients' heartbeat detection window (harness.run.holds)

    def heal(self, ctx: FaultContext) -> None:
        ctx.broker.resume()  # SIGCONT to a running (or absent) beam is harmless
        ctx.effect("broker resumed", observed=_await_state(ctx.broker.beam_pid(), stopped=False))
