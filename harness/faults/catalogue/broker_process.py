"""Broker process faults: graceful restart, crash (SIGKILL) and pause (SIGSTOP).

Each acts through the backend contract's node operations (harness/env/backend.py): on the local
backend the one beam.smp of the node (the pid file's process, not the shell wrapper), on compose
the broker container. Heal brings the node back: ``start_node`` waits for an AMQP handshake, so
after heal the broker really answers. Heals ask ``node_state`` first, which makes them
idempotent and safe after a start that failed half-way.

Effects: "broker down" once the node is gone (observed: ``node_state`` says down), "broker up"
once ``start_node`` got an AMQP handshake (observed), "broker paused" / "broker resumed" once
the backend shows the node stopped / running again (polled briefly: every thread of the process
must stop, which takes a moment after the signal).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import ClassVar

from harness.env.backend import NodeState
from harness.errors import FaultUnavailable
from harness.faults.base import Fault, FaultContext, Scope


def require(fault: Fault, ctx: FaultContext) -> None:
    """Refuse, with the reason, a fault whose backend needs this context's backend lacks. The
    engine checks the same before a run starts (harness.engine.check_available); this guards
    faults started directly (tests, the pytest plugin's own timelines)."""
    lacking = ctx.broker.capabilities.lacks(fault.needs)
    if "process" in lacking:
        raise FaultUnavailable(f"fault {fault.name!r} needs control of the broker process, "
                               f"which the {ctx.broker.kind} backend lacks",
                               "use the local or compose backend (--backend local), or a proxy/admin fault")
    if lacking:
        raise FaultUnavailable(f"fault {fault.name!r} needs {', '.join(lacking)}, "
                               f"which the {ctx.broker.kind} backend lacks")


def await_state(ctx: FaultContext, want: NodeState, node: str | None = None, timeout: float = 5.0) -> bool:
    """Poll the backend's view of ``node`` until it is ``want``; False when unseen in time. A
    signal is delivered at once, but every thread must stop (or resume): this waits for that."""
    deadline = time.monotonic() + timeout
    while True:
        state = ctx.broker.node_state(node)
        if state == want:
            return True
        if state == "unknown" or time.monotonic() > deadline:
            return False
        time.sleep(0.02)


def _record_down(ctx: FaultContext) -> None:
    ctx.effect("broker down", observed=ctx.broker.node_state() == "down")


def _heal_process(ctx: FaultContext) -> None:
    """Start the node unless it runs; "broker up" once it answers an AMQP handshake."""
    if ctx.broker.node_state() == "down":
        ctx.broker.start_node()  # returns after an AMQP handshake
    ctx.effect("broker up", observed=ctx.broker.node_state() == "running")


@dataclass
class BrokerRestart(Fault):
    name: ClassVar[str] = "broker-restart"
    description: ClassVar[str] = ("graceful stop of the broker node (clients get connection.close), "
                                  "started again at heal; data dir kept")
    family: ClassVar[str] = "broker process"
    needs: ClassVar[frozenset[str]] = frozenset({"process"})
    scope: ClassVar[Scope] = "broker"  # the node's one process: every run on it

    def start(self, ctx: FaultContext) -> None:
        require(self, ctx)
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
        require(self, ctx)
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
        require(self, ctx)
        ctx.broker.pause()
        ctx.effect("broker paused", observed=await_state(ctx, "paused"))

    def silences(self) -> bool:
        return True  # held to the clients' heartbeat detection window (harness.run.holds)

    def heal(self, ctx: FaultContext) -> None:
        ctx.broker.resume()  # resuming a running (or absent) node is harmless
        ctx.effect("broker resumed", observed=await_state(ctx, "running"))
