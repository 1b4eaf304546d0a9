"""latency: delay every chunk by ``latency`` ms ± ``jitter`` ms (uniform in [-jitter, jitter)).

The delay counts from when the chunk was read, not from when this toxic got it, so chunks are
pipelined: 200 ms of latency adds 200 ms to each round trip without capping throughput at one
chunk per 200 ms. Order is kept (no chunk overtakes another), as in Toxiproxy.
"""

from __future__ import annotations

import asyncio
import random
from dataclasses import dataclass
from typing import TYPE_CHECKING

from harness.proxy.stage import EOF
from harness.proxy.toxics.base import Toxic, register

if TYPE_CHECKING:
    from harness.proxy.stage import Stage


@register
@dataclass
class LatencyToxic(Toxic):
    latency: int = 0
    jitter: int = 0

    type_name = "latency"

    def delay_ms(self) -> int:
        delay = self.latency
        if self.jitter > 0:
            delay += random.randrange(2 * self.jitter) - self.jitter
        return delay

    async def pipe(self, stage: Stage) -> None:
        now = stage.link.now
        while True:
            item = await stage.take()
            assert item is not None
            read_at, data = item
            if data is EOF:
                stage.close()
                return
            wait = read_at + self.delay_ms() / 1000 - now()
            if wait > 0:
                await asyncio.sleep(wait)
            stage.emit(ts=now())
