"""Cluster facts: which broker node each fault hit and when, where the queue lived, which node each
client was connected to, and whom a lost confirmed message is owed to.

A lost message is first a fact (acknowledged, never seen again: ``queue.judge``). Whose doing it
is depends on what the broker promised for the run's queue type, which the history alone does not
say; the run's spec does (``CheckOptions.queue_type``):

* **quorum**: a quorum queue confirms a message once a majority of its replicas has written it, so
  no fault that takes down (or cuts off) one node at a time may lose it. A confirmed message lost
  in such a run is the **broker's** finding, not the client's (:func:`attribute`).
* **classic**: a classic queue lives on one node and is not replicated. What the broker confirmed
  while that node was down had nowhere to survive: the **queue type's** doing (``config``). What it
  confirmed while it was up and lost across the node's restart was not persistent (a durable classic queue
  keeps persistent messages across a kill): still the client's, with the node fault named.

docs/checker.md ("Queue types and clusters") gives the reasoning and what a user sees.

The node a fault hit comes from its ``fault.effect`` events (``node``: the Erlang node name, the
cluster faults write it) or its ``params.node``; a node fault that names none counts as one node.
The queue's node comes from ``queue.sample`` ``node`` / ``leader`` (the management API's view), a
``fault.effect`` ``queue_node``, or the node ``leader-kill`` killed (it picks the queue's leader, or
a classic queue's home node); unknown, any node a down-fault hit may have been it.

Pure functions over the fold's low-volume lists and the fault windows: O(k log k) for k fault,
sample and ``conn.node`` events; the classic split reads the events of the node-down stretch only
(bisected), when a classic run lost confirmed messages under a node fault (a failing run).
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections.abc import Iterable
from dataclasses import dataclass, field
from itertools import islice
from typing import Any

from harness.checker.effects import FaultWindow
from harness.checker.fold import Fold, get_t
from harness.checker.lifecycle import Lifecycle
from harness.checker.text import rel

#: faults that take one broker node away from the others: its process killed, stopped or frozen,
#: or its inter-node links cut. A classic queue on that node is unavailable meanwhile. The
#: ``broker-*`` faults are the single-node backend's: they act on its one node.
DOWN_FAULTS = frozenset({"node-kill", "node-stop", "node-pause", "leader-kill", "node-partition",
                         "broker-restart", "broker-crash", "broker-pause"})
#: every fault that acts on one node: the down faults, and ``node-cut`` (clients lose their path to
#: one node; the node itself and its queues carry on)
NODE_FAULTS = DOWN_FAULTS | {"node-cut"}
#: the fault that kills the node hosting the run queue: its ``node`` is the queue's node
LEADER_KILL = "leader-kill"
#: the node a fault hit when it names none (one node all the same)
UNNAMED = "?"


@dataclass(frozen=True, slots=True)
class NodeHit:
    """One node fault's window: the node(s) it named (empty: one node, not named) and its effect
    span (``end`` None: never healed)."""

    fault: str
    nodes: frozenset[str]
    start: float
    end: float | None
    down: bool

    def covers(self, t: float) -> bool:
        return self.start <= t and (self.end is None or t <= self.end)

    def names(self) -> str:
        return ", ".join(sorted(self.nodes)) or "one node"

    def says(self, t0: float) -> str:
        """"node-kill of rabbit-2@h at t=+3.0s–+8.1s" (the effect span)."""
        until = "never healed" if self.end is None else rel(self.end, t0).removeprefix("t=")
        return f"{self.fault} of {self.names()} at {rel(self.start, t0)}–{until}"


def node_names(w: FaultWindow) -> frozenset[str]:
    """The node(s) a fault window names: its effects' ``node``, or its ``params.node``."""
    names = {e["node"] for e in w.effects if isinstance(e.get("node"), str) and e["node"]}
    node = w.params.get("node")
    if isinstance(node, str) and node:
        names.add(node)
    return frozenset(names)


def node_hits(faults: Iterable[FaultWindow]) -> list[NodeHit]:
    """Every node fault's window, in start order. O(k)."""
    return [NodeHit(w.name, node_names(w), w.took_effect_t, w.effect_end_t, w.name in DOWN_FAULTS)
            for w in faults if w.name in NODE_FAULTS]


