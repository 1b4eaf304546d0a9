"""reset_peer: on the next chunk (or close) from the source, wait ``timeout`` ms, then close.

As in Toxiproxy 2.12 the close is RST or FIN depending on when the connection opened: one opened
while a reset_peer toxic was on its proxy has SO_LINGER 0 on both sockets (set when its links
start, see link.py), so the kernel sends RST and the client sees ECONNRESET; one that was already
open when the toxic was added is closed with a FIN (a clean EOF). The chunk that triggers it is
dropped, and an idle connection is not closed until something arrives.
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
        stage.close()  # RST or FIN: decided by the connection's linger (see above)
