"""slicer: cut each chunk into pieces of about ``average_size`` bytes (± ``size_variation``),
``delay`` microseconds apart. Nothing is lost; it stresses a reader's framing code.

Slices are made as Toxiproxy does (recursive halving with a random offset), with guards it lacks:
``average_size`` < 1 is treated as 1 and a cut never leaves an empty or negative slice.
"""

from __future__ import annotations

import asyncio
import random
from dataclasses import dataclass
from typing import TYPE_CHECKING

from harness.proxy.toxics.base import Toxic, register

if TYPE_CHECKING:
    from harness.proxy.stage import Stage


@register
@dataclass
class SlicerToxic(Toxic):
    average_size: int = 0
    size_variation: int = 0
    delay: int = 0

    type_name = "slicer"

    def sizes(self, length: int) -> list[int]:
        """Slice lengths summing to ``length``."""
        avg, var = max(self.average_size, 1), max(self.size_variation, 0)
        out: list[int] = []
        todo = [length]
        while todo:
            n = todo.pop()
            if n - avg <= var or n < 2:
                out.append(n)
                continue
            mid = n // 2
            if var > 0:
                mid += random.randrange(2 * var) - var
            mid = min(max(mid, 1), n - 1)
            todo.append(n - mid)  # right half, handled after the left one
            todo.append(mid)
        return out

    async def pipe(self, stage: Stage) -> None:
        while True:
            data = await stage.take_data()
            if data is None:
                return
            for size in self.sizes(len(data)):
                stage.emit(size)
                await asyncio.sleep(self.delay / 1_000_000)
