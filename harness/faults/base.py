"""What a fault is, and what it may touch.

A fault is a small class: a ``name``, a one-line ``description`` (the report shows it), typed
parameters as dataclass fields with defaults, ``start(ctx)`` and an idempotent ``heal(ctx)``.
Every timeline ends healed, so ``heal`` must be safe to call twice, and after a failed or
partial ``start``.

A fault also says when it *took effect*: ``start`` and ``heal`` call ``ctx.effect("broker down",
observed=True)`` once the effect is there (the broker process exited, the alarm is listed, the
rules are installed). ``observed`` is true when the harness checked the effect, false when it only
knows the call returned. The timeline binds each call to its window and action and writes
``fault.effect`` (the checker's detection clock starts there, its recovery clock at the heal's).
"""

from __future__ import annotations

import time
import typing
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, fields
from typing import TYPE_CHECKING, Any, ClassVar, Literal

if TYPE_CHECKING:
    from harness.env.backend import Backend
    from harness.env.netns import ClientNetns
    from harness.env.toxiproxy import ToxiproxyClient

Target = Literal["all", "publisher", "consumer"]
Action = Literal["start", "heal"]
#: what a fault can disturb besides its own run: "run" = only the run's own proxies, network
#: namespace, vhost or queue, so runs with such faults can share the broker at once
#: (harness.run.parallel); "broker" = the node itself (its process, alarms, node-wide settings),
#: so such a run must have the broker to itself
Scope = Literal["run", "broker"]

#: the hold of a fault whose class does not say otherwise (seconds): long enough for a client
#: to notice a loud fault (a close, a reset, a refusal) and retry, short enough to keep runs short
DEFAULT_HOLD_S = 4.0


@dataclass
class KernelLink:
    """The clients' namespace and, per role, the port its relay listens on inside it."""

    netns: ClientNetns
    ports: dict[str, int]


@dataclass(frozen=True)
class Effect:
    """One observed (or merely requested) effect of a fault's start or heal."""

    fault: str
    action: Action
    effect: str
    observed: bool
    window: int | None
    t: float
    extra: dict[str, Any]


@dataclass
class FaultContext:
    """Everything a fault may act on during one run. ``broker`` is the session's backend, typed
    by its contract (harness/env/backend.py): a fault calls its operations and never probes for
    them; what a fault needs from it is declared in ``Fault.needs`` and checked up front."""

    broker: Backend
    toxiproxy: ToxiproxyClient
    proxies: dict[str, str]  # role -> proxy name
    vhost: str
    queue: str
    run_id: str
    #: the run queue's type (x-queue-type): a fault that re-declares the queue (queue-delete's
    #: heal) declares it as the run did, or every client's redeclare is refused (406)
    queue_type: str = "classic"
    #: on a cluster: broker node name -> role -> the proxy from that role's client to that node
    #: (``proxies`` holds node 1's); empty on one node. Cluster faults (node-cut) act on these.
    node_proxies: dict[str, dict[str, str]] = field(default_factory=dict)
    #: set when the run's clients live in their own network namespace (kernel faults)
    kernel: KernelLink | None = None
    #: every effect recorded through :meth:`effect`, in order (tests and the engine read it)
    effects: list[Effect] = field(default_factory=list)
    #: called with each Effect as it is recorded (the timeline writes ``fault.effect`` here)
    on_effect: Callable[[Effect], None] | None = None
    _acting: tuple[str, Action, int | None] | None = field(default=None, repr=False)

    @contextmanager
    def acting(self, fault: Fault, action: Action, window: int | None = None) -> Iterator[None]:
        """Bind :meth:`effect` calls made inside to ``fault``'s ``action`` (and timeline window)."""
        previous = self._acting
        self._acting = (fault.name, action, window)
        try:
            yield
        finally:
            self._acting = previous

    def effect(self, text: str, observed: bool, **extra: Any) -> Effect:
        """Record that the current fault action took effect: ``text`` is what ("broker down",
        "alarm visible", "toxic added"); ``observed`` is true when the harness checked it, false
        when it only knows the call returned. Outside :meth:`acting` the fault and action are
        unknown ("?", "start"): faults called directly (tests) still record."""
        fault, action, window = self._acting or ("?", "start", None)
        eff = Effect(fault, action, text, observed, window, time.monotonic(), dict(extra))
        self.effects.append(eff)
        if self.on_effect is not None:
            self.on_effect(eff)
        return eff

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
    #: what this fault needs from the environment: "proxy", "kernel", "admin" (the management
    #: API: every backend), and what only some backends give (harness.env.backend.BACKEND_NEEDS):
    #: "process" (node control), "ctl" (rabbitmqctl), "cluster" (two nodes or more). The engine
    #: refuses a fault whose needs the environment does not meet, before the run starts.
    needs: ClassVar[frozenset[str]] = frozenset()
    #: how long a bare fault is held when the user gives no duration (``--fault-for``), seconds.
    #: 4 s by default: a loud fault (close, reset, refusal) is noticed at once, and 4 s lets a
    #: client retry a few times. Faults whose point is a long silence or block say otherwise; a
    #: silent fault (:meth:`silences`) is held longer still, for the targeted client's heartbeat
    #: detection window (harness.run.holds).
    default_hold_s: ClassVar[float] = DEFAULT_HOLD_S
    #: a silent fault's hold past the targeted clients' detection bound, at least (seconds; the
    #: margin of harness.run.holds otherwise). 0 for most: detection is the point. A node fault on a
    #: cluster also wants the client's failover judged after it noticed (``node-pause``: the
    #: checker's ``max_failover_s`` deadline runs from the client's loss).
    hold_after_detection_s: ClassVar[float] = 0.0
    #: what it may disturb besides its own run (:data:`Scope`). "broker" by default: a fault that
    #: does not say is assumed to touch the node, so the matrix never runs it beside another run
    #: (a false verdict costs more than a slower matrix); each catalogue fault says which it is.
    scope: ClassVar[Scope] = "broker"

    def start(self, ctx: FaultContext) -> None:
        raise NotImplementedError

    def heal(self, ctx: FaultContext) -> None:
        raise NotImplementedError

    def targets_role(self) -> Target:
        """Which client roles the fault reaches: its ``target`` field, else all of them."""
        target = getattr(self, "target", "all")
        if target == "publisher":
            return "publisher"
        return "consumer" if target == "consumer" else "all"

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
    scope: ClassVar[Scope] = "run"

    def start(self, ctx: FaultContext) -> None:
        return None  # no effect to record: nothing happens (the checker sees no fault window)

    def heal(self, ctx: FaultContext) -> None:
        return None
