"""Broker process faults: graceful restart, crash (SIGKILL) and pause (SIGSTOP)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from harness.faults.base import Fault, FaultContext


@dataclass
class BrokerRestart(Fault):
    name: ClassVar[str] = "broker-restart"
    description: ClassVar[str] = ("graceful stop of the broker node (clients get connection.close), "
                                  "started again at heal; data dir kept")
    family: ClassVar[str] = "broker process"
    needs: ClassVar[frozenset[str]] = frozenset({"process"})

    def start(self, ctx: FaultContext) -> None:
        ctx.broker.stop_node()

    def heal(self, ctx: FaultContext) -> None:
        if ctx.broker.beam_pid() is None:
            ctx.broker.start_node()
