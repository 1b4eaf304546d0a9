"""not exercised: a silent fault too short for a targeted client's heartbeat to have noticed it.

A fault that silences a connection without closing it (partition, blackhole, paused broker: its
``fault.start`` says ``silent``) can be noticed only by the client's heartbeat, whose detection
window depends on the library and its setting (:mod:`harness.clients.heartbeat`). A fault that
healed before that window closed proves nothing about detection: a client that would never
notice passes exactly like one that would. The cell then says so instead of passing quietly.

Contract. For each silent fault window with a heal, its *effect* duration (first start effect, else
``fault.start`` -> last heal effect, else ``fault.stop``; :mod:`harness.checker.effects`) is
compared, per client it targeted (``params.target``: "all", "publisher", "consumer"), with that
client's bound from its ``client.start``:

* ``heartbeat_window_s`` = [lower, upper]: the upper bound; lower + 1 s when the upper is null (the
  library promises no latest time, e.g. py-amqp: the lower bound plus a second is the least that
  can show anything). Without the field, the window the library's model predicts from
  ``heartbeat_s``.
* a heartbeat but no model (an unknown library): 2 × heartbeat (AMQP 0-9-1: a peer is dead after
  two missed heartbeats).
* heartbeats off (``heartbeat_s`` 0 or absent, no window): such a client cannot notice silence
  at all; what a silent fault can still show is whether its waiting calls block past
  ``max_block_s`` (the *blocked* finding). So the bound is ``max_block_s``: a shorter silent fault
  exercised nothing.

A client that noticed anyway (a notice of its own inside the window: a confirm timeout, say) was
exercised.

On a cluster, the same holds for a failover (:mod:`harness.checker.rules.no_failover`): a
single-node fault that healed before a client's loss + ``max_failover_s``, while that client came
back only after the heal (or never), cannot tell a single-host client from one that would have
failed over: one finding per such window, naming the clients and the hold that would judge them.
A client that failed over before the heal was exercised; one that never lost its node needs none.

One finding per window naming every client it fell short of, and how long to hold it:
``effect "unknown"`` (the run could not test what it set out to). Proof: positive (the fault and
client.start events that are there). Cost: O(w × c) for w silent windows and c clients
(the failover part reuses no_failover's measurement).
"""

from __future__ import annotations

import math

from harness.checker.findings import PROOF_POSITIVE, Finding
from harness.checker.rules import RuleContext, rule
from harness.checker.rules.no_failover import short_windows
from harness.checker.text import rel
from harness.checker.timing import noticed_between
from harness.clients.heartbeat import exercise_bound
from harness.history import Event

HEADLINE = "not exercised"
#: seconds a recommended hold adds past the bound (the engine's default silent hold uses a margin too)
HOLD_MARGIN_S = 5.0


@rule("not_exercised", order=200)
def not_exercised(ctx: RuleContext) -> list[Finding]:
    """A silent fault shorter than a targeted client's detection window (unknown, not pass)."""
    idx = ctx.idx
    starts: dict[str, Event] = {}
    for ev in idx.kind("client.start"):
        starts.setdefault(ev["proc"], ev)
    out: list[Finding] = []
    for w in ctx.faults:
        held = w.effect_s
        end = w.effect_end_t
        if not w.silent or held is None or end is None:
            continue
        short: dict[str, float] = {}  # phrase -> bound
        advice: dict[str, None] = {}
        for proc, start in starts.items():
            if not w.targets(start["role"]):
                continue
            bound, phrase, tip = exercise_bound(start, ctx.opts.max_block_s)
            if held >= bound or noticed_between(idx, ctx.life, proc, w.started_t, end) is not None:
                continue
            short[phrase] = bound
            advice[tip] = None
        if not short:
            continue
        hold = math.ceil(max(short.values()) + HOLD_MARGIN_S)
        out.append(Finding(
            "not_exercised", 1,
            f"not exercised: the {held:.1f} s {w.name} is shorter than {' and '.join(short)}: "
            f"hold it ≥ {hold:g} s or {' / '.join(advice)}",
            proof=PROOF_POSITIVE, timed=True, effect="unknown", headline=HEADLINE))
    out += _short_node_faults(ctx)
    return out


def _short_node_faults(ctx: RuleContext) -> list[Finding]:
    """Single-node faults that healed before a client's failover deadline (module docstring)."""
    limit = ctx.opts.max_failover_s
    by_window: dict[int, list[str]] = {}
    holds: dict[int, float] = {}
    names: dict[int, str] = {}
    t0 = ctx.idx.t0
    for f in short_windows(ctx):
        key = id(f.window)
        names[key] = f"{f.window.effect_s or 0.0:.1f} s {f.window.name}"
        by_window.setdefault(key, []).append(f"{f.proc} (lost its node at {rel(f.loss_t, t0)})")
        # the hold that would judge it: from the fault's effect to the deadline, and a margin
        holds[key] = max(holds.get(key, 0.0), f.deadline_t - f.window.took_effect_t + HOLD_MARGIN_S)
    return [Finding(
        "not_exercised", 1,
        f"not exercised: the {names[k]} healed before max_failover_s {limit:g} s had passed for "
        f"{', '.join(who)}, who came back only after the heal: a node fault shorter than max_failover_s cannot "
        f"show a failover (a single-host client passes like one that moves to another node): hold it "
        f"≥ {math.ceil(holds[k]):g} s (--fault-for) or lower --max-failover",
        proof=PROOF_POSITIVE, timed=True, effect="unknown", headline=HEADLINE) for k, who in by_window.items()]
