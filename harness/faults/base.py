"""What a fault is, and what it may touch.

A fault is a small class: a ``name``, a one-line ``description`` (the report shows it), typed
parameters as dataclass fields with defaults, ``start(ctx)`` and an idempotent ``heal(ctx)``.
Every timeline ends healed, so ``heal`` must be safe to call twice, and after a failed or
partial ``start``.
"""

from __future__ import annotations

import typing
from dataclasses import dataclass, fields
from typing import TYPE_CHECKING, Any, ClassVar, Literal, Protocol

if TYPE_CHECKING:
    from harness.env.netns import ClientNetns
    from harness.env.toxiproxy import ToxiproxyClient

Target = Literal["all", "publisher", "consumer"]


class Broker(Protocol):
    """The broker operations process faults need (see harness.env.local.LocalBroker)."""

    supports_process_faults: bool

    def stop_node(self, timeout: float = ...) -> float: ...
    def start_node(self, timeout: float | None = ...) -> float: ...
    def kill_node(self) -> None: ...
    def pause(self) -> None: ...
    def resume(self) -> None: ...
    def beam_pid(self) -> int | None: ...


@dataclass
class KernelLink:
    """The clients' namespace and, per role, the port its relay listens on inside it."""

    netns: ClientNetns
    ports: dict[str, int]


@dataclass
class FaultContext:
    """Everything a fault may act on during one run."""

    broker: Broker
    toxiproxy: ToxiproxyClient
    proxies: dict[str, str]  # role -> proxy name
    vhost: str
    queue: str
    run_id: str
    #: set when the run's clients live in their own network namespace (kernel faults)
    kernel: KernelLink | None = None

    def proxies_for(self, target: Target) -> list[str]:
        if target == "all":
            return list(self.proxies.values())
        return [self.proxies[target]]


@dataclass
class Fault:
    """Base class: subclasses set ``name``/``description`` and implement start/heal."""

    name: ClassVar[str] = ""
    description: ClassVar[str] = ""
    family: ClassVar[str] = ""
    #: what this fault needs from the environment: "proxy", "process", "root"
    needs: ClassVar[frozenset[str]] = frozenset()

    def start(self, ctx: FaultContext) -> None:
        raise NotImplementedError

    def heal(self, ctx: FaultContext) -> None:
        raise NotImplementedError

    def params(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}

    def silences(self) -> bool:
        """Does this fault leave the client's connection open while nothing reaches the client
        (a blackhole, a paused broker)? Then only the client's heartbeat can tell it, and the
        checker shows the detection time its heartbeat predicts beside the measured one. False
        for faults that close, reset or refuse: the client is told at once."""
        return False

    @classmethod
    def param_specs(cls) -> list[tuple[str, str, Any]]:
        """(name, type as users write it, default) for `rabbit-chaos faults`; Literal shows its choices."""
        hints = typing.get_type_hints(cls)
        out = []
        for f in fields(cls):
            typ = hints[f.name]
            shown = ("|".join(map(str, typing.get_args(typ))) if typing.get_origin(typ) is typing.Literal
                     else getattr(typ, "__name__", str(typ)))
            out.append((f.name, shown, f.default))
        return out


@dataclass
class NoFault(Fault):
    """The control run: same timeline, nothing injected."""

    name: ClassVar[str] = "none"
    description: ClassVar[str] = "no fault: the control run every other cell is compared with"
    family: ClassVar[str] = "control"

    def start(self, ctx: FaultContext) -> None:
        return None

    def heal(self, ctx: FaultContext) -> None:
        return None
