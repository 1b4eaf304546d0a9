"""gave up: a client process that ended on its own before finishing its workload.

Contract. A client under test (it wrote ``client.start``) that exited by itself -- ``proc.exit``
with ``expected: false`` and no ``proc.signal`` to it before -- or said it gave up
(``client.exit`` ``ok: false`` before any signal). A finding about the client, never the harness's
failure: its history up to then is valid evidence, and what it lost or stranded counts as well.
The reason names its last error: ``client.exit`` ``error`` (else its ``reason`` when ok=false),
else its last ``conn.lost`` / ``channel.closed`` error with the time, else that none was written.
Not this rule (``unknown``, from integrity): a client that never wrote ``client.start``, one the
harness aborted (``proc.signal`` why=abort, or a ``proc.exit`` note "the run was aborted ..."),
one the harness stopped (``proc.signal`` before its end; in older histories a ``proc.exit`` note
"stopped by the harness" / "ignored SIGTERM"). A ``client.exit`` ok=false written after the
harness's signal is the client's reaction to being stopped: a note. Proof: the ``proc.exit`` /
``client.exit`` event itself (``PROOF_POSITIVE``).

Cost: O(c + k) for c clients and k conn.lost/channel.closed events.
"""

from __future__ import annotations

from harness.checker.findings import PROOF_POSITIVE, Finding
from harness.checker.lifecycle import Proc
from harness.checker.rules import RuleContext, rule
from harness.checker.text import rel

INF = float("inf")


def last_error(ctx: RuleContext, p: Proc, until: float) -> str:
    """The last error ``p`` recorded by ``until`` (rule docstring)."""
    if p.exit_error:
        return p.exit_error
    if p.exit_ok is False and p.exit_reason:
        return p.exit_reason
    errs = [ev for k in ("conn.lost", "channel.closed") for ev in ctx.idx.kind(k)
            if ev["proc"] == p.name and ev["t"] <= until]
    if errs:
        ev = max(errs, key=lambda e: e["t"])
        what = ev.get("error") if ev["kind"] == "conn.lost" else ev.get("reason")
        return f"last error {ev['kind']} at {rel(ev['t'], ctx.idx.t0)}: {what}"
    if p.exit_reason is not None:
        return f"{p.exit_reason} (no error recorded)"
    return "no client.exit written and no error recorded"


@rule("gave_up", order=40)
def gave_up(ctx: RuleContext) -> list[Finding]:
    """Clients that ended on their own, each with its last error."""
    out: list[Finding] = []
    t0 = ctx.idx.t0
    for p in sorted(ctx.life.clients(), key=lambda p: (p.gave_up_t or INF, p.name)):
        t = p.gave_up_t
        if t is None:
            if p.exit_ok is False and p.exit_t is not None and not p.aborted and p.start_t is not None:
                ctx.notes.append(f"{p.name} wrote client.exit ok=false at {rel(p.exit_t, t0)} after the harness "
                                 f"began stopping it: {p.exit_reason} (its reaction to being stopped, not giving up)")
            continue
        by_proc = p.expected is False and p.proc_exit_t is not None and not p.signalled_before(p.proc_exit_t)
        how = (f"with code {p.code}" if p.code is not None else "(killed by a signal)") if by_proc \
            else "(client.exit ok=false)"
        out.append(Finding(
            "gave_up", 1,
            f"gave up: {p.name} exited at {rel(t, t0)} {how} before finishing its workload: {last_error(ctx, p, t)}",
            PROOF_POSITIVE, headline="gave up"))
    return out
