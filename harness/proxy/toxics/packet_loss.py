"""packet_loss: drop whole chunks with probability ``loss_rate``; after a dropped chunk the next
one is dropped with ``loss_rate + correlation`` (burst loss, a simplified Gilbert-Elliott model).

Toxiproxy's newest toxic (PR #739, 2026). Over TCP this is not what kernel packet loss does: the
kernel retransmits and the application sees only delay, while here bytes vanish from the stream,
so an AMQP peer sees framing errors. Defaults follow the PR: loss_rate 0.1, correlation 0.
Chunks are what one read returned (up to 256 KiB here, 32 KiB in Toxiproxy), so the amount of
data a single loss takes differs between the two under bulk traffic.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from harness.proxy.stage import EOF
from harness.proxy.toxics.base import Toxic, register

if TYPE_CHECKING:
    from harness.proxy.stage import Stage


class _Burst:
    __slots__ = ("last_dropped", "rng")

    def __init__(self) -> None:
        self.last_dropped = False
        self.rng = random.Random(random.getrandbits(64))  # per connection, seeded from -seed


@register
@dataclass
class PacketLossToxic(Toxic):
    loss_rate: float = 0.1
    correlation: float = 0.0

    type_name = "packet_loss"

    def new_state(self) -> Any:
        return _Burst()

    async def pipe(self, stage: Stage) -> None:
        burst: _Burst = stage.state
        while True:
            item = await stage.take()
            assert item is not None
            if item[1] is EOF:
                stage.close()
                return
            p = self.loss_rate + (self.correlation if burst.last_dropped else 0.0)
            burst.last_dropped = burst.rng.random() < p
            if burst.last_dropped:
                stage.drop()
            else:
                stage.emit()
