"""hold: NOT a Toxiproxy toxic; ours. A partition stand-in for when we have no root.

While active, the link stops reading its source: nothing is discarded and nothing is closed, so
the kernel buffers fill and the sender blocks, as behind a real partition (where TCP keeps
retransmitting). On removal everything held flows on intact and in order. Contrast ``timeout``,
which discards bytes and closes every connection it held when removed. Use one per direction
(``hold_upstream`` and ``hold_downstream``) for a full partition.
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
class HoldToxic(Toxic):
    type_name = "hold"
    in_toxiproxy = False

    async def pipe(self, stage: Stage) -> None:
        stage.hold()  # released by the link when the toxic is removed or updated
        await asyncio.get_running_loop().create_future()  # never take anything
