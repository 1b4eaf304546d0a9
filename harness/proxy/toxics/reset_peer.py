"""reset_peer: on the next chunk (or close) from the source, wait ``timeout`` ms, then reset.

Reset means both sockets are closed with SO_LINGER 0, so the kernel sends RST and the client
sees ECONNRESET rather than a clean EOF. As in Toxiproxy the chunk that triggers it is dropped,
and an idle connection is not reset until something arrives.
Difference from Toxiproxy (a fix, see docs/proxy.md): Toxiproxy sets SO_LINGER 0 only on
connections opened while the toxic existed, so it sends FIN to connections that were already
open; ours resets those too.
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
class ResetPeerToxic(Toxic):
    timeout: int = 0

    type_name = "reset_peer"

    async def pipe(self, stage: Stage) -> None:
        await stage.take()
        stage.drop()
        if self.timeout > 0:
            await asyncio.sleep(self.timeout / 1000)
        stage.close(reset=True)
