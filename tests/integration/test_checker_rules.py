"""Each checker rule fires on a real run: one deliberately faulty client per rule (see
:mod:`harness.clients.faulty`), run by the engine against a real broker, must make exactly its
rule fire, with the expected count; the correct client (pika-recover) on the same workload passes,
and so does a busy but correct consumer whose long job looks like a stall from the queue alone.

Why real runs and not only synthetic histories (tests/unit/test_checker*.py): they prove the
evidence the harness really records (queue samples, drain, proc.exit, fault effects, timing) is
enough for each rule, so a user can trust a ``pass`` because they have seen each ``fail`` happen.

The time findings are judged on the client's own clocks (docs/checker.md): *busy* (holds an
unacked delivery: never a stall), *stalled* (ready messages, a consumer, nothing held, nothing
delivered for longer than ``max_stall_s``), *blocked* (a publish waited longer than
``max_block_s`` and the application was told nothing), *gave up* (the client exited on its own:
``fail``, never ``unknown``).

One broker per module (boot costs seconds), one run (vhost) per case. Base port 22972 and state
dir /tmp/rc-rules-state unless RC_RULES_BASE_PORT / RC_RULES_STATE_DIR say otherwise (parallel
runs need both their own).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from harness.clients.faulty import BY_RULE, ENTRIES
from harness.engine import RunSpec, run_cell
from harness.env.environment import Environment

pytestmark = pytest.mark.broker

STATE_DIR = Path(os.environ.get("RC_RULES_STATE_DIR", "/tmp/rc-rules-state"))
BASE_PORT = int(os.environ.get("RC_RULES_BASE_PORT", "22972"))
COUNT = 200
#: the small fault-free workload every case shares (about 2 s of publishing)
WORKLOAD: dict[str, Any] = {"count": COUNT, "rate": 100.0, "warmup_s": 1.0, "fault": "none", "fault_s": 0.5,
                            "settle_s": 1.0, "settle_timeout_s": 20.0, "grace_s": 3.0}
#: liveness cases: the consumer never catches up, so settle waits its bound (12 s: the management
#: API's queue counts lag the queue by up to ~5 s, and the stall needs 3 s of waiting samples after
#: that); a short stall deadline and fault grace keep the run short while leaving several samples
LIVENESS: dict[str, Any] = {"settle_timeout_s": 12.0, "check_options": {"max_stall_s": 3.0, "fault_grace_s": 1.0}}
#: the busy consumer: a 10 s job on message 100, while ~99 wait ready behind its prefetch of 1 (the
#: queue alone would call that a stall: the samples, ~3 s behind the queue, still show > 3 s of it),
#: and a 4 s job on the last message, whose ack only comes if settle waits for the work the client
#: holds (capped at 30 s here, 120 s by default)
BUSY: dict[str, Any] = {"params": {"job_at": [100, -1], "job_s": [10.0, 4.0]}, "settle_unacked_cap_s": 30.0,
                        "check_options": {"max_stall_s": 3.0, "fault_grace_s": 1.0}}
#: the silent blocker under a 20 s memory alarm, with the default deadline (max_block_s 10): the
#: publisher runs 5 s (200 at 40/s), so the alarm (raised after the 1 s warm-up) catches it mid-way
ALARM: dict[str, Any] = {"fault": "memory-alarm", "fault_s": 20.0, "rate": 40.0}
#: tutorial code under a 2 s connection cut: the consumer dies at the cut, the publisher (4 s of
#: work) recovers after the heal and publishes the rest, which nobody consumes
CUT: dict[str, Any] = {"fault": "connection-cut", "fault_s": 2.0, "rate": 50.0}

#: rules that only ever make notes (never change the verdict) and may come with a re-send under
#: a fault without being the point of the case
NOTE_RULES = frozenset({"duplicated_redelivery", "duplicated_resend", "reordered", "recovered"})


@dataclass(frozen=True)
class Case:
    client: str
    verdict: str
    fired: frozenset[str]  # the rules that must fire, and nothing else but may_fire (see fired_rules)
    counts: dict[str, int] = field(default_factory=dict)  # exact counts results.json must show
    spec: dict[str, Any] = field(default_factory=dict)  # RunSpec overrides
    reason: str | None = None  # a substring one of the reasons must contain
    may_fire: frozenset[str] = frozenset()  # rules allowed, not required (notes a fault may cause)


CASES: dict[str, Case] = {
    "negative-control": Case("pika-recover", "pass", frozenset(),
                             {"published": COUNT, "delivered": COUNT, "lost": 0, "stranded": 0}),
    "lost": Case(BY_RULE["lost"], "fail", frozenset({"lost"}),
                 {"lost": COUNT // 10, "lost_confirmed": COUNT // 10, "delivered": COUNT - COUNT // 10},
                 reason="confirmed by the broker"),
    "unexpected": Case(BY_RULE["unexpected"], "fail", frozenset({"unexpected"}),
                       {"unexpected": COUNT // 50, "delivered": COUNT + COUNT // 50}, reason="never published"),
    "duplicated-redelivery": Case(BY_RULE["duplicated_redelivery"], "pass", frozenset({"duplicated_redelivery"}),
                                  {"duplicated": COUNT, "duplicated_redelivery": COUNT, "duplicated_resend": 0}),
    "duplicated-resend": Case(BY_RULE["duplicated_resend"], "pass", frozenset({"duplicated_resend"}),
                              {"duplicated": COUNT, "duplicated_resend": COUNT, "duplicated_redelivery": 0}),
    "reordered": Case(BY_RULE["reordered"], "pass", frozenset({"reordered"}), {"reordered": COUNT // 10 * 9}),
    # deadlocked before recording its delivery: holds nothing unacked in its own history -> stalled
    "stalled+stranded": Case(ENTRIES["stuck_consumer"], "fail", frozenset({"stalled", "stranded"}),
                             {"stranded": COUNT - 50, "delivered": 50}, LIVENESS, reason="stall"),
    "consumer-lost+stranded": Case(BY_RULE["consumer_lost"], "fail", frozenset({"consumer_lost", "stranded"}),
                                   {"stranded": COUNT - 50, "delivered": 50}, LIVENESS, reason="consumer"),
    # a long job in a worker thread, acked through the I/O thread: busy, never stalled; pass
    "busy-but-correct": Case(ENTRIES["busy_consumer"], "pass", frozenset(),
                             {"published": COUNT, "delivered": COUNT, "lost": 0, "stranded": 0, "duplicated": 0},
                             BUSY),
    # no fault, no notice, no outcome for 5 s (deadline 3 s) while the publisher runs
    "blocked-no-fault": Case(ENTRIES["hanging_publisher"], "fail", frozenset({"blocked"}),
                             {"published": 101, "delivered": 100},
                             {"params": {"hang_at": 100, "hang_s": 5.0}, "check_options": {"max_block_s": 3.0}},
                             reason="publisher-0"),
    # pika with no blocked_connection_timeout and no blocked callback: one publish waits the alarm out
    "blocked-silent-alarm": Case(ENTRIES["silent_blocker"], "fail", frozenset({"blocked"}),
                                 {"published": COUNT, "lost": 0, "stranded": 0}, ALARM, reason="publisher-0",
                                 may_fire=NOTE_RULES),
    # its fix: blocked_connection_timeout=5 raises within the deadline; it reconnects and re-sends
    "blocked-fixed-twin": Case(ENTRIES["silent_blocker"], "pass", frozenset(),
                               {"published": COUNT, "lost": 0, "stranded": 0},
                               {**ALARM, "params": {"blocked_timeout": 5}}, may_fire=NOTE_RULES),
    # not a faulty client: a silent fault, so the report shows the detection time pika's heartbeat
    # (2 s: checked every 7 s) predicts, 7-14 s, beside the measured one
    "heartbeat-detection": Case("pika-recover", "pass", frozenset(), {"lost": 0, "stranded": 0},
                                {"fault": "partition", "fault_s": 18.0, "params": {"heartbeat": 2}}),
    # a crash with no fault is the client exiting on its own: gave up (fail), never unknown
    "crash-gave-up": Case(ENTRIES["crashing_consumer"], "fail", frozenset({"gave_up"}),
                          {"delivered": COUNT, "stranded": 0, "lost": 0}, reason="consumer-0"),
    "crash-gave-up+stranded": Case(ENTRIES["crashing_consumer"], "fail", frozenset({"gave_up", "stranded"}),
                                   {"delivered": 100, "stranded": COUNT - 100}, {"params": {"crash_after": 100}},
                                   reason="consumer-0"),
    # tutorial code under a connection cut: the consumer exits at its first error and strands the
    # rest; nothing is delivered after the heal, so recovery is never (not recovered)
    "gave-up-connection-cut": Case(ENTRIES["giver_up"], "fail", frozenset({"gave_up", "stranded", "not_recovered"}),
                                   {"lost": 0}, CUT, reason="consumer-0", may_fire=NOTE_RULES),
    # the same publisher given up under force-close: it never publishes the rest, nothing after the heal
    "gave-up-publisher-force-close": Case(ENTRIES["giver_up"], "fail", frozenset({"gave_up", "not_recovered"}),
                                          {"lost": 0, "stranded": 0},
                                          {"fault": "force-close", "fault_s": 1.0, "rate": 50.0,
                                           "params": {"gives_up": "publisher"}},
                                          reason="publisher-0", may_fire=NOTE_RULES),
    # the negative control of gave up: the same tutorial code with no fault runs to the end
    # a 12 s job inline in pika's callback with heartbeat 2: the broker drops the connection and
    # redelivers, with no fault at all; the client reconnects, so only the drop fails the run
    "dropped-inline-job": Case(ENTRIES["inline_consumer"], "fail", frozenset({"dropped"}),
                               {"published": COUNT, "delivered": COUNT, "lost": 0, "stranded": 0},
                               {"params": {"heartbeat": 2, "job_at": 20, "job_s": 12.0}},
                               reason="with no fault in effect", may_fire=NOTE_RULES),
    "giver-up-no-fault": Case(ENTRIES["giver_up"], "pass", frozenset(),
                              {"published": COUNT, "delivered": COUNT, "lost": 0, "stranded": 0},
                              {"params": {"gives_up": "both"}}),
}


def _rule_name(finding: dict[str, Any]) -> str:
    """A finding's name as the cases spell it: its rule (``gave_up``, ``not_recovered``), else its
    headline with underscores."""
    return str(finding.get("rule") or finding["headline"]).replace(" ", "_")


#: finding headlines as reasons begin ("gave up: consumer-0 exited at ..."), for the fallback below;
#: "stall" / "publisher hang" are the old checker's words for stalled / blocked
_HEADLINES = {"lost": "lost", "stranded": "stranded", "unexpected": "unexpected", "gave up": "gave_up",
              "blocked": "blocked", "stalled": "stalled", "stall": "stalled", "publisher hang": "blocked",
              "consumer lost": "consumer_lost", "busy too long": "busy", "late detection": "late_detection",
              "not recovered": "not_recovered", "not exercised": "not_exercised", "no overlap": "no_overlap"}


def fired_rules(doc: dict[str, Any]) -> set[str]:
    """Which rules a results.json shows firing (anything unexpected here fails the case).

    The findings list (``findings``: rule, headline, effect, ...) when results.json has one, plus
    the note-only rules from the counts (duplicates, reordering, recovered messages are notes,
    never findings). Without a findings list: lost / stranded / unexpected from the counts and the
    other findings from the headline each reason begins with."""
    c = doc["counts"]
    fired = {rule for rule in NOTE_RULES if c.get(rule)}
    findings = doc.get("findings")
    if findings is not None:
        return fired | {_rule_name(f) for f in findings}
    fired |= {rule for rule in ("lost", "stranded", "unexpected") if c.get(rule)}
    for reason in doc["reasons"]:
        head = reason.partition(":")[0].strip().lower()
        if head in _HEADLINES:
            fired.add(_HEADLINES[head])
        elif " exited at " in reason:  # the old checker's crash sentence
            fired.add("gave_up")
    return fired


@pytest.mark.parametrize("name", list(CASES))
def test_rule_fires_on_a_real_run(name: str, env: Environment, tmp_path: Path) -> None:
    case = CASES[name]
    spec = {**WORKLOAD, **case.spec}
    doc = run_cell(env, RunSpec(client=case.client, **spec), tmp_path / "reports")
    summary = (f"{name}: verdict={doc['verdict']} reasons={doc['reasons']} notes={doc['notes']} "
               f"counts={doc['counts']} findings={doc.get('findings')} timing={_timing_line(doc)}")
    print(summary)
    assert doc["verdict"] == case.verdict, summary
    fired = fired_rules(doc)
    assert set(case.fired) <= fired <= set(case.fired | case.may_fire), summary
    for key, want in case.counts.items():
        assert doc["counts"][key] == want, f"{key}: {summary}"
    if case.reason is not None:
        assert any(case.reason in r for r in doc["reasons"]), summary
    if name == "heartbeat-detection":
        _assert_heartbeat_prediction(doc, summary)
    if name == "busy-but-correct":
        _assert_settle_waited_for_the_job(tmp_path / "reports" / doc["run_id"] / "history.jsonl", summary)
        # the case tests something: the checker saw a wait longer than max_stall_s and excused it
        assert doc["metrics"]["busy"], (doc["metrics"]["busy"], doc["metrics"]["stalls"], summary)
    if name == "gave-up-connection-cut":
        # what it stranded is everything it had not acked: all published ids are delivered or stranded
        assert doc["counts"]["stranded"] > 0, summary
        assert doc["counts"]["delivered"] + doc["counts"]["stranded"] == COUNT, summary
        assert doc["timing"].get("recovery_s") is None, summary  # never: the consumer is dead
    if "reordered" in case.fired:
        assert doc["metrics"]["reorder_max_displacement"] == 9, summary
    if case.verdict == "pass" and case.fired:
        assert doc["notes"], summary  # notes-only rules (duplicates, reordering) are reported as notes


def _assert_heartbeat_prediction(doc: dict[str, Any], summary: str) -> None:
    pred = doc["timing"]["detail"]["heartbeat_prediction"]
    assert pred["fault"] == "partition", summary
    rows = pred["by_proc"]
    assert set(rows) == {"publisher-0", "consumer-0"}, summary
    for proc, row in rows.items():
        assert row["library"] == "pika" and row["heartbeat_s"] == 2, (proc, row)
        assert row["window_s"] == [7.0, 14.0], (proc, row)
        # pika noticed by heartbeat, within its window (give or take the checker's slack)
        assert row["within"] == "inside", (proc, row, summary)


def _timing_line(doc: dict[str, Any]) -> str:
    t = doc.get("timing", {})
    return f"detection={t.get('detection_s')} recovery={t.get('recovery_s')} wall={t.get('wall_s')}"


def _assert_settle_waited_for_the_job(history: Path, summary: str) -> None:
    """The long job on the last message ended inside the run: settle waited while the consumer held
    it (settle.end held_unacked 0) and every delivery was acked before the harness stopped it."""
    events = [json.loads(line) for line in history.read_text().splitlines() if line.strip()]
    settle = [e for e in events if e.get("kind") == "settle.end"]
    assert settle and settle[-1].get("held_unacked") == 0 and settle[-1].get("reason") != "cap", (settle, summary)
    delivered = {e["id"] for e in events if e.get("kind") == "deliver" and e.get("proc") == "consumer-0"}
    acked = {e["id"] for e in events if e.get("kind") == "ack" and e.get("proc") == "consumer-0"}
    assert len(delivered) == COUNT and acked == delivered, (len(delivered), len(acked), summary)
