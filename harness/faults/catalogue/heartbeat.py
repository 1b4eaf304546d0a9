"""heartbeat-starvation: a silence longer than the AMQP heartbeat timeout, in one direction.

Made with a latency toxic: every chunk (heartbeats included) arrives ``silence`` late, so the
receiving side hears nothing at all for that long, while the connection stays open and, unlike a
partition, nothing is held back: the late bytes arrive in order afterwards.

The silence is ``3 × heartbeat_s + 10`` seconds: longer than pika's worst-case detection
(it checks every ``heartbeat + 5`` s and closes after one idle check interval, so within
``2 × (heartbeat + 5)`` s) and than RabbitMQ's (two missed heartbeats). ``heartbeat_s`` must be
what the clients negotiate: RabbitMQ proposes 60 s and our pika strategies accept it (their
``heartbeat`` knob, default 60), hence the default. Hold the fault at least
``2 × (heartbeat_s + 5)`` seconds, or nobody will notice; for short runs give the client a
small heartbeat (client param ``heartbeat=2``) and this fault the same ``heartbeat_s``.

``downstream`` (default) starves the client: it must detect the dead peer itself (the finding
this fault is for). ``upstream`` starves the broker, which closes the connection after two
missed heartbeats (the client then sees an ordinary connection loss).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, Literal

from harness.faults.base import Target
from harness.faults.catalogue._toxic import ToxicFault, check_range


@dataclass
class HeartbeatStarvation(ToxicFault):
    heartbeat_s: int = 60
    target: Target = "all"
    stream: Literal["upstream", "downstream"] = "downstream"

    #: 2 × (60 + 5) s: pika's worst-case detection at RabbitMQ's default 60 s heartbeat. Used
    #: only when no targeted client declared its detection window (this fault is silent, so a
    #: bare run normally holds it for the clients' own window: harness.run.holds).
    default_hold_s: ClassVar[float] = 130.0

    name: ClassVar[str] = "heartbeat-starvation"
    description: ClassVar[str] = ("one direction goes silent for 3×heartbeat_s+10 s (a latency toxic) while "
                                  "the connection stays open: the receiver must detect the dead peer by heartbeat")
    toxic_type: ClassVar[str] = "latency"

    @property
    def silence_ms(self) -> int:
        return (3 * self.heartbeat_s + 10) * 1000

    def attributes(self) -> dict[str, Any]:
        return {"latency": self.silence_ms, "jitter": 0}

    def silences(self) -> bool:
        return self.stream == "downstream"  # the client hears nothing

    def validate(self) -> None:
        super().validate()
        check_range(self, "heartbeat_s", self.heartbeat_s, 1)
