"""timeout: swallow all data; with ``timeout`` > 0 close the connection after that many ms.

Facts from Toxiproxy's toxics/timeout.go that clients notice:
- the timer restarts whenever a chunk arrives (and is dropped), so it is "``timeout`` ms without
  traffic", not "``timeout`` ms after the toxic was added";
- ``timeout: 0`` holds the connection forever, dropping every byte;
- the far side closing closes this side too (EOF is not swallowed);
- removing the toxic closes every connection it held (its Cleanup closes the stub): data it
  swallowed is gone, so the stream could not continue anyway. That is why this is not a
  partition: see the ``hold`` toxic for one.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from harness.proxy.stage import EOF
from harness.proxy.toxics.base import Toxic, register

if TYPE_CHECKING:
    from harness.proxy.stage import Stage


@register
@dataclass
class TimeoutToxic(Toxic):
    timeout: int = 0

    type_name = "timeout"

    async def pipe(self, stage: Stage) -> None:
        while True:
            item = await stage.take(self.timeout / 1000 if self.timeout > 0 else None)
            if item is None or item[1] is EOF:  # timer expired, or the source closed
                stage.close()
                return
            stage.drop()

    def on_remove(self, stage: Stage) -> None:
        stage.close()
