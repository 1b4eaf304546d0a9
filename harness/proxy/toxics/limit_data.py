"""limit_data: let ``bytes`` bytes through on each connection, then close it.

The count survives toxic updates (Toxiproxy keeps it as stateful-toxic state), so raising the
limit lets a connection send more; the excess of the chunk that crosses the limit is dropped.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from harness.proxy.toxics.base import Toxic, register

if TYPE_CHECKING:
    from harness.proxy.stage import Stage


class _Sent:
    __slots__ = ("n",)

    def __init__(self) -> None:
        self.n = 0


@register
@dataclass
class LimitDataToxic(Toxic):
    bytes: int = 0

    type_name = "limit_data"

    def new_state(self) -> Any:
        return _Sent()

    async def pipe(self, stage: Stage) -> None:
        sent: _Sent = stage.state
        while True:
            data = await stage.take_data()
            if data is None:
                return
            allowed = max(self.bytes - sent.n, 0)
            n = min(len(data), allowed)
            if n > 0:
                stage.emit(n)
                sent.n += n
            stage.drop()
            if self.bytes - sent.n <= 0:
                stage.close()
                return
