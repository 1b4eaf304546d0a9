"""Kernel faults: iptables rules on the loopback of the clients' own network namespace.

Unlike proxy faults these drop *packets*, so TCP itself reacts: lost segments are retransmitted
(the client sees delay, not corruption), a blackhole stalls the connection until a heartbeat or
TCP gives up, and a healed link carries on with no close. Each fault keeps its rules in its own
chain, so overlapping faults heal independently and heal is "flush and delete my chain".
Needs root; elsewhere these faults are unavailable with the reason (see env.netns).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Literal

from harness.errors import ChaosError
from harness.faults.base import Fault, FaultContext, KernelLink, Scope, Target


def _link(ctx: FaultContext, name: str) -> KernelLink:
    if ctx.kernel is None:
        raise ChaosError(f"fault {name!r} needs the clients in a network namespace",
                         "run it through the engine (it sets that up when a kernel fault is requested)")
    return ctx.kernel


@dataclass
class _KernelFault(Fault):
    target: Target = "all"

    family: ClassVar[str] = "network (kernel)"
    needs: ClassVar[frozenset[str]] = frozenset({"kernel"})
    scope: ClassVar[Scope] = "run"  # rules inside the run's own network namespace

    @property
    def chain(self) -> str:
        return ("RC_" + self.name.upper().replace("-", "_"))[:28]

    def rules(self, port: int) -> list[list[str]]:
        """iptables rule bodies (after "-A CHAIN") for one relay port."""
        raise NotImplementedError

    def start(self, ctx: FaultContext) -> None:
        link = _link(ctx, self.name)
        ns = link.netns
        ns.iptables("-N", self.chain, check=False)
        ns.iptables("-F", self.chain)
        roles = list(link.ports) if self.target == "all" else [self.target]
        for role in roles:
            for body in self.rules(link.ports[role]):
                ns.iptables("-A", self.chain, *body)
        if ns.iptables("-C", "INPUT", "-j", self.chain, check=False).returncode != 0:
            ns.iptables("-I", "INPUT", "-j", self.chain)
        # observed: iptables -C asks the kernel whether the jump to our chain is installed
        ctx.effect("rules installed", observed=ns.iptables("-C", "INPUT", "-j", self.chain,
                                                           check=False).returncode == 0)

    def heal(self, ctx: FaultContext) -> None:
        if ctx.kernel is None:
            return
        ns = ctx.kernel.netns
        while ns.iptables("-D", "INPUT", "-j", self.chain, check=False).returncode == 0:
            pass
        ns.iptables("-F", self.chain, check=False)
        ns.iptables("-X", self.chain, check=False)
        ctx.effect("rules removed", observed=ns.iptables("-C", "INPUT", "-j", self.chain,
                                                         check=False).returncode != 0)


def _both(port: int, *action: str) -> list[list[str]]:
    return [["-p", "tcp", "--dport", str(port), *action], ["-p", "tcp", "--sport", str(port), *action]]


@dataclass
class KernelLoss(_KernelFault):
    loss: float = 0.1

    name: ClassVar[str] = "kernel-loss"
    description: ClassVar[str] = ("random packet loss (loss = probability per packet, both directions) "
                                  "by iptables: TCP retransmits, the client sees delay, not corruption")

    def validate(self) -> None:
        if not 0 < self.loss <= 1:
            raise ChaosError(f"kernel-loss: loss={self.loss} must be in (0, 1]", "e.g. kernel-loss:loss=0.2")

    def rules(self, port: int) -> list[list[str]]:
        return _both(port, "-m", "statistic", "--mode", "random", "--probability", f"{self.loss:.6f}", "-j", "DROP")


@dataclass
class KernelBlackhole(_KernelFault):
    name: ClassVar[str] = "kernel-blackhole"
    description: ClassVar[str] = ("partition: every packet dropped both ways; nothing is closed, TCP retransmits, "
                                  "and a healed link carries on (the real partition, not Toxiproxy's timeout)")

    def rules(self, port: int) -> list[list[str]]:
        return _both(port, "-j", "DROP")

    def silences(self) -> bool:
        return True


@dataclass
class KernelOneWay(_KernelFault):
    direction: Literal["to-broker", "from-broker"] = "to-broker"
    loss: float = 1.0

    name: ClassVar[str] = "kernel-oneway"
    description: ClassVar[str] = ("one-way loss: packets dropped in one direction only (to-broker or from-broker), "
                                  "with probability loss (1.0 = that direction is black-holed)")

    def validate(self) -> None:
        if not 0 < self.loss <= 1:
            raise ChaosError(f"kernel-oneway: loss={self.loss} must be in (0, 1]", "e.g. kernel-oneway:loss=1.0")

    def silences(self) -> bool:
        return self.direction == "from-broker" and self.loss >= 1.0

    def rules(self, port: int) -> list[list[str]]:
        flag = "--dport" if self.direction == "to-broker" else "--sport"
        match = ["-m", "statistic", "--mode", "random", "--probability", f"{self.loss:.6f}"] if self.loss < 1 else []
        return [["-p", "tcp", flag, str(port), *match, "-j", "DROP"]]


@dataclass
class KernelReset(_KernelFault):
    name: ClassVar[str] = "kernel-reset"
    description: ClassVar[str] = ("the kernel answers the client's packets with TCP RST (iptables REJECT "
                                  "--reject-with tcp-reset): open connections reset, new ones refused")

    def rules(self, port: int) -> list[list[str]]:
        return [["-p", "tcp", "--dport", str(port), "-j", "REJECT", "--reject-with", "tcp-reset"]]
