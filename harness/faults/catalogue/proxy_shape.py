"""Faults that reshape the byte stream without losing any of it: bandwidth and slicer."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from harness.faults.base import Target
from harness.faults.catalogue._toxic import Stream, ToxicFault, check_range


@dataclass
class Bandwidth(ToxicFault):
    rate_kbps: int = 16
    target: Target = "all"
    stream: Stream = "both"
    toxicity: float = 1.0

    name: ClassVar[str] = "bandwidth"
    description: ClassVar[str] = ("throughput capped at rate_kbps KB/s (1 KB = 1000 bytes) per connection "
                                  "and direction (Toxiproxy bandwidth); nothing lost")
    toxic_type: ClassVar[str] = "bandwidth"

    def attributes(self) -> dict[str, Any]:
        return {"rate": self.rate_kbps}

    def validate(self) -> None:
        super().validate()
        check_range(self, "rate_kbps", self.rate_kbps, 1)


@dataclass
class Slicer(ToxicFault):
    average_size: int = 16
    size_variation: int = 8
    delay_us: int = 1000
    target: Target = "all"
    stream: Stream = "downstream"
    toxicity: float = 1.0

    name: ClassVar[str] = "slicer"
    description: ClassVar[str] = ("every chunk cut into ~average_size-byte pieces delay_us µs apart "
                                  "(Toxiproxy slicer): stresses frame reassembly, nothing lost")
    toxic_type: ClassVar[str] = "slicer"

    def attributes(self) -> dict[str, Any]:
        return {"average_size": self.average_size, "size_variation": self.size_variation, "delay": self.delay_us}

    def validate(self) -> None:
        super().validate()
        check_range(self, "average_size", self.average_size, 1)
        check_range(self, "size_variation", self.size_variation, 0, self.average_size)
        check_range(self, "delay_us", self.delay_us, 0)
