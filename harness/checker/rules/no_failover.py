"""no failover: on a cluster, a client that lost its node stayed off the cluster while the other
nodes served, longer than the scenario's ``max_failover_s`` (default 10 s).

Why a rule of its own. *not recovered* measures from the heal, which is right for one broker: until
the heal there was nothing to connect to. On a cluster a single-node fault (``node-kill``,
``node-stop``, ``node-pause``, ``leader-kill``, ``node-partition``, ``node-cut``) takes one node away
while the others keep serving: the service was available all along. A client that only ever
reconnects to its one node (a single-host client) is unavailable for as long as that node's
outage lasts -- hours in production -- and comes back at the heal looking healthy to a heal-based
measure. A best-practice client rotates over every node's address (``ClientConfig.amqp_urls``)
and resumes within a second or two.

Contract. Judged only when the run had two nodes or more (``CheckOptions.nodes``), per node-fault
window (:data:`harness.checker.cluster.NODE_FAULTS`) that hit one node (its effects' ``node``; a
window overlapped by a node fault on another node is skipped: with two nodes away a three-node
cluster has no majority to fail over to; a window that took a classic queue's own node away is
skipped with a note: that queue was unavailable on every node, see :func:`queue_went_with`). For
each client under test (``client.start``, not aborted) that *lost its connection* inside the
window -- its first ``conn.lost`` /
``channel.closed`` / ``consume.cancelled`` from the window's ``fault.start`` to its effect's end,
or the harness's ``conn.node`` ``null`` for it there, whichever first, before the harness began
stopping it -- its *failover* is the time from that loss to its first work on a live connection:

* publisher: a ``publish.ok`` (confirmed, for a client that confirms) after a ``conn.open`` that
  followed its last break;
* consumer: a ``deliver`` after such a ``conn.open``, or of a message first published after the
  loss (a library may hand over what it buffered before its connection died: that proves nothing).

The node it came back on is the first non-null ``conn.node`` after the loss (sampled, 1/s).

* The deadline is loss + ``max_failover_s``. When the fault's effect ended before it, nothing is
  judged: a client may be right to retry its own node for a while (*not exercised* says so when a
  client came back only after such a heal, see :func:`short_windows`).
* Resumed by the deadline: a failover, ``metrics.failover_s[proc]`` (the largest over windows).
* A client that gave up (exited on its own) by the deadline is left to *gave up*, which names
  its error: it did not fail over because it stopped trying.
* Otherwise, if the client had work at the deadline -- a publisher still running its workload
  (no ``client.exit`` before the deadline); a consumer while messages were ready (a
  ``queue.sample`` with ``messages_ready`` > 0 from the loss to the effect's end), published then
  (``publish.invoke``), or left for the drain -- a finding, ``fail``: "no failover: consumer-0
  stayed off the cluster for 30.2 s while b and c served (its node a was partitioned away at
  t=+3.1s); it came back only after the heal at t=+33.4s". A client with nothing to do is "not
  needed" (``metrics.failover_not_needed``).

Off when ``max_failover_s`` is None. Proof: an absence (no resumed work), so each unreadable
history line weakens it; it compares the nemesis's and the harness's times with the client's
(``timed``). Cost: O(k log k) over the connection, fault and sample events, plus for each judged
client a bisected scan of the events from its loss to its first resumed work (a passing client
resumes within seconds; a failing one is scanned until it resumes, at worst to the history's end),
and for a publisher a scan back to its last ``publish.ok`` before the loss (a few events back).
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from dataclasses import dataclass
from typing import Any

from harness.checker.cluster import DOWN_FAULTS, NODE_FAULTS, UNNAMED, node_names, queue_nodes
from harness.checker.effects import FaultWindow
from harness.checker.findings import PROOF_HISTORY, Finding
from harness.checker.fold import Fold, get_t
from harness.checker.lifecycle import Proc
from harness.checker.rules import RuleContext, rule
from harness.checker.text import rel

HEADLINE = "no failover"
#: what a client writes when its connection, channel or consumer is gone
BREAKS = ("conn.lost", "channel.closed", "consume.cancelled")
#: how each node fault took the node away, for the sentence
VERBS = {"node-kill": "killed", "node-stop": "stopped", "node-pause": "paused",
         "leader-kill": "killed (it led the queue)", "node-partition": "partitioned away",
         "node-cut": "cut off from its clients"}
#: how to fix a single-host client
FIX = "give the client every node's address (ClientConfig.amqp_urls) and rotate through them when it reconnects"


@dataclass(slots=True)
class Failover:
    """One client's loss under one single-node fault window, and what followed it."""

    proc: str
    role: str
    window: FaultWindow
    node: str  # the node the fault hit (UNNAMED when the window names none)
    loss_t: float
    loss_what: str  # "conn.lost", ..., or "conn.node" (the harness saw no connection)
    deadline_t: float
    resumed_t: float | None = None  # first work on a live connection after the loss
    resumed_on: str | None = None  # the first node conn.node placed it on after the loss
    judged: bool = False  # the fault was still in effect at the deadline
    work: str = ""  # why it had work at the deadline ("" = none: not needed)

    @property
    def end_t(self) -> float | None:
        return self.window.effect_end_t

    @property
    def failover_s(self) -> float | None:
        return None if self.resumed_t is None else self.resumed_t - self.loss_t

    @property
    def failed(self) -> bool:
        """Fired: judged, with work, and not resumed by the deadline."""
        return self.judged and bool(self.work) and (self.resumed_t is None or self.resumed_t > self.deadline_t)


