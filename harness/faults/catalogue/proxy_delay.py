"""Delay faults (Toxiproxy ``latency`` toxic): constant latency, and latency with jitter.

Toxiproxy's latency applies per direction: on ``downstream`` alone (its default, and ours) a
request/response round trip grows by ``latency_ms`` once; on ``both`` by twice that. Chunks are
delayed from when they were read, so throughput is not capped, and order is kept.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from harness.faults.base import Target
from harness.faults.catalogue._toxic import Stream, ToxicFault, check_range


@dataclass
class Latency(ToxicFault):
    latency_ms: int = 1000
    target: Target = "all"
    stream: Stream = "downstream"
    toxicity: float = 1.0

    name: ClassVar[str] = "latency"
    description: ClassVar[str] = ("every chunk delayed by latency_ms in the chosen direction(s) "
                                  "(Toxiproxy latency); nothing lost, order kept")
    toxic_type: ClassVar[str] = "latency"

    def attributes(self) -> dict[str, Any]:
        return {"latency": self.latency_ms, "jitter": 0}

    def validate(self) -> None:
        super().validate()
        check_range(self, "latency_ms", self.latency_ms, 0)


@dataclass
class Jitter(ToxicFault):
    latency_ms: int = 100
    jitter_ms: int = 100
    target: Target = "all"
    stream: Stream = "downstream"
    toxicity: float = 1.0

    name: ClassVar[str] = "jitter"
    description: ClassVar[str] = ("every chunk delayed by latency_ms ± jitter_ms, uniform (Toxiproxy latency "
                                  "with jitter); order is still kept, so the stream stutters")
    toxic_type: ClassVar[str] = "latency"

    def attributes(self) -> dict[str, Any]:
        return {"latency": self.latency_ms, "jitter": self.jitter_ms}

    def validate(self) -> None:
        super().validate()
        check_range(self, "latency_ms", self.latency_ms, 0)
        check_range(self, "jitter_ms", self.jitter_ms, 0, self.latency_ms)
