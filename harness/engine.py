"""One run: a client strategy × a fault timeline on a shared environment, judged from its history.

The run's shape (each phase is a function in harness.run.phases whose docstring says what it
waits for and what it records; every step leaves an event, so the history alone explains it):

  setup    fresh vhost + durable queue + one proxy per client role (+ kernel namespace)
  warmup   consumer connects, then the publisher publishes for ``warmup_s``
  nemesis  the fault timeline (a bare fault held for its hold: the user's ``fault_s``, the
           fault's default, or for a silent fault the clients' detection window + margin);
           faults write fault.start, fault.effect (when it took effect) and fault.stop
  heal     the timeline always ends healed
  settle   publisher finishes; the consumer catches up until the queue is empty and it has been
           quiet for ``settle_s`` — never while it holds an unacked delivery (up to
           ``settle_unacked_cap_s``): settle.end says why it ended
  drain    consumer stopped (proc.signal, then SIGTERM); the harness's trusted reader empties
           what is left
  check    merge the per-process files, run the checker, write results.json

A harness failure anywhere (broker never came back, a client could not start) ends the run
early with verdict ``unknown`` and the reason; an interrupt (SIGINT, or SIGTERM) heals, stops the
clients, drains, writes results.json (verdict unknown, ``interrupted: true``) and re-raises.
Either way the cell gets its results.json.
"""

from __future__ import annotations

import contextlib
import random
import re
import secrets
import signal
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from harness import results
from harness.clients.registry import get as get_strategy
from harness.env.environment import Environment
from harness.errors import FaultUnavailable, HarnessFailure, Interrupted, signal_name
from harness.faults.base import DEFAULT_HOLD_S, Fault
from harness.faults.timeline import Timeline
from harness.history import HistoryWriter
from harness.run import phases
from harness.run.phases import QUEUE, Outcome, Run
from harness.run.spec import RunSpec

__all__ = ["QUEUE", "RunSpec", "check_available", "check_timeline", "new_run_id", "run_cell", "timeline_for",
           "validate_fault"]


def run_cell(env: Environment, spec: RunSpec, reports_dir: Path, command: list[str] | None = None) -> dict[str, Any]:
    """Run one cell and return its results dict (also written to reports/<run-id>/results.json).

    Raises FaultUnavailable before anything starts when the fault cannot run here, and
    KeyboardInterrupt (after writing the interrupted cell's results) when interrupted."""
    run = prepare(env, spec, reports_dir, command)
    outcome = Outcome()
    with _sigterm_interrupts():
        try:
            phases.setup(run)
            phases.warmup(run)
            phases.nemesis(run)
            phases.heal(run)
            phases.settle(run)
            phases.drain(run)
        except HarnessFailure as exc:
            outcome.error = str(exc)
        except KeyboardInterrupt as exc:  # SIGINT, or SIGTERM (Interrupted): cleaned up, then re-raised
            outcome.interrupted, outcome.signame = exc, signal_name(exc)
        except Exception as exc:  # noqa: BLE001 - any harness bug must end as `unknown`, not a crash
            outcome.error = f"harness error: {type(exc).__name__}: {exc}"
        finally:
            phases.teardown(run, outcome)
        doc = phases.check(run, outcome)
    if outcome.interrupted is not None:
        raise outcome.interrupted
    return doc


def prepare(env: Environment, spec: RunSpec, reports_dir: Path, command: list[str] | None) -> Run:
    """Everything decided before the broker is touched: the timeline (checked against what this
    environment can inject), the seed, the run id and directory, the history writers."""
    strategy = get_strategy(spec.client) if command is None else None
    seed = spec.seed if spec.seed is not None else random.SystemRandom().randrange(2**31)
    timeline = timeline_for(spec, seed)
    check_timeline(timeline, env)
    run_id = new_run_id(spec.client, timeline)
    run_dir = results.run_dir(reports_dir, run_id)
    hist = run_dir / "history"
    return Run(env=env, spec=spec, run_id=run_id, seed=seed, timeline=timeline, run_dir=run_dir,
               reports_dir=reports_dir, strategy=strategy, command=command,
               harness=HistoryWriter(hist / "harness.jsonl", "harness", "harness"),
               nemesis=HistoryWriter(hist / "nemesis.jsonl", "nemesis", "nemesis"),
               drainer=HistoryWriter(hist / "drain.jsonl", "drain", "drain"))


