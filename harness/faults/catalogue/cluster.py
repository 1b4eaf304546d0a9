"""Cluster faults: one node of a cluster killed, stopped, paused, cut off from its peers, or from
its clients; and the node leading the run's queue killed.

Every fault here needs a cluster (``needs`` holds "cluster": the engine refuses it on one node
before the run, "add --nodes 3"); node faults also need process control. ``node`` is the node's
index, 1..N, in the backend's order; node 1 is the node every client connects to first, so the
default hits the clients' own node. Effects name the Erlang node (``node=`` in their extra).

All are ``scope = "broker"``: they disturb every run on the cluster, so a matrix runs them alone.

``node-partition`` isolates a node at the Erlang distribution level with a user-space method,
because the nodes run in the host's own network namespace (where we never add iptables rules: the
rules would hit every other process using those loopback ports). On the isolated node,
``rabbitmqctl eval`` sets, for each peer, a random cookie (``erlang:set_cookie(Peer, Bad)``) and
drops the link (``erlang:disconnect_node(Peer)``). Erlang keys the handshake on the per-node
cookie both ways, so every reconnection, from either side, fails the challenge ("Connection
attempt ... rejected. Invalid challenge reply") until heal, which restores the node's real
cookie (``erlang:get_cookie()``) for each peer and calls ``net_kernel:connect_node``. rabbitmqctl
itself still reaches the node (it is another node, with the default cookie). With
``pause_minority`` the isolated node sees a minority and stops serving (its AMQP listener closes,
its clients are disconnected); the majority carries on. Measured: the majority drops the node at
once, the node pauses within 2 s, and after heal it runs again within ~2 s. What this does not
model: packets silently dropped (a kernel partition: TCP retransmits until net_ticktime, ~60 s,
decides the peer is gone). A kernel method would put each node in its own network namespace
(veth pairs, like harness.env.netns) and DROP distribution traffic with iptables between them;
see docs/cluster.md.
"""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass
from typing import ClassVar

from harness.env.backend import NodeState
from harness.errors import ChaosError, HarnessFailure
from harness.faults.base import Fault, FaultContext, Scope
from harness.faults.catalogue.broker_process import await_state, require

#: how long a heal waits for a node (or a partitioned node's rabbit app) to serve again, seconds
REJOIN_TIMEOUT_S = 90.0
#: how long a node fault is held by default, seconds. The point of a single-node fault is the
#: client's failover: the checker's *no failover* rule (harness.checker.rules.no_failover) judges
#: a client that lost its node only when the fault outlasts its loss + ``max_failover_s`` (10 s by
#: default); a shorter fault heals before a single-host client can be told from one that fails
#: over, and the cell is "not exercised". 20 s covers the node being taken away (pause_minority
#: pauses a partitioned node within ~2 s), the 10 s deadline and a margin.
NODE_FAULT_HOLD_S = 20.0
#: a silent node fault (``node-pause``) is held for the clients' heartbeat window first; a client
#: loses its node only when its heartbeat tells it, so the failover deadline (``max_failover_s``,
#: 10 s) runs from then: held this long past the detection bound (the deadline and a margin)
FAILOVER_AFTER_DETECTION_S = 15.0


def pick_node(fault: Fault, ctx: FaultContext, index: int) -> str:
    """The Erlang name of node ``index`` (1-based) of the context's backend, or a ChaosError
    naming the range: the node count is known only once the backend runs."""
    names = [n.name for n in ctx.broker.nodes()]
    if not 1 <= index <= len(names):
        raise ChaosError(f"fault {fault.name!r}: node={index} is not a node of this cluster ({len(names)} nodes)",
                         f"give node=1..{len(names)} (1 is the node clients connect to first)")
    return names[index - 1]


def _atom(name: str) -> str:
    """An Erlang node name as a quoted atom literal (names hold '@')."""
    return "'" + name.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _poll(pred: object, timeout: float, step: float = 0.2) -> bool:
    """Poll ``pred()`` until true or ``timeout`` (a condition with a deadline, not a sleep)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            if pred():  # type: ignore[operator]
                return True
        except HarnessFailure:
            pass  # a node that does not answer yet: not true yet
        if time.monotonic() > deadline:
            return False
        time.sleep(step)


@dataclass
class _NodeFault(Fault):
    """One node's process acted on; heal brings it back (start, or SIGCONT) and waits for AMQP."""

    node: int = 1
    family: ClassVar[str] = "cluster"
    needs: ClassVar[frozenset[str]] = frozenset({"process", "cluster"})
    scope: ClassVar[Scope] = "broker"  # a node of the shared cluster: every run on it
    default_hold_s: ClassVar[float] = NODE_FAULT_HOLD_S  # long enough to judge a failover (above)

    def validate(self) -> None:
        if self.node < 1:
            raise ChaosError(f"fault {self.name!r}: node={self.node} is not a node index",
                             "give node=1..N (1 is the node clients connect to first)")

    def target_node(self, ctx: FaultContext) -> str:
        """The node this fault acts on (chosen once, at start; heal reuses it). Kept as a plain
        attribute, not a dataclass field: it is state, not a parameter users give."""
        target: str | None = getattr(self, "_target", None)
        if target is None:
            target = self._target = pick_node(self, ctx, self.node)
        return target

    def heal(self, ctx: FaultContext) -> None:
        """Start the node unless it runs (idempotent; safe after a failed start)."""
        name = self.target_node(ctx)
        state: NodeState = ctx.broker.node_state(name)
        if state == "paused":
            ctx.broker.resume(name)
        elif state == "down":
            ctx.broker.start_node(name)  # returns after an AMQP handshake to that node
        ctx.effect("node up", observed=ctx.broker.node_state(name) == "running", node=name)


