"""Faults made with the Toxiproxy API: work the same against a real toxiproxy-server or ours."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Literal

from harness.faults.base import Fault, FaultContext, Scope, Target
from harness.faults.catalogue._toxic import remove_toxic


@dataclass
class ConnectionCut(Fault):
    target: Target = "all"

    name: ClassVar[str] = "connection-cut"
    description: ClassVar[str] = ("proxy disabled: open connections closed, new ones refused "
                                  "until heal (Toxiproxy `enabled: false`)")
    family: ClassVar[str] = "network (proxy)"
    needs: ClassVar[frozenset[str]] = frozenset({"proxy"})
    scope: ClassVar[Scope] = "run"  # the run's own proxies only

    def start(self, ctx: FaultContext) -> None:
        for proxy in ctx.proxies_for(self.target):
            ctx.toxiproxy.set_enabled(proxy, False)
        ctx.effect("proxy disabled", observed=False)  # the API call returned: connections are cut

    def heal(self, ctx: FaultContext) -> None:
        for proxy in ctx.proxies_for(self.target):
            ctx.toxiproxy.set_enabled(proxy, True)
        ctx.effect("proxy enabled", observed=False)


@dataclass
class ResetPeer(Fault):
    target: Target = "all"
    timeout_ms: int = 0
    stream: Literal["upstream", "downstream"] = "downstream"

    name: ClassVar[str] = "reset-peer"
    description: ClassVar[str] = ("each connection closed when it next carries data in `stream`, after timeout_ms "
                                  "(Toxiproxy reset_peer): TCP RST for connections opened during the fault, FIN "
                                  "for ones already open (as Toxiproxy 2.12); idle ones when they next talk; "
                                  "until heal")
    family: ClassVar[str] = "network (proxy)"
    needs: ClassVar[frozenset[str]] = frozenset({"proxy"})
    scope: ClassVar[Scope] = "run"  # the run's own proxies only

    toxic_name: ClassVar[str] = "rabbit_chaos_reset_peer"

    def start(self, ctx: FaultContext) -> None:
        for proxy in ctx.proxies_for(self.target):
            ctx.toxiproxy.add_toxic(proxy, "reset_peer", {"timeout": self.timeout_ms},
                                    stream=self.stream, name=self.toxic_name)
        ctx.effect("toxic added", observed=False)

    def heal(self, ctx: FaultContext) -> None:
        # idempotent: a toxic (or proxy) already gone is healed; anything else (the proxy server
        # unreachable) is raised, as every toxic fault's heal does (_toxic.remove_toxic)
        for proxy in ctx.proxies_for(self.target):
            remove_toxic(ctx, proxy, self.toxic_name)
        ctx.effect("toxic removed", observed=False)