def most_nodes_at_once(hits: list[NodeHit]) -> int:
    """The most distinct nodes hit at any one moment (a hit that names no node counts as one more
    node: it may be another). The maximum is reached at some hit's start. O(h^2) for h hits (a
    timeline has a handful)."""
    most = 0
    for h in hits:
        live = [o for o in hits if o.covers(h.start)]
        named = set().union(*(o.nodes for o in live))
        most = max(most, len(named) + sum(1 for o in live if not o.nodes))
    return most


def queue_nodes(idx: Fold) -> list[str]:
    """The nodes the run's queue was seen on (``queue.sample`` ``node`` / ``leader``,
    ``fault.effect`` ``queue_node``, the node ``leader-kill`` killed: it chose the node hosting
    the queue), in order of first sight. O(s + k)."""
    seen: dict[str, None] = {}
    for ev in idx.kind("queue.sample"):
        for key in ("node", "leader"):
            v = ev.get(key)
            if isinstance(v, str) and v:
                seen.setdefault(v, None)
    for ev in idx.kind("fault.effect"):
        # leader-kill picks the queue's node itself (a quorum queue's leader, a classic queue's home)
        v = ev.get("queue_node") or (ev.get("node") if ev.get("fault") == LEADER_KILL else None)
        if isinstance(v, str) and v:
            seen.setdefault(v, None)
    return list(seen)


def nodes_timeline(idx: Fold, life: Lifecycle) -> dict[str, list[dict[str, Any]]]:
    """Per client process, the broker node it was connected to, interval by interval, from the
    harness's ``conn.node`` events: ``[{"node": name or None (no connection), "start_s", "end_s"}]``
    in seconds from the run's first event. An interval ends at that process's next ``conn.node``,
    else at its end (exit), else at the history's last event. O(c log c) for c conn.node events."""
    by_proc: dict[str, list[tuple[float, str | None]]] = {}
    for ev in idx.kind("conn.node"):
        node = ev.get("node")
        by_proc.setdefault(str(ev["proc"]), []).append((ev["t"], node if isinstance(node, str) else None))
    out: dict[str, list[dict[str, Any]]] = {}
    for proc in sorted(by_proc):
        changes = sorted(by_proc[proc], key=lambda x: x[0])
        p = life.procs.get(proc)
        last = p.end_t if p is not None and p.end_t is not None else idx.t_end
        rows: list[dict[str, Any]] = []
        for k, (t, node) in enumerate(changes):
            end = changes[k + 1][0] if k + 1 < len(changes) else max(t, last)
            if rows and rows[-1]["node"] == node:  # the same node seen again: one interval
                rows[-1]["end_s"] = round(end - idx.t0, 3)
                continue
            rows.append({"node": node, "start_s": round(t - idx.t0, 3), "end_s": round(end - idx.t0, 3)})
        out[proc] = rows
    return out


def metrics(idx: Fold, life: Lifecycle, faults: list[FaultWindow], queue_type: str | None,
            nodes: int | None) -> dict[str, Any]:
    """What results.json ``metrics`` records about the cluster: the queue type and node count the
    run was given, the nodes the history names (clients, faults, the queue), each client's node over
    time (``nodes_timeline``) and each node fault with its nodes (``node_faults``). O(k log k)."""
    hits = node_hits(faults)
    timeline = nodes_timeline(idx, life)
    named = {r["node"] for rows in timeline.values() for r in rows if r["node"] is not None}
    named |= {n for h in hits for n in h.nodes}
    qnodes = queue_nodes(idx)
    named |= set(qnodes)
    return {
        "queue_type": queue_type,
        "nodes": nodes,
        "node_names": sorted(named),
        "queue_nodes": qnodes,
        "nodes_timeline": timeline,
        "node_faults": [{"fault": h.fault, "nodes": sorted(h.nodes), "start_s": round(h.start - idx.t0, 3),
                         "end_s": None if h.end is None else round(h.end - idx.t0, 3), "down": h.down}
                        for h in hits],
    }


@dataclass(slots=True)
class Attribution:
    """Whose doing the lost confirmed ids are (:func:`attribute`). ``broker``: a quorum queue lost
    them under single-node faults. ``queue_type``: confirmed while the classic queue's only node was
    down (``down``: that fault). ``context``: a clause for the client's own lost finding (the
    node fault it happened under), "" when none. ``notes``: why no attribution was made."""

    broker: set[str] = field(default_factory=set)
    queue_type: set[str] = field(default_factory=set)
    broker_why: str = ""
    down: list[NodeHit] = field(default_factory=list)
    #: the queue's node was recorded (else any down node may have been it)
    queue_node_known: bool = False
    context: str = ""
    notes: list[str] = field(default_factory=list)


