"""Resource alarms (``rabbitmqctl``): memory and disk. Either blocks every publishing connection.

Measured on RabbitMQ 3.10.8: the alarm is raised as soon as the command returns (~0.5-1 s, the
CLI's cost), but connection.blocked reaches a connection only when it next publishes (until then
the management API shows it as ``blocking``); consumers keep consuming. Clearing the alarm sends
connection.unblocked at once. Alarms are node-wide, so they hit every vhost on the node.

Heal restores the setting only if ``start`` got as far as changing it, so it is a no-op after a
start that failed early, and safe to call twice.

Effects: one ``rabbitmqctl eval`` changes the setting and reads ``rabbit_alarm:get_alarms()`` in
the same call (the monitors raise and clear their alarm synchronously), so "alarm visible" /
"alarm cleared" are observed, with no second ~1 s CLI call between the change and its proof. When
the answer does not list (or still lists) the alarm, ``get_alarms`` is polled for up to
``OBSERVE_S``; past that the effect is recorded with observed=false and a note.

Default hold 20 s: long enough that a client which waits silently on a blocked connection (no
``blocked_connection_timeout``, no confirm deadline) outlives the checker's default ``max_block_s``
(10 s) and fails, while one that raises within a few seconds and retries passes.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import ClassVar

from harness.env.backend import Backend
from harness.faults.base import Fault, FaultContext, Scope
from harness.faults.catalogue._admin import admin
from harness.faults.catalogue._toxic import check_range

#: how long to keep asking the broker for an alarm its answer did not (or still did) list
OBSERVE_S = 10.0
ALARMS = "rabbit_alarm:get_alarms()."


def _set_and_observe(ctx: FaultContext, broker: Backend, call: str, resource: str, raised: bool) -> None:
    """Run ``call`` (an Erlang expression) and read the alarms in one eval; record the effect
    once the ``resource`` alarm is listed (``raised``) or gone (not ``raised``)."""
    mark = f"resource_limit,{resource}"
    out = broker.ctl("eval", f"_ = {call}, {ALARMS}")
    deadline = time.monotonic() + OBSERVE_S
    while (mark in out) != raised and time.monotonic() < deadline:
        out = broker.ctl("eval", ALARMS)
    seen = (mark in out) == raised
    text = "alarm visible" if raised else "alarm cleared"
    if seen:
        ctx.effect(text, observed=True, alarm=resource)
    else:
        ctx.effect(text, observed=False, alarm=resource,
                   note=f"the broker did not report it within {OBSERVE_S:g} s: {out.strip()[:120]}")


@dataclass
class MemoryAlarm(Fault):
    watermark: float = 0.0
    restore: float = 0.4

    name: ClassVar[str] = "memory-alarm"
    description: ClassVar[str] = ("vm_memory_high_watermark set to `watermark` (0 = alarm at once): publishers get "
                                  "connection.blocked and stall until heal restores `restore` (the default 0.4)")
    family: ClassVar[str] = "broker admin"
    needs: ClassVar[frozenset[str]] = frozenset({"admin", "ctl"})
    scope: ClassVar[Scope] = "broker"  # a node-wide alarm blocks publishers of every vhost
    default_hold_s: ClassVar[float] = 20.0  # a silent 20 s block outlives max_block_s (module docstring)

    def validate(self) -> None:
        check_range(self, "watermark", self.watermark, 0.0, 1.0)
        check_range(self, "restore", self.restore, 0.0, 1.0)

    def start(self, ctx: FaultContext) -> None:
        broker = admin(self, ctx, "ctl")
        self._touched = True
        _set_and_observe(ctx, broker, f"vm_memory_monitor:set_vm_memory_high_watermark({float(self.watermark)!r})",
                         "memory", raised=True)

    def heal(self, ctx: FaultContext) -> None:
        if getattr(self, "_touched", False):
            _set_and_observe(ctx, admin(self, ctx, "ctl"),
                             f"vm_memory_monitor:set_vm_memory_high_watermark({float(self.restore)!r})",
                             "memory", raised=False)
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
    scope: ClassVar[Scope] = "broker"  # a node-wide alarm blocks publishers of every vhost
    default_hold_s: ClassVar[float] = 20.0  # as memory-alarm

    def validate(self) -> None:
        check_range(self, "limit_bytes", self.limit_bytes, 1)
        check_range(self, "restore_bytes", self.restore_bytes, 1)

    def start(self, ctx: FaultContext) -> None:
        broker = admin(self, ctx, "ctl")
        self._touched = True
        _set_and_observe(ctx, broker, f"rabbit_disk_monitor:set_disk_free_limit({int(self.limit_bytes)})",
                         "disk", raised=True)

    def heal(self, ctx: FaultContext) -> None:
        if getattr(self, "_touched", False):
            _set_and_observe(ctx, admin(self, ctx, "ctl"),
                             f"rabbit_disk_monitor:set_disk_free_limit({int(self.restore_bytes)})",
                             "disk", raised=False)
            self._touched = False
