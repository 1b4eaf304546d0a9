"""Broker process faults: graceful restart, crash (SIGKILL) and pause (SIGSTOP).

Each acts on the one beam.smp of the node (the pid file's process, not the shell wrapper) and
heals by bringing it back: ``start_node`` waits for an AMQP handshake, so after heal the broker
really answers. Heals check the process state first, which makes them idempotent and safe after
a start that failed half-way.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from harness.errors import ChaosError
from harness.faults.base import Fault, FaultContext


def _require_process(fault: Fault, ctx: FaultContext) -> None:
    if not getattr(ctx.broker, "supports_process_faults", False):
        raise ChaosError(f"fault {fault.name!r} needs control of the broker process, which this backend lacks",
                         "use the local backend (--backend local) or a proxy/admin fault")


@dataclass
class BrokerRestart(Fault):
    name: ClassVar[str] = "broker-restart"
    description: ClassVar[str] = ("graceful stop of the broker node (clients get connection.close), "
                                  "started again at heal; data dir kept")
    family: ClassVar[str] = "broker process"
    needs: ClassVar[frozenset[str]] = frozenset({"process"})

    def start(self, ctx: FaultContext) -> None:
        _require_process(self, ctx)
        ctx.broker.stop_node()

    def heal(self, ctx: FaultContext) -> None:
        if ctx.broker.beam_pid() is None:
            ctx.broker.start_node()


@dataclass
class BrokerCrash(Fault):
    name: ClassVar[str] = "broker-crash"
    description: ClassVar[str] = ("SIGKILL of the broker (no connection.close, no flush: transient messages "
                                  "lost, persistent ones in durable queues kept), started again at heal")
    family: ClassVar[str] = "broker process"
    needs: ClassVar[frozenset[str]] = frozenset({"process"})

    def start(self, ctx: FaultContext) -> None:
        _require_process(self, ctx)
        ctx.broker.kill_node()

    def heal(self, ctx: FaultContext) -> None:
        if ctx.broker.beam_pid() is None:
            ctx.broker.start_node()


@dataclass
class BrokerPause(Fault):
    name: ClassVar[str] = "broker-pause"
    description: ClassVar[str] = ("SIGSTOP of the broker: TCP still connects (kernel backlog) but AMQP is "
                                  "silent, a hung broker; SIGCONT at heal, connections carry on")
    family: ClassVar[str] = "broker process"
    needs: ClassVar[frozenset[str]] = frozenset({"process"})

    def start(self, ctx: FaultContext) -> None:
        _require_process(self, ctx)
        ctx.broker.pause()

    def silences(self) -> bool:
        return True

    def heal(self, ctx: FaultContext) -> None:
        ctx.broker.resume()  # SIGCONT to a running (or absent) beam is harmless