def single_node_windows(ctx: RuleContext) -> list[tuple[FaultWindow, str]]:
    """(window, its node) for each node-fault window that hit one node while no node fault on
    another node overlapped it. O(w^2) for w node-fault windows (a timeline has a handful)."""
    wins = [(w, node_names(w)) for w in ctx.faults if w.name in NODE_FAULTS]
    out: list[tuple[FaultWindow, str]] = []
    for w, nodes in wins:
        if len(nodes) > 1:
            continue
        a, b = w.took_effect_t, w.effect_end_t if w.effect_end_t is not None else float("inf")
        others = [o for o, on in wins if o is not w and o.took_effect_t <= b
                  and (o.effect_end_t is None or o.effect_end_t >= a) and (not on or not nodes or on != nodes)]
        if not others:
            out.append((w, next(iter(nodes), UNNAMED)))
    return out


def _first_loss(idx: Fold, proc: str, a: float, b: float) -> tuple[float, str] | None:
    """``proc``'s first break notice in [a, b], or the harness's ``conn.node`` null for it there."""
    best: tuple[float, str] | None = None
    for kind in (*BREAKS, "conn.node"):
        evs = idx.kind(kind)
        for ev in evs[bisect_left(evs, a, key=get_t):bisect_right(evs, b, key=get_t)]:
            if ev["proc"] != proc or (kind == "conn.node" and isinstance(ev.get("node"), str)):
                continue
            if best is None or ev["t"] < best[0]:
                best = (ev["t"], kind)
            break
    return best


def _resumed(idx: Fold, p: Proc, loss: float, loss_what: str) -> float | None:
    """The first work ``p`` did on a live connection after ``loss`` (module docstring). One
    bisected scan of the events from the loss; stops at the first success.

    A connection is down from a ``conn.lost`` (or the harness's ``conn.node`` null) to the next
    ``conn.open``; a lost channel or consumer on a connection that stays up is not: re-opening the
    channel or consuming again on it is work on a live connection."""
    evs = idx.events
    down = loss_what in ("conn.lost", "conn.node")
    confirms = False  # does this publisher confirm? (its last ok before the loss says)
    for k in range(bisect_left(evs, loss, key=get_t) - 1 if p.role == "publisher" else -1, -1, -1):
        ev = evs[k]
        if ev["kind"] == "publish.ok" and ev["proc"] == p.name:
            confirms = bool(ev["confirmed"])
            break
    for k in range(bisect_right(evs, loss, key=get_t), len(evs)):
        ev = evs[k]
        if ev["proc"] != p.name:
            continue
        kind = ev["kind"]
        if kind == "conn.open":
            down = False
        elif kind == "conn.lost":
            down = True
        elif kind == "publish.ok" and not down and (ev["confirmed"] or not confirms):
            return float(ev["t"])
        elif kind == "deliver":
            inv = idx.first_invoke(ev["id"])
            if not down or (inv is not None and inv["t"] > loss):
                return float(ev["t"])
    return None