def may_owe(faults: list[FaultWindow], queue_type: str | None) -> bool:
    """Could a loss in this run be owed to the broker or the queue type: a known queue type and a
    node fault. O(k)."""
    return queue_type in ("quorum", "classic") and any(w.name in NODE_FAULTS for w in faults)


def attribute(idx: Fold, faults: list[FaultWindow], queue_type: str | None, confirmed: set[str]) -> Attribution:
    """Split lost *confirmed* ids by owner (module docstring). ``confirmed``: the lost ids with a
    ``publish.ok`` confirmed=true still counted as lost. Empty attribution when the run's queue type
    is not known, or no node fault happened. O(k log k), plus for a classic run a pass over the
    events while the queue's node was down. An id confirmed while the node was down is the queue
    type's even if it was (re-sent and) confirmed again later."""
    out = Attribution()
    hits = node_hits(faults)
    if not confirmed or not hits or queue_type not in ("quorum", "classic"):
        return out
    t0 = idx.t0
    if queue_type == "quorum":
        at_once = most_nodes_at_once(hits)
        if at_once > 1:
            out.notes.append(f"the quorum queue's lost confirmed messages are not called the broker's: {at_once} "
                             "nodes were hit at once, more than a quorum queue promises to survive")
            return out
        if idx.deliveries and not idx.acks:
            out.notes.append("the quorum queue's lost confirmed messages are not called the broker's: the consumers "
                             "never acked (auto-ack), so the broker counts a message delivered once it is sent, and "
                             "a connection lost under the fault loses what was on the wire")
            return out
        out.broker = set(confirmed)
        out.broker_why = "; ".join(h.says(t0) for h in hits)
        return out
    down = classic_down(idx, hits)
    if not down:
        return out
    qnodes = queue_nodes(idx)
    out.queue_node_known = bool(qnodes)
    out.down = down
    out.queue_type = _confirmed_within(idx, confirmed, down)
    whose = "the classic queue's node" if qnodes else "a node (the classic queue's node is not recorded)"
    out.context = (f"{whose} was down ({'; '.join(h.says(t0) for h in down)}): a durable classic queue keeps "
                   "persistent messages across its node's restart, so these, confirmed while it was up, were not "
                   "persistent (or the broker lost them)")
    return out


def classic_down(idx: Fold, hits: list[NodeHit]) -> list[NodeHit]:
    """The down-faults that hit the classic queue's node (any down-fault when the queue's node is
    not recorded, or the fault names no node). O(h + s)."""
    qnodes = set(queue_nodes(idx))
    return [h for h in hits if h.down and (not qnodes or not h.nodes or bool(h.nodes & qnodes))]


def stranded_context(idx: Fold, faults: list[FaultWindow], queue_type: str | None) -> str:
    """A clause for the stranded finding of a classic queue's run whose queue node went down: the
    queue was unavailable meanwhile, and consuming again once it is back is the client's part
    (a consumer gets basic.cancel or loses its connection). "" otherwise. O(k + s)."""
    if queue_type != "classic":
        return ""
    down = classic_down(idx, node_hits(faults))
    if not down:
        return ""
    return (f"the classic queue's node was down ({'; '.join(h.says(idx.t0) for h in down)}): the queue was "
            "unavailable until it came back, and consuming again then is the client's part")


def _confirmed_within(idx: Fold, ids: set[str], spans: list[NodeHit]) -> set[str]:
    """The ``ids`` with a confirmed ``publish.ok`` inside one of ``spans``. Reads only the events
    from the first span's start to the last one's end (found by bisection): O(log n + w) for the w
    events in that stretch, on a failing run's path only."""
    a = min(h.start for h in spans)
    b = max(float("inf") if h.end is None else h.end for h in spans)
    evs = idx.events
    lo = bisect_left(evs, a, key=get_t)
    hi = len(evs) if b == float("inf") else bisect_right(evs, b, key=get_t)
    out: set[str] = set()
    for ev in islice(evs, lo, hi):
        if ev["kind"] == "publish.ok" and ev["id"] in ids and ev.get("confirmed") and \
                any(h.covers(ev["t"]) for h in spans):
            out.add(ev["id"])
    return out