@contextlib.contextmanager
def _sigterm_interrupts() -> Iterator[None]:
    """While a run is in progress, SIGTERM raises Interrupted("SIGTERM") like Ctrl-C raises
    KeyboardInterrupt, so the run heals and records itself instead of dying mid-fault. Only from
    the main thread and only where nobody else handles SIGTERM (the CLI installs its own)."""
    if threading.current_thread() is not threading.main_thread() or \
            signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL:
        yield
        return

    def raise_interrupted(signum: int, frame: object) -> None:
        raise Interrupted("SIGTERM")

    signal.signal(signal.SIGTERM, raise_interrupted)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)


def new_run_id(client: str, timeline: Timeline) -> str:
    """``<UTC time>-<client>-<fault names>-<random>``, safe as a directory and vhost name."""
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
    names = list(dict.fromkeys(w.fault.name for w in timeline.windows)) or ["none"]
    label = re.sub(r"[^A-Za-z0-9+_.-]+", "-", "+".join(names))[:48]
    client_label = re.sub(r"[^A-Za-z0-9+_.-]+", "-", client)[:40]
    return f"{stamp}-{client_label}-{label}-{secrets.token_hex(2)}"


def timeline_for(spec: RunSpec, seed: int | None) -> Timeline:
    """The run's fault timeline: ``spec.fault`` in the timeline syntax (docs/faults.md); "none" is
    the empty timeline (the control run). A bare fault is held from 0 for ``fault_s``, or when
    that is None for the fault's ``default_hold_s`` (the nemesis phase may lengthen a silent
    one to the clients' detection window: harness.run.holds)."""
    if spec.fault.strip() == "none":
        return Timeline([], seed=seed, source="none")
    timeline = Timeline.parse(spec.fault, hold_s=spec.fault_s if spec.fault_s is not None else DEFAULT_HOLD_S,
                              seed=seed)
    if timeline.bare:
        fault = timeline.windows[0].fault
        if spec.fault_s is not None:
            return timeline.held_for(spec.fault_s, f"user-given: {spec.fault_s:g} s")
        return timeline.held_for(fault.default_hold_s, f"the fault's default hold: {fault.default_hold_s:g} s")
    return timeline


def validate_fault(fault: str, fault_s: float | None = None) -> Timeline:
    """Parse a --fault value before anything starts (one clear ChaosError if it is wrong)."""
    return timeline_for(RunSpec(client="-", fault=fault, fault_s=fault_s), seed=0)


def check_timeline(timeline: Timeline, env: Environment) -> None:
    for w in timeline.windows:
        check_available(w.fault, env)


def check_available(fault: Fault, env: Environment) -> None:
    """Raise FaultUnavailable (with the reason) when this environment cannot inject ``fault``."""
    if "kernel" in fault.needs:
        from harness.env.netns import kernel_support

        reason = kernel_support()
        if reason:
            raise FaultUnavailable(f"fault {fault.name!r} is unavailable here: {reason}",
                                   "run as root with iproute2 and iptables installed, or choose a proxy fault")
    lacking = env.broker.capabilities.lacks(fault.needs)
    if lacking:  # the first in _BACKEND_NEEDS's order: the process before the cluster (its fix differs)
        need = next(n for n in _BACKEND_NEEDS if n in lacking)
        what, fix = _BACKEND_NEEDS[need]
        nodes = env.broker.capabilities.nodes
        shape = f" (it runs {nodes} node{'s' if nodes != 1 else ''})" if need == "cluster" else ""
        raise FaultUnavailable(f"fault {fault.name!r} needs {what}, which the {env.broker.kind} backend "
                               f"does not give{shape}", fix)


#: each backend need (harness.env.backend.BACKEND_NEEDS) -> what it is, in words, and how to get it
_BACKEND_NEEDS = {
    "process": ("control of the broker process", "use the local or compose backend for process faults"),
    "ctl": ("rabbitmqctl on the broker's node", "use the local or compose backend for alarms and consumer-timeout"),
    "cluster": ("a cluster (two nodes or more)", "add --nodes 3 (a local three-node cluster)"),
}

