"""partition: our own proxy-level partition (the ``hold`` toxic both ways), NOT a Toxiproxy toxic.

Why not Toxiproxy's ``timeout``: it discards bytes and, when removed, closes every connection it
held, while a real partition drops packets that TCP retransmits, and a healed link carries on
with nothing lost and nothing closed. Clients behave very differently under the two. Our
embedded proxy's ``hold`` stops reading a direction: kernel buffers fill, senders block, and on
removal everything held flows on in order. A real ``toxiproxy-server`` has no ``hold`` and
answers 400 "invalid toxic type": ``start`` turns that into one clear ChaosError. (With root,
the kernel blackhole in the kernel family is the real thing.)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from harness.errors import ChaosError
from harness.faults.base import Fault, FaultContext, Scope, Target
from harness.faults.catalogue._toxic import STREAMS, remove_toxic, toxic_name


def _is_invalid_type(exc: BaseException) -> bool:
    return "invalid toxic type" in str(exc).lower()


@dataclass
class Partition(Fault):
    target: Target = "all"

    name: ClassVar[str] = "partition"
    description: ClassVar[str] = ("our own fault, not a Toxiproxy toxic: the proxy stops reading both ways "
                                  "(buffers fill, senders block, nothing discarded, nothing closed on heal); "
                                  "needs our embedded proxy, unavailable with a real toxiproxy-server")
    family: ClassVar[str] = "network (proxy)"
    needs: ClassVar[frozenset[str]] = frozenset({"proxy"})
    scope: ClassVar[Scope] = "run"  # the run's own proxies only

    toxic_type: ClassVar[str] = "hold"

    def silences(self) -> bool:
        return True  # held to the targeted clients' heartbeat detection window (harness.run.holds)

    def start(self, ctx: FaultContext) -> None:
        for proxy in ctx.proxies_for(self.target):
            for stream in STREAMS:
                try:
                    ctx.toxiproxy.add_toxic(proxy, self.toxic_type, {}, stream=stream,
                                            name=toxic_name(self.name, stream))
                except Exception as exc:
                    if _is_invalid_type(exc):
                        raise ChaosError(
                            "fault 'partition' needs the `hold` toxic of rabbit-chaos's embedded proxy; "
                            "this proxy server (a real toxiproxy-server?) rejected it as an invalid toxic type",
                            "unset TOXIPROXY_URL / remove toxiproxy-server from PATH to use the embedded proxy, "
                            "or use the kernel partition (needs root)") from exc
                    raise
        ctx.effect("hold applied", observed=False)  # the proxy accepted it; nothing probed

    def heal(self, ctx: FaultContext) -> None:
        for proxy in ctx.proxies_for(self.target):
            for stream in STREAMS:
                remove_toxic(ctx, proxy, toxic_name(self.name, stream))
        ctx.effect("hold released", observed=False)
