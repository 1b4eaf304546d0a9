"""consumer-timeout: RabbitMQ's delivery-acknowledgement timeout, lowered for the fault window.

RabbitMQ 3.10 has only the node-wide ``consumer_timeout`` (no per-queue or per-consumer one), so
this sets it at runtime with ``rabbitmqctl eval 'application:set_env(rabbit, consumer_timeout, N)'``
and restores the previous value (or its absence) at heal. Measured on 3.10.8:

* a channel reads the setting when it opens: channels already open when the fault starts are
  not affected (an existing consumer holding an unacked delivery kept its channel for 75 s with
  ``consumer_timeout`` at 1 s). The fault hits channels opened during the window, for instance
  by a client reconnecting (combine with force-close in a timeline to make it reconnect).
* the timeout is checked on the channel's tick, every 60 s by default: with only
  ``consumer_timeout`` = 1 s the new channel was closed 60.0 s after it opened. So this fault also
  sets ``channel_tick_interval`` (``tick_ms``, default 1 s; the node's own is 60000): the channel
  was then closed 1.0-2.0 s after it opened (timeout 0.5-1 s).
* what the client sees: channel.close 406 PRECONDITION_FAILED "delivery acknowledgement on
  channel 1 timed out", and the unacked messages are requeued (redelivered).

One ``rabbitmqctl eval`` reads both old values and sets the new ones (one CLI call, ~1 s).
Effects: "timeout lowered" / "timeout restored", observed (the eval's answer comes after the
node applied the setting).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import ClassVar

from harness.errors import HarnessFailure
from harness.faults.base import Fault, FaultContext, Scope
from harness.faults.catalogue._admin import admin
from harness.faults.catalogue._toxic import check_range

KEYS = ("consumer_timeout", "channel_tick_interval")
_TERM = re.compile(r"^[a-z0-9_]+$")  # an integer or an atom (undefined, infinity, false)


def _restore_expr(previous: dict[str, str]) -> str:
    parts = [f"application:unset_env(rabbit, {k})" if v == "undefined" else f"application:set_env(rabbit, {k}, {v})"
             for k, v in previous.items()]
    return ", ".join(parts) + ", ok."


def parse_previous(output: str) -> dict[str, str]:
    """Parse the eval's printed list, e.g. ``[1800000,undefined]``."""
    terms = [t.strip() for t in output.strip().strip("[]").split(",")]
    if len(terms) != len(KEYS) or not all(_TERM.match(t) for t in terms):
        raise HarnessFailure(f"consumer-timeout: unexpected answer from rabbitmqctl eval: {output.strip()[:120]!r}")
    return dict(zip(KEYS, terms, strict=True))


@dataclass
class ConsumerTimeout(Fault):
    timeout_ms: int = 1000
    tick_ms: int = 1000

    name: ClassVar[str] = "consumer-timeout"
    description: ClassVar[str] = ("node-wide consumer_timeout lowered to timeout_ms: channels opened during the "
                                  "fault that hold an unacked delivery longer get channel.close 406 and the "
                                  "delivery is requeued (channels already open are not affected in 3.10)")
    family: ClassVar[str] = "broker admin"
    needs: ClassVar[frozenset[str]] = frozenset({"admin", "ctl"})
    scope: ClassVar[Scope] = "broker"  # a node-wide setting: channels of every vhost opened meanwhile

    def validate(self) -> None:
        check_range(self, "timeout_ms", self.timeout_ms, 1)
        check_range(self, "tick_ms", self.tick_ms, 100)

    def start(self, ctx: FaultContext) -> None:
        broker = admin(self, ctx, "ctl")
        read = ", ".join(f"case application:get_env(rabbit, {k}) of {{ok, V{i}}} -> V{i}; undefined -> undefined end"
                         for i, k in enumerate(KEYS))
        expr = (f"P = [{read}], ok = application:set_env(rabbit, consumer_timeout, {int(self.timeout_ms)}), "
                f"ok = application:set_env(rabbit, channel_tick_interval, {int(self.tick_ms)}), P.")
        self._previous: dict[str, str] | None = None
        self._touched = True
        self._previous = parse_previous(broker.ctl("eval", expr))
        ctx.effect("timeout lowered", observed=True, timeout_ms=int(self.timeout_ms))

    def heal(self, ctx: FaultContext) -> None:
        if not getattr(self, "_touched", False):
            return
        # previous unknown (the eval's answer was lost): fall back to RabbitMQ 3.10's defaults
        previous = getattr(self, "_previous", None) or {"consumer_timeout": "1800000",
                                                        "channel_tick_interval": "undefined"}
        admin(self, ctx, "ctl").ctl("eval", _restore_expr(previous))
        self._touched = False
        ctx.effect("timeout restored", observed=True)
