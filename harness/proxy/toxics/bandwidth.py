"""bandwidth: limit the direction to ``rate`` KB/s (1 KB = 1000 bytes; rate <= 0: unlimited).

As Toxiproxy: a running sleep debt of len/rate per chunk, and chunks bigger than 100 ms worth of
bytes go out in 100 ms slices so a large read does not arrive as one late burst.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import TYPE_CHECKING

from harness.proxy.toxics.base import Toxic, register

if TYPE_CHECKING:
    from harness.proxy.stage import Stage


@register
@dataclass
class BandwidthToxic(Toxic):
    rate: int = 0

    type_name = "bandwidth"

    async def pipe(self, stage: Stage) -> None:
        now = stage.link.now
        debt = 0.0  # seconds we still owe
        while True:
            data = await stage.take_data()
            if data is None:
                return
            rate = self.rate  # bytes per millisecond
            if rate <= 0:
                debt = 0.0
                stage.emit()
                continue
            debt += len(data) / (rate * 1000)
            slice_bytes = rate * 100
            while len(data) > slice_bytes:
                await asyncio.sleep(0.1)
                stage.emit(slice_bytes)
                debt -= 0.1
                rest = await stage.take()  # the pending remainder of the same chunk
                assert rest is not None and isinstance(rest[1], bytes)
                data = rest[1]
            started = now()
            if debt > 0:
                await asyncio.sleep(debt)
            debt -= now() - started
            stage.emit()
