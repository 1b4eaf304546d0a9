"""slow_close: pass data through, but hold the close for ``delay`` ms after the source closes."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import TYPE_CHECKING

from harness.proxy.stage import EOF
from harness.proxy.toxics.base import Toxic, register

if TYPE_CHECKING:
    from harness.proxy.stage import Stage


@register
@dataclass
class SlowCloseToxic(Toxic):
    delay: int = 0

    type_name = "slow_close"

    async def pipe(self, stage: Stage) -> None:
        while True:
            item = await stage.take()
            assert item is not None
            if item[1] is EOF:
                await asyncio.sleep(self.delay / 1000)
                stage.close()
                return
            stage.emit()