def _work(ctx: RuleContext, p: Proc, loss: float, deadline: float, end: float) -> str:
    """Why ``p`` had work at its deadline ("" when it had none)."""
    idx = ctx.idx
    if p.role == "publisher":
        if p.exit_t is None or p.exit_t > deadline or p.exit_ok is False:
            return "it had not finished publishing"
        return ""
    samples = idx.kind("queue.sample")
    for ev in samples[bisect_left(samples, loss, key=get_t):bisect_right(samples, end, key=get_t)]:
        ready = ev.get("messages_ready")
        if isinstance(ready, int) and ready > 0:
            return f"the queue held {ready} ready messages at {rel(ev['t'], idx.t0)}"
    invokes = idx.kind("publish.invoke")
    if bisect_right(invokes, end, key=get_t) > bisect_left(invokes, loss, key=get_t):
        return "messages were published meanwhile"
    if idx.kind("drain"):
        return "the drain found messages left in the queue"
    return ""


def _came_on(idx: Fold, proc: str, a: float) -> str | None:
    """The first node ``conn.node`` placed ``proc`` on after ``a`` (its own node again, for a
    single-host client; sampled 1/s, and later while the management API fails over)."""
    evs = idx.kind("conn.node")
    for ev in evs[bisect_right(evs, a, key=get_t):]:
        v = ev.get("node")
        if ev["proc"] == proc and isinstance(v, str) and v:
            return v
    return None


def queue_went_with(ctx: RuleContext, w: FaultWindow, node: str) -> bool:
    """Did window ``w`` take the run's classic queue away with its node? A classic queue lives on
    one node: while that node is down, paused or partitioned away (pause_minority stops it), no
    client on any node can publish to it or consume from it ("home node ... is down"), so no
    failover can resume work and the wait is the queue type's, not the client's. Unknown queue
    node: any down fault may have been it (the lost rule assumes the same, and says so)."""
    if ctx.opts.queue_type != "classic" or w.name not in DOWN_FAULTS:
        return False
    homes = queue_nodes(ctx.idx)
    return not homes or node == UNNAMED or node in homes


def failovers(ctx: RuleContext) -> list[Failover]:
    """Every client's loss under every single-node fault window, measured (module docstring).
    Empty unless the run had two nodes or more and ``max_failover_s`` is set. A window that took
    a classic queue's own node away is not judged (:func:`queue_went_with`): a note says so."""
    nodes, limit = ctx.opts.nodes, ctx.opts.max_failover_s
    if nodes is None or nodes < 2 or limit is None:
        return []
    idx, out = ctx.idx, []
    for w, node in single_node_windows(ctx):
        if queue_went_with(ctx, w, node):
            where = "its node" if node == UNNAMED else node
            ctx.notes.append(
                f"failover not judged for {w.name} at {rel(w.took_effect_t, idx.t0)}: the classic queue lived on "
                f"{where}, so it was unavailable on every node until the heal (a classic queue is not "
                "replicated: use a quorum queue for a queue that outlives a node); no client could resume "
                "work meanwhile, which is the queue type's doing, not the client's")
            continue
        end = w.effect_end_t
        last = end if end is not None else idx.t_end
        for p in ctx.life.clients():
            if p.start_t is None or p.aborted or p.role not in ("publisher", "consumer"):
                continue
            stop = min((t for t in (p.signal_t, p.end_t) if t is not None), default=last)
            hit = _first_loss(idx, p.name, max(w.started_t, p.start_t), min(last, stop))
            if hit is None:
                continue
            loss, what = hit
            f = Failover(p.name, str(p.role), w, node, loss, what, loss + limit)
            quit_t = p.gave_up_t
            if quit_t is not None and quit_t <= f.deadline_t:
                continue  # it gave up instead of reconnecting anywhere: *gave up* names its error
            f.resumed_t = _resumed(idx, p, loss, what)
            f.judged = end is None or end > f.deadline_t
            if f.judged and (f.resumed_t is None or f.resumed_t > f.deadline_t):
                f.work = _work(ctx, p, loss, f.deadline_t, last)
            elif not f.judged and end is not None and (f.resumed_t is None or f.resumed_t >= end):
                f.work = _work(ctx, p, loss, end, end)  # for not exercised: it had work at the heal
            f.resumed_on = _came_on(idx, p.name, loss)
            out.append(f)
    return out


def short_windows(ctx: RuleContext) -> list[Failover]:
    """Losses the rule could not judge: the fault healed before the client's deadline and the
    client came back only after the heal (or never). The *not exercised* rule reports them: such
    a run cannot tell a single-host client from one that fails over. A client with no work left
    at the heal needed no failover and is left out."""
    return [f for f in ctx.memo("failovers", failovers)
            if not f.judged and f.work and f.end_t is not None and (f.resumed_t is None or f.resumed_t >= f.end_t)]