@dataclass
class NodeKill(_NodeFault):
    name: ClassVar[str] = "node-kill"
    description: ClassVar[str] = ("SIGKILL of one cluster node (node=1..N, 1 = the clients' first node): its "
                                  "clients' connections drop without a close; restarted at heal")

    def start(self, ctx: FaultContext) -> None:
        require(self, ctx)
        name = self.target_node(ctx)
        ctx.broker.kill_node(name)
        ctx.effect("node down", observed=ctx.broker.node_state(name) == "down", node=name)


@dataclass
class NodeStop(_NodeFault):
    name: ClassVar[str] = "node-stop"
    description: ClassVar[str] = ("graceful stop of one cluster node (its clients get connection.close, its "
                                  "queue leaders move); started again at heal")

    def start(self, ctx: FaultContext) -> None:
        require(self, ctx)
        name = self.target_node(ctx)
        ctx.broker.stop_node(name)
        ctx.effect("node down", observed=ctx.broker.node_state(name) == "down", node=name)


@dataclass
class NodePause(_NodeFault):
    name: ClassVar[str] = "node-pause"
    description: ClassVar[str] = ("SIGSTOP of one cluster node: its clients' connections go silent (only a "
                                  "heartbeat tells), its peers notice after net_ticktime; SIGCONT at heal")

    def start(self, ctx: FaultContext) -> None:
        require(self, ctx)
        name = self.target_node(ctx)
        ctx.broker.pause(name)
        ctx.effect("node paused", observed=await_state(ctx, "paused", name), node=name)

    hold_after_detection_s: ClassVar[float] = FAILOVER_AFTER_DETECTION_S  # then the failover deadline

    def silences(self) -> bool:
        return True  # held to the clients' heartbeat detection window (harness.run.holds)

    def heal(self, ctx: FaultContext) -> None:
        name = self.target_node(ctx)
        ctx.broker.resume(name)  # SIGCONT to a running node is harmless
        ctx.effect("node resumed", observed=await_state(ctx, "running", name), node=name)


@dataclass
class LeaderKill(Fault):
    """The node that leads the run queue, killed. A quorum queue's leader is in the management
    API's ``leader`` field; a classic queue has no leader, only a home node (``node``), which
    holds its one copy: that node is killed instead, and the effect says so."""

    name: ClassVar[str] = "leader-kill"
    description: ClassVar[str] = ("SIGKILL of the node leading the run queue (a quorum queue's leader; a classic "
                                  "queue's home node, its only copy); restarted at heal")
    family: ClassVar[str] = "cluster"
    needs: ClassVar[frozenset[str]] = frozenset({"process", "cluster"})
    scope: ClassVar[Scope] = "broker"
    default_hold_s: ClassVar[float] = NODE_FAULT_HOLD_S  # long enough to judge a failover (above)

    def start(self, ctx: FaultContext) -> None:
        require(self, ctx)
        info = ctx.broker.mgmt.queue(ctx.vhost, ctx.queue)
        if info is None:
            raise HarnessFailure(f"leader-kill: the run queue {ctx.queue!r} does not exist")
        qtype = str(info.get("type") or ctx.queue_type)
        leader = info.get("leader") if qtype == "quorum" else None
        name = str(leader or info.get("node") or "")
        if name not in {n.name for n in ctx.broker.nodes()}:
            raise HarnessFailure(f"leader-kill: the management API names no node of this cluster for "
                                 f"{ctx.queue!r} (leader {info.get('leader')!r}, node {info.get('node')!r})")
        self._target = name
        ctx.broker.kill_node(name)
        what = "leader node down" if leader else f"queue home node down ({qtype} queue: no leader, its one copy)"
        ctx.effect(what, observed=ctx.broker.node_state(name) == "down", node=name, queue_type=qtype,
                   queue_role="leader" if leader else "home")  # not "role": an event field

    def heal(self, ctx: FaultContext) -> None:
        name: str | None = getattr(self, "_target", None)
        if name is None:
            return  # never started (or failed before choosing): nothing killed
        if ctx.broker.node_state(name) == "down":
            ctx.broker.start_node(name)
        ctx.effect("node up", observed=ctx.broker.node_state(name) == "running", node=name)


def _peer_list(peers: list[str]) -> str:
    return "[" + ", ".join(map(_atom, peers)) + "]"


def _partition_expr(peers: list[str]) -> str:
    """Erlang for the isolated node: a random cookie towards each peer, and the links dropped."""
    bad = f"rc_partition_{secrets.token_hex(8)}"
    return (f"Bad = '{bad}', [begin erlang:set_cookie(P, Bad), erlang:disconnect_node(P) end "
            f"|| P <- {_peer_list(peers)}], ok.")


