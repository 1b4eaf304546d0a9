"""Resource alarms (``rabbitmqctl``): memory and disk. Either blocks every publishing connection.

Measured on RabbitMQ 3.10.8: the alarm is raised as soon as the command returns (~0.5-1 s, the
CLI's cost), but connection.blocked reaches a connection only when it next publishes (until then
the management API shows it as ``blocking``); consumers keep consuming. Clearing the alarm sends
connection.unblocked at once. Alarms are node-wide, so they hit every vhost on the node.

Heal restores the setting only if ``start`` got as far as changing it, so it is a no-op after a
start that failed early, and safe to call twice.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from harness.faults.base import Fault, FaultContext
from harness.faults.catalogue._admin import admin
from harness.faults.catalogue._toxic import check_range


@dataclass
class MemoryAlarm(Fault):
    watermark: float = 0.0
    restore: float = 0.4

    name: ClassVar[str] = "memory-alarm"
    description: ClassVar[str] = ("vm_memory_high_watermark set to `watermark` (0 = alarm at once): publishers get "
                                  "connection.blocked and stall until heal restores `restore` (the default 0.4)")
    family: ClassVar[str] = "broker admin"
    needs: ClassVar[frozenset[str]] = frozenset({"admin", "ctl"})

    def validate(self) -> None:
        check_range(self, "watermark", self.watermark, 0.0, 1.0)
        check_range(self, "restore", self.restore, 0.0, 1.0)

    def start(self, ctx: FaultContext) -> None:
        broker = admin(self, ctx, "ctl")
        self._touched = True
        broker.ctl("set_vm_memory_high_watermark", repr(float(self.watermark)))

    def heal(self, ctx: FaultContext) -> None:
        if getattr(self, "_touched", False):
            admin(self, ctx, "ctl").ctl("set_vm_memory_high_watermark", repr(float(self.restore)))
            self._touched = False


@dataclass
class DiskAlarm(Fault):
    limit_bytes: int = 10**15
    restore_bytes: int = 50_000_000

    name: ClassVar[str] = "disk-alarm"
    description: ClassVar[str] = ("disk_free_limit raised above the free space (default 1 PB): disk alarm, "
                                  "publishers get connection.blocked until heal restores 50 MB (RabbitMQ's default)")
    family: ClassVar[str] = "broker admin"
    needs: ClassVar[frozenset[str]] = frozenset({"admin", "ctl"})

    def validate(self) -> None:
        check_range(self, "limit_bytes", self.limit_bytes, 1)
        check_range(self, "restore_bytes", self.restore_bytes, 1)

    def start(self, ctx: FaultContext) -> None:
        broker = admin(self, ctx, "ctl")
        self._touched = True
        broker.ctl("set_disk_free_limit", str(self.limit_bytes))

    def heal(self, ctx: FaultContext) -> None:
        if getattr(self, "_touched", False):
            admin(self, ctx, "ctl").ctl("set_disk_free_limit", str(self.restore_bytes))
            self._touched = False
