"""When the settle phase may end: the consumer is quiet and the queue empty, never while the
client under test holds an unacknowledged delivery (it is working: a slow failure may follow).

:class:`SettleWatch` is the decision alone (no I/O but the ``depth`` callback, asked only once
the consumer has been quiet), so it is unit-tested with made-up clocks.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

QUIET, CAP, EXITED = "quiet", "cap", "consumer-exited"


@dataclass
class SettleWatch:
    """Feed it ``step(now, delivered, held, depth)`` until it returns a reason.

    * "quiet": nothing delivered or acked for ``quiet_s``, the client holds nothing, and the
      queue is empty (``depth() == 0``; None, unknown, keeps waiting);
    * "cap": ``timeout_s`` passed since settle began, or since the client last held a delivery,
      while it holds nothing (messages wait, nothing moves); or ``cap_s`` passed since settle
      began while it still holds one (``bound`` says which). At most ``cap_s + timeout_s``.
    """

    quiet_s: float
    timeout_s: float
    cap_s: float
    started: float
    bound: str | None = None
    _last: tuple[int, int] | None = None
    _changed: float = 0.0
    _held_at: float | None = None

    def step(self, now: float, delivered: int, held: int, depth: Callable[[], int | None]) -> str | None:
        if (delivered, held) != self._last:
            self._last, self._changed = (delivered, held), now
        if held > 0:  # busy: never quiet, bounded by the cap
            self._held_at = now
            if now - self.started >= max(self.cap_s, self.timeout_s):
                self.bound = "settle_unacked_cap_s"
                return CAP
            return None
        waited = now - (self._held_at if self._held_at is not None else self.started)
        if now - self._changed >= self.quiet_s:
            if depth() == 0:
                return QUIET
            self._changed = now  # messages wait but nothing moves: keep waiting until the bound
        if waited >= self.timeout_s:
            self.bound = "settle_timeout_s"
            return CAP
        return None