def _heal_expr(peers: list[str]) -> str:
    """Erlang for the isolated node: its real cookie towards each peer again, and reconnect."""
    return ("C = erlang:get_cookie(), [begin erlang:set_cookie(P, C), net_kernel:connect_node(P) end "
            f"|| P <- {_peer_list(peers)}], ok.")


def erlang_atoms(out: str) -> set[str]:
    """The atoms of a printed Erlang list (``[a@h,'b-c@h']``), unquoted: Erlang quotes an atom
    only when it must, so a node name may come back bare or quoted."""
    body = out.strip().removeprefix("[").removesuffix("]").replace("\n", " ")
    return {a.strip().strip("'") for a in body.split(",") if a.strip()}


def _sees(ctx: FaultContext, at: str, other: str) -> bool:
    """Does node ``at`` hold a distribution link to ``other``? (``nodes()`` on ``at``)"""
    return other in erlang_atoms(ctx.broker.ctl("eval", "nodes().", node=at, timeout=15))


def _serving(ctx: FaultContext, node: str) -> bool:
    """Is the rabbit application running on ``node`` (not paused by pause_minority)?"""
    return ctx.broker.ctl("eval", "rabbit:is_running().", node=node, timeout=15).strip() == "true"


@dataclass
class NodePartition(_NodeFault):
    """One node cut off from every peer at the Erlang distribution level (the cookie method of
    the module docstring); heal restores the cookie and reconnects."""

    name: ClassVar[str] = "node-partition"
    description: ClassVar[str] = ("one node isolated from its peers at the Erlang distribution level (per-peer "
                                  "cookie mismatch, user space): pause_minority stops it serving and its clients "
                                  "must move to the majority; heal reconnects and it rejoins")
    needs: ClassVar[frozenset[str]] = frozenset({"ctl", "cluster"})
    #: pause_minority pauses the node within ~2 s; then the failover deadline (NODE_FAULT_HOLD_S)
    default_hold_s: ClassVar[float] = NODE_FAULT_HOLD_S

    def peers(self, ctx: FaultContext) -> list[str]:
        name = self.target_node(ctx)
        return [n.name for n in ctx.broker.nodes() if n.name != name]

    def start(self, ctx: FaultContext) -> None:
        require(self, ctx)
        name, peers = self.target_node(ctx), self.peers(ctx)
        ctx.broker.ctl("eval", _partition_expr(peers), node=name)
        cut = _poll(lambda: not any(_sees(ctx, p, name) for p in peers), 10.0)
        ctx.effect("node partitioned", observed=cut, node=name, peers=peers)
        paused = _poll(lambda: not _serving(ctx, name), 15.0)
        ctx.effect("minority node paused", observed=paused, node=name)

    def heal(self, ctx: FaultContext) -> None:
        name, peers = self.target_node(ctx), self.peers(ctx)
        if ctx.broker.node_state(name) == "down":  # nothing to reconnect: a partition never leaves it down
            ctx.effect("node rejoined", observed=False, node=name)
            return
        ctx.broker.ctl("eval", _heal_expr(peers), node=name)
        joined = _poll(lambda: all(_sees(ctx, p, name) for p in peers) and _serving(ctx, name), REJOIN_TIMEOUT_S)
        ctx.effect("node rejoined", observed=joined, node=name)


@dataclass
class NodeCut(_NodeFault):
    """Every client loses its proxies to one node (Toxiproxy ``enabled: false``); the nodes keep
    talking to each other. A client that knows only that node is cut off; one with the node list
    should reconnect elsewhere."""

    name: ClassVar[str] = "node-cut"
    description: ClassVar[str] = ("clients lose their proxies to one node (Toxiproxy enabled=false: open "
                                  "connections closed, new ones refused); the cluster is intact; re-enabled at heal")
    needs: ClassVar[frozenset[str]] = frozenset({"proxy", "cluster"})

    def proxies(self, ctx: FaultContext) -> list[str]:
        name = self.target_node(ctx)
        by_role = ctx.node_proxies.get(name)
        if not by_role:
            raise HarnessFailure(f"node-cut: the run has no proxies to {name} (a cluster run makes one per role "
                                 "and node)")
        return sorted(by_role.values())

    def start(self, ctx: FaultContext) -> None:
        require(self, ctx)
        names = self.proxies(ctx)
        for proxy in names:
            ctx.toxiproxy.set_enabled(proxy, False)
        off = all(not ctx.toxiproxy.proxy(p).get("enabled", True) for p in names)
        ctx.effect("node cut off from clients", observed=off, node=self.target_node(ctx), proxies=names)

    def heal(self, ctx: FaultContext) -> None:
        names = self.proxies(ctx)
        for proxy in names:
            ctx.toxiproxy.set_enabled(proxy, True)
        on = all(ctx.toxiproxy.proxy(p).get("enabled", False) for p in names)
        ctx.effect("node reachable again", observed=on, node=self.target_node(ctx), proxies=names)
