"""The rule registry and the verdict it feeds: every rule registered once, documented, run in order;
unknown-effect findings never fail a run; results carry each finding and a headline."""

from __future__ import annotations

import importlib

import pytest

from harness.checker import check
from harness.checker.builder import clean_run
from harness.checker.findings import PROOF_HISTORY, PROOF_POSITIVE, Finding
from harness.checker.integrity import Integrity
from harness.checker.rules import rule, rules
from harness.checker.verdict import combine

#: the rules of issue 14 (timing-B's late_detection, not_recovered, not_exercised, no_overlap beside)
MINE = ("lost", "stranded", "unexpected", "gave_up", "blocked", "stalled", "consumer_lost", "busy")


def test_every_rule_is_registered_in_order_with_its_contract_and_cost() -> None:
    reg = rules()
    assert set(MINE) <= set(reg)
    names = list(reg)
    assert [n for n in names if n in MINE] == list(MINE)  # message rules first, then why
    for r in reg.values():
        mod = importlib.import_module(r.module)
        assert mod.__doc__ and "Cost" in mod.__doc__, r.module
        assert r.doc, r.name


def test_a_second_rule_of_the_same_name_is_an_error() -> None:
    with pytest.raises(RuntimeError, match="registered twice"):
        rule("lost")(lambda ctx: [])


def test_an_unknown_effect_finding_never_fails() -> None:
    trust = Integrity()
    f = Finding("not_exercised", 1, "not exercised: too short", PROOF_POSITIVE, effect="unknown",
                headline="not exercised")
    j = combine([f], trust)
    assert j.verdict == "unknown" and j.reasons == ["not exercised: too short"] and j.headline == "not exercised"
    assert j.findings == [{"rule": "not_exercised", "category": "not_exercised", "headline": "not exercised",
                           "effect": "unknown", "count": 1, "text": "not exercised: too short", "proven": True,
                           "owner": "client"}]
    lost = Finding("lost_confirmed", 2, "lost 2 messages", PROOF_POSITIVE, headline="lost")
    j = combine([f, lost], trust)
    assert j.verdict == "fail" and j.headline == "lost"
    assert j.reasons == ["lost 2 messages", "not exercised: too short"]


def test_an_unproven_failing_finding_heads_an_unknown_run() -> None:
    trust = Integrity(history_slack=3, history_why="3 unreadable history lines")
    j = combine([Finding("stalled", 1, "stalled: x", PROOF_HISTORY, headline="stalled")], trust)
    assert j.verdict == "unknown" and j.headline == "stalled"
    assert j.findings[0]["proven"] is False


def test_results_carry_findings_and_headline() -> None:
    h = clean_run(per_publisher=2)
    h.publish("publisher-0", "p0-2")
    d = check(h.finish().events()).to_dict()
    assert d["headline"] == "lost"
    assert d["findings"] == [{"rule": "lost", "category": "lost_confirmed", "headline": "lost", "effect": "fail",
                              "count": 1, "text": "lost 1 message confirmed by the broker (e.g. p0-2)",
                              "proven": True, "owner": "client"}]
    clean = check(clean_run().finish().events()).to_dict()
    assert clean["headline"] == "" and clean["findings"] == []
    for key in ("stalls", "busy", "publisher_hangs", "slow_publishes", "consumption_windows_s"):
        assert key in clean["metrics"], key