def _served(ctx: RuleContext, node: str) -> str:
    """"rabbit_b@h and rabbit_c@h" (the other nodes the history names), else "the other N nodes"."""
    names: set[str] = set()
    for ev in ctx.idx.kind("conn.node"):
        if isinstance(ev.get("node"), str) and ev["node"]:
            names.add(ev["node"])
    for ev in ctx.idx.kind("queue.sample"):
        for key in ("node", "leader"):
            if isinstance(ev.get(key), str) and ev[key]:
                names.add(ev[key])
    for w in ctx.faults:
        names |= node_names(w)
        for e in w.effects:
            names |= {str(x) for x in e.get("peers") or [] if isinstance(x, str)}
    others = sorted(names - {node})
    total = ctx.opts.nodes or 0
    if others and len(others) >= total - 1:
        return " and ".join([", ".join(others[:-1]), others[-1]] if len(others) > 1 else others)
    return f"the other {total - 1} nodes" if total > 1 else "the other nodes"


def describe(ctx: RuleContext, f: Failover) -> str:
    """One failing client as a sentence: how long it stayed away, who served, how it came back."""
    t0 = ctx.idx.t0
    end = f.end_t
    away_to = f.resumed_t if f.resumed_t is not None else (ctx.idx.t_end if end is None else end)
    verb = VERBS.get(f.window.name, f"hit by {f.window.name}")
    node = "its node" if f.node == UNNAMED else f"its node {f.node}"
    head = (f"no failover: {f.proc} stayed off the cluster for {away_to - f.loss_t:.1f} s while "
            f"{_served(ctx, f.node)} served ({node} was {verb} at {rel(f.window.took_effect_t, t0)}; it lost "
            f"its connection at {rel(f.loss_t, t0)})")
    if f.resumed_t is None:
        tail = "it never came back" if end is None else f"it had not come back by the heal at {rel(end, t0)}"
    elif end is not None and f.resumed_t >= end:
        tail = f"it came back only after the heal at {rel(end, t0)} (at {rel(f.resumed_t, t0)})"
    elif f.resumed_on is not None and f.resumed_on == f.node:
        heal = "" if end is None else f"; the heal took effect at {rel(end, t0)}"
        tail = f"it came back only when its node did, at {rel(f.resumed_t, t0)}, on {f.node}{heal}"
    else:
        on = f" on {f.resumed_on}" if f.resumed_on else ""
        tail = (f"it resumed at {rel(f.resumed_t, t0)}{on}, later than max_failover_s "
                f"{ctx.opts.max_failover_s:g} s")
    return f"{head}; {tail}; {f.work}. Fix: {FIX}"


@rule("no_failover", order=100)
def no_failover(ctx: RuleContext) -> list[Finding]:
    """A client off the cluster longer than ``max_failover_s`` while the other nodes served."""
    found = ctx.memo("failovers", failovers)
    if not found:
        return []
    best: dict[str, float] = {}
    for f in found:
        s = f.failover_s
        if s is not None and not f.failed and (f.end_t is None or f.resumed_t is None or f.resumed_t < f.end_t):
            best[f.proc] = max(best.get(f.proc, 0.0), round(s, 3))
    if best:
        ctx.metrics["failover_s"] = best
    t0 = ctx.idx.t0
    ctx.metrics["failovers"] = [
        {"proc": f.proc, "role": f.role, "fault": f.window.name, "node": f.node, "loss_s": round(f.loss_t - t0, 3),
         "by": f.loss_what, "resumed_s": None if f.resumed_t is None else round(f.resumed_t - t0, 3),
         "failover_s": None if f.failover_s is None else round(f.failover_s, 3), "resumed_on": f.resumed_on,
         "judged": f.judged, "failed": f.failed} for f in found]
    not_needed: dict[str, Any] = {
        f.proc: "no work left when its failover deadline passed" for f in found
        if f.judged and not f.work and (f.resumed_t is None or f.resumed_t > f.deadline_t)}
    if not_needed:
        ctx.metrics["failover_not_needed"] = not_needed
    return [Finding("no_failover", 1, describe(ctx, f), proof=PROOF_HISTORY, timed=True, headline=HEADLINE)
            for f in found if f.failed]
