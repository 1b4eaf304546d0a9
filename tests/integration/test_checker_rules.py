"""Each checker rule fires on a real run: one deliberately faulty client per rule (see
:mod:`harness.clients.faulty`), run by the engine against a real broker, must make exactly its
rule fire, with the expected count; the correct client (pika-recover) on the same workload passes.

Why real runs and not only synthetic histories (tests/unit/test_checker*.py): they prove the
evidence the harness really records (queue samples, drain, proc.exit, timing) is enough for each
rule, so a user can trust a ``pass`` because they have seen each ``fail`` happen.

One broker per session (boot costs seconds), one run (vhost) per case. Base port: 22972 unless
RC_RULES_BASE_PORT says otherwise.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from harness.clients.faulty import BY_RULE
from harness.engine import RunSpec, run_cell
from harness.env.environment import Environment

pytestmark = pytest.mark.broker

STATE_DIR = Path("/tmp/rc-rules-state")
BASE_PORT = int(os.environ.get("RC_RULES_BASE_PORT", "22972"))
COUNT = 200
#: the small fault-free workload every case shares (about 2 s of publishing)
WORKLOAD: dict[str, Any] = {"count": COUNT, "rate": 100.0, "warmup_s": 1.0, "fault": "none", "fault_s": 0.5,
                            "settle_s": 1.0, "settle_timeout_s": 20.0, "grace_s": 3.0}
#: liveness cases: the consumer never catches up, so settle waits its bound (12 s: the management
#: API's queue counts lag the queue by up to ~5 s, and the stall needs 3 s of waiting samples after
#: that); a short stall window and fault grace keep the run short while leaving several samples
LIVENESS: dict[str, Any] = {"settle_timeout_s": 12.0, "check_options": {"stall_window_s": 3.0, "fault_grace_s": 1.0}}


@dataclass(frozen=True)
class Case:
    client: str
    verdict: str
    fired: frozenset[str]  # exactly the rules that must fire (see fired_rules)
    counts: dict[str, int] = field(default_factory=dict)  # exact counts results.json must show
    spec: dict[str, Any] = field(default_factory=dict)  # RunSpec overrides
    reason: str | None = None  # a substring one of the reasons must contain


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
    "stall+stranded": Case(BY_RULE["stall"], "fail", frozenset({"stall", "stranded"}),
                           {"stranded": COUNT - 50, "delivered": 50}, LIVENESS, reason="stall: nothing delivered"),
    "consumer-lost+stranded": Case(BY_RULE["consumer_lost"], "fail", frozenset({"consumer_lost", "stranded"}),
                                   {"stranded": COUNT - 50, "delivered": 50}, LIVENESS,
                                   reason="consumer lost: the broker reported 0 consumers"),
    "publisher-hang": Case(BY_RULE["publisher_hang"], "fail", frozenset({"publisher_hang"}),
                           {"published": 101, "delivered": 100},
                           {"params": {"hang_at": 100, "hang_s": 5.0}, "check_options": {"hang_window_s": 3.0}},
                           reason="publisher hang: publisher-0"),
    # not a faulty client: a silent fault, so the report shows the detection time pika's heartbeat
    # (2 s: checked every 7 s) predicts, 7-14 s, beside the measured one
    "heartbeat-detection": Case("pika-recover", "pass", frozenset(), {"lost": 0, "stranded": 0},
                                {"fault": "partition", "fault_s": 18.0, "params": {"heartbeat": 2}}),
    "crash-unknown": Case(BY_RULE["client_crash"], "unknown", frozenset({"client_crash"}),
                          {"delivered": COUNT, "stranded": 0, "lost": 0},
                          reason="consumer-0 exited at"),
    "crash-strands": Case(BY_RULE["client_crash"], "fail", frozenset({"client_crash", "stranded"}),
                          {"delivered": 100, "stranded": COUNT - 100}, {"params": {"crash_after": 100}},
                          reason="consumer-0 exited at"),
}


def fired_rules(doc: dict[str, Any]) -> set[str]:
    """Which rules a results.json shows firing (anything unexpected here fails the case)."""
    c, m = doc["counts"], doc["metrics"]
    fired = {rule for rule in ("lost", "stranded", "unexpected", "duplicated_redelivery", "duplicated_resend",
                               "reordered", "recovered") if c.get(rule)}
    fired |= {s["kind"] for s in m.get("stalls", [])}
    if m.get("publisher_hangs"):
        fired.add("publisher_hang")
    if any(" exited at " in r or " gave up at " in r for r in doc["reasons"]):
        fired.add("client_crash")
    return fired


@pytest.fixture(scope="module")
def env() -> Iterator[Environment]:
    e = Environment(STATE_DIR, base_port=BASE_PORT)
    try:
        e.start()
        yield e
    finally:
        e.stop()


@pytest.mark.parametrize("name", list(CASES))
def test_rule_fires_on_a_real_run(name: str, env: Environment, tmp_path: Path) -> None:
    case = CASES[name]
    spec = {**WORKLOAD, **case.spec}
    doc = run_cell(env, RunSpec(client=case.client, **spec), tmp_path / "reports")
    summary = (f"{name}: verdict={doc['verdict']} reasons={doc['reasons']} notes={doc['notes']} "
               f"counts={doc['counts']} stalls={doc['metrics'].get('stalls')} "
               f"hangs={doc['metrics'].get('publisher_hangs')}")
    print(summary)
    assert doc["verdict"] == case.verdict, summary
    assert fired_rules(doc) == set(case.fired), summary
    for key, want in case.counts.items():
        assert doc["counts"][key] == want, f"{key}: {summary}"
    if case.reason is not None:
        assert any(case.reason in r for r in doc["reasons"]), summary
    if name == "heartbeat-detection":
        _assert_heartbeat_prediction(doc, summary)
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
