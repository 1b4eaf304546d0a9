"""Shared machinery for faults made of Toxiproxy toxics (private: no fault lives here).

A toxic fault adds one toxic per proxy per direction, each under a distinctive name
(``rabbit_chaos_<fault>_<stream>``), so ``heal`` removes exactly what ``start`` added and never
a toxic some other fault (or a user) put on the same proxy. Two faults built on the same toxic
type (latency and jitter, say) therefore overlap safely.

Heal is idempotent: removing a toxic (or a whole proxy) that is already gone counts as healed;
any other error (the proxy server unreachable) is raised, because a heal that silently failed
would leave the next phase of the run faulted.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, Literal

from harness.errors import ChaosError
from harness.faults.base import Fault, FaultContext, Scope, Target

Stream = Literal["upstream", "downstream", "both"]
Direction = Literal["upstream", "downstream"]
STREAMS: tuple[Direction, Direction] = ("upstream", "downstream")


def is_not_found(exc: BaseException) -> bool:
    """True when the proxy server answered 404 (toxic or proxy absent): already healed."""
    for attr in ("status", "status_code", "code"):
        if getattr(exc, attr, None) == 404:
            return True
    response = getattr(exc, "response", None)
    if getattr(response, "status_code", None) == 404:
        return True
    return "not found" in str(exc).lower()


def remove_toxic(ctx: FaultContext, proxy: str, name: str) -> None:
    """Remove one toxic; absent already is fine (idempotent heal), anything else is raised."""
    try:
        ctx.toxiproxy.remove_toxic(proxy, name)
    except Exception as exc:
        if not is_not_found(exc):
            raise


def toxic_name(fault: str, stream: str) -> str:
    return f"rabbit_chaos_{fault.replace('-', '_')}_{stream}"


def check_range(fault: Fault, key: str, value: float, lo: float | None = None, hi: float | None = None) -> None:
    """One clear ChaosError for a parameter out of range (called from ``validate``)."""
    if (lo is not None and value < lo) or (hi is not None and value > hi):
        bounds = (f"between {lo:g} and {hi:g}" if lo is not None and hi is not None
                  else f">= {lo:g}" if lo is not None else f"<= {hi:g}")
        raise ChaosError(f"fault {fault.name!r}: {key}={value!r} is out of range", f"give a value {bounds}")


@dataclass
class ToxicFault(Fault):
    """A fault that is one Toxiproxy toxic on every targeted proxy, in one or both directions.

    Subclasses set ``toxic_type``, declare ``target``/``stream``/``toxicity`` and their own
    parameters as fields, and return the toxic's Toxiproxy attributes from :meth:`attributes`.
    """

    family: ClassVar[str] = "network (proxy)"
    needs: ClassVar[frozenset[str]] = frozenset({"proxy"})
    scope: ClassVar[Scope] = "run"  # toxics on the run's own proxies only
    toxic_type: ClassVar[str] = ""

    def attributes(self) -> dict[str, Any]:
        raise NotImplementedError

    def streams(self) -> tuple[Direction, ...]:
        stream: Stream = getattr(self, "stream", "downstream")
        if stream == "both":
            return STREAMS
        return (stream,)

    def targets(self, ctx: FaultContext) -> list[str]:
        target: Target = getattr(self, "target", "all")
        return ctx.proxies_for(target)

    def validate(self) -> None:
        check_range(self, "toxicity", getattr(self, "toxicity", 1.0), 0.0, 1.0)

    def start(self, ctx: FaultContext) -> None:
        """Add the toxics; effect "toxic added" (observed=false: the proxy API accepted them,
        which is all the harness can know without probing the stream)."""
        toxicity = float(getattr(self, "toxicity", 1.0))
        added = 0
        for proxy in self.targets(ctx):
            for stream in self.streams():
                ctx.toxiproxy.add_toxic(proxy, self.toxic_type, self.attributes(), stream=stream,
                                        toxicity=toxicity, name=toxic_name(self.name, stream))
                added += 1
        ctx.effect("toxic added", observed=False, toxics=added)

    def heal(self, ctx: FaultContext) -> None:
        for proxy in self.targets(ctx):
            for stream in self.streams():
                remove_toxic(ctx, proxy, toxic_name(self.name, stream))
        ctx.effect("toxic removed", observed=False)
