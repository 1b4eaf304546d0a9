"""Faults that break connections from the proxy: blackhole (timeout), slow close, a byte budget
(limit_data) and chunk loss (packet_loss). Connection cut and reset-peer live in proxy_faults.py.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from harness.faults.base import Target
from harness.faults.catalogue._toxic import Stream, ToxicFault, check_range


@dataclass
class Timeout(ToxicFault):
    timeout_ms: int = 0
    target: Target = "all"
    stream: Stream = "both"
    toxicity: float = 1.0

    name: ClassVar[str] = "timeout"
    description: ClassVar[str] = ("L4 blackhole (Toxiproxy timeout): bytes discarded, connection closed once "
                                  "timeout_ms pass with no new bytes (0 = held open); heal closes the held connections")
    toxic_type: ClassVar[str] = "timeout"

    def attributes(self) -> dict[str, Any]:
        return {"timeout": self.timeout_ms}

    def silences(self) -> bool:
        # timeout_ms > 0 closes the connection; the upstream direction alone leaves the broker's
        # bytes (heartbeats, and the close it sends once it misses ours) reaching the client
        return self.timeout_ms == 0 and self.stream in ("both", "downstream")

    def validate(self) -> None:
        super().validate()
        check_range(self, "timeout_ms", self.timeout_ms, 0)


@dataclass
class SlowClose(ToxicFault):
    delay_ms: int = 5000
    target: Target = "all"
    stream: Stream = "both"
    toxicity: float = 1.0

    name: ClassVar[str] = "slow-close"
    description: ClassVar[str] = ("a close from either side reaches the other delay_ms late "
                                  "(Toxiproxy slow_close); data flows normally")
    toxic_type: ClassVar[str] = "slow_close"

    def attributes(self) -> dict[str, Any]:
        return {"delay": self.delay_ms}

    def validate(self) -> None:
        super().validate()
        check_range(self, "delay_ms", self.delay_ms, 0)


@dataclass
class LimitData(ToxicFault):
    bytes: int = 10_000
    target: Target = "all"
    stream: Stream = "downstream"
    toxicity: float = 1.0

    name: ClassVar[str] = "limit-data"
    description: ClassVar[str] = ("each connection closed once `bytes` more bytes have passed in the direction "
                                  "(Toxiproxy limit_data), new connections too, until heal")
    toxic_type: ClassVar[str] = "limit_data"

    def attributes(self) -> dict[str, Any]:
        return {"bytes": self.bytes}

    def validate(self) -> None:
        super().validate()
        check_range(self, "bytes", self.bytes, 0)


@dataclass
class PacketLoss(ToxicFault):
    loss_rate: float = 0.1
    correlation: float = 0.0
    target: Target = "all"
    stream: Stream = "downstream"
    toxicity: float = 1.0

    name: ClassVar[str] = "packet-loss"
    description: ClassVar[str] = ("whole chunks dropped with loss_rate, bursty with correlation (Toxiproxy "
                                  "packet_loss): over TCP this corrupts the AMQP stream (framing errors), "
                                  "unlike kernel loss, which TCP retransmits")
    toxic_type: ClassVar[str] = "packet_loss"

    def attributes(self) -> dict[str, Any]:
        return {"loss_rate": self.loss_rate, "correlation": self.correlation}

    def validate(self) -> None:
        super().validate()
        check_range(self, "loss_rate", self.loss_rate, 0.0, 1.0)
        check_range(self, "correlation", self.correlation, 0.0, 1.0)
