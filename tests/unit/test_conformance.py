"""check-client's rules on crafted per-process histories (no broker): each rule fires on the
violation it names, with the file and line, and stays quiet on a conformant history."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from harness.clients import conformance as c

RUN = "20260101T000000-mine-none-abcd"


def ev(kind: str, t: float, proc: str = "publisher-0", role: str = "publisher", **fields: Any) -> dict[str, Any]:
    return {"t": t, "wall": 1_700_000_000 + t, "pid": 42, "proc": proc, "role": role, "kind": kind, **fields}


def publisher_events(count: int = 3, prefix: str = "p0-") -> list[dict[str, Any]]:
    evs = [ev("client.start", 1.0, library="x", version="1"), ev("conn.open", 1.1)]
    t = 1.2
    for i in range(count):
        mid = f"{prefix}{i}"
        evs += [ev("publish.invoke", t, id=mid), ev("publish.ok", t + 0.01, id=mid, confirmed=True)]
        t += 0.1
    return [*evs, ev("client.exit", t, reason="done", ok=True)]


def consumer_events(ids: list[str]) -> list[dict[str, Any]]:
    kw = {"proc": "consumer-0", "role": "consumer"}
    evs = [ev("client.start", 0.5, library="x", version="1", **kw), ev("conn.open", 0.6, **kw)]
    t = 1.3
    for mid in ids:
        evs += [ev("deliver", t, id=mid, redelivered=False, **kw), ev("ack", t + 0.001, id=mid, **kw)]
        t += 0.1
    return [*evs, ev("client.exit", t + 1, reason="sigterm", ok=True, **kw)]


def jsonl(evs: list[dict[str, Any]]) -> str:
    return "".join(json.dumps(e) + "\n" for e in evs)


def parsed(evs: list[dict[str, Any]]) -> list[c.Line]:
    return [(n, e) for n, e in enumerate(evs, 1)]


def rules(vs: list[c.Violation]) -> list[str]:
    return [v.rule for v in vs]


# ---- json / schema ------------------------------------------------------------------------------

def test_conformant_history_parses_without_violations() -> None:
    lines, bad = c.parse_history("publisher-0.jsonl", jsonl(publisher_events()), "publisher-0", "publisher")
    assert bad == [] and len(lines) == 9


def test_non_json_line_is_named_by_file_and_line() -> None:
    text = jsonl(publisher_events()[:2]) + "oops not json\n" + jsonl(publisher_events()[2:])
    lines, bad = c.parse_history("publisher-0.jsonl", text, "publisher-0", "publisher")
    assert rules(bad) == ["json"] and bad[0].where == "publisher-0.jsonl:3"
    assert "not JSON" in bad[0].problem and "JSON.stringify" in bad[0].fix
    assert len(lines) == 9


def test_schema_violation_names_the_missing_field() -> None:
    evs = publisher_events()
    del evs[3]["confirmed"]  # publish.ok without confirmed
    _, bad = c.parse_history("publisher-0.jsonl", jsonl(evs), "publisher-0", "publisher")
    assert rules(bad) == ["schema"] and bad[0].where == "publisher-0.jsonl:4"
    assert "missing field 'confirmed'" in bad[0].problem


def test_event_of_another_process_is_a_schema_violation() -> None:
    evs = publisher_events()
    evs[1]["proc"] = "publisher"
    _, bad = c.parse_history("publisher-0.jsonl", jsonl(evs), "publisher-0", "publisher")
    assert rules(bad) == ["schema"] and "expected 'publisher-0'/'publisher'" in bad[0].problem


def test_torn_last_line_is_reported() -> None:
    text = jsonl(publisher_events())[:-5]
    _, bad = c.parse_history("publisher-0.jsonl", text, "publisher-0", "publisher")
    assert "no newline" in bad[0].problem


# ---- bookends / clock / outcome ----------------------------------------------------------------

def test_bookends_ok_and_missing_exit() -> None:
    evs = publisher_events()
    assert c.check_bookends("p.jsonl", parsed(evs)) == []
    bad = c.check_bookends("p.jsonl", parsed(evs[:-1]))
    assert rules(bad) == ["bookends"] and "no client.exit" in bad[0].problem and bad[0].where == "p.jsonl:8"


def test_bookends_first_event_and_event_after_exit() -> None:
    evs = publisher_events()
    bad = c.check_bookends("p.jsonl", parsed([evs[1], *evs[2:], ev("conn.lost", 9.0, error="x")]))
    problems = " | ".join(v.problem for v in bad)
    assert "first event is 'conn.open'" in problems and "written after client.exit" in problems


def test_bookends_empty_history() -> None:
    assert "no valid events" in c.check_bookends("p.jsonl", [])[0].problem


def test_clock_going_back_is_named() -> None:
    evs = publisher_events()
    evs[4]["t"] = 0.5
    bad = c.check_clock("p.jsonl", parsed(evs))
    assert rules(bad) == ["clock"] and bad[0].where == "p.jsonl:5" and "CLOCK_MONOTONIC" in bad[0].fix


# ---- notices ----------------------------------------------------------------------------------

def test_well_formed_notices_pass() -> None:
    kw = {"proc": "consumer-0", "role": "consumer"}
    evs = [ev("client.start", 1.0, library="x", version="1", heartbeat_s=2, heartbeat_window_s=[9.0, 10.0], **kw),
           ev("conn.blocked", 1.1, reason="low on memory", **kw), ev("conn.blocked", 1.15, **kw),
           ev("conn.unblocked", 1.2, **kw), ev("consume.cancelled", 1.3, reason="basic.cancel", **kw),
           ev("channel.closed", 1.4, reason="PRECONDITION_FAILED - x", code=406, **kw),
           ev("channel.closed", 1.5, reason="closed", **kw),
           ev("client.exit", 2.0, reason="ConnectionError: gone", ok=False, error="ConnectionError: gone", **kw)]
    assert c.check_notices("c.jsonl", parsed(evs)) == []
    assert c.check_notices("p.jsonl", parsed([ev("client.start", 1.0, library="x", version="1",
                                                  heartbeat_s=60, heartbeat_window_s=[90.0, None])])) == []


@pytest.mark.parametrize(("kind", "fields", "problem"), [
    ("client.start", {"library": "x", "version": "1", "heartbeat_s": "60"}, "heartbeat_s '60'"),
    ("client.start", {"library": "x", "version": "1", "heartbeat_window_s": [10, 5]}, "heartbeat_window_s"),
    ("client.start", {"library": "x", "version": "1", "heartbeat_window_s": 9}, "heartbeat_window_s"),
    ("client.exit", {"reason": "boom", "ok": "no"}, "ok 'no'"),
    ("client.exit", {"reason": "boom", "ok": False}, "without an error text"),
    ("client.exit", {"reason": "done", "ok": False, "error": "x"}, "reason 'done' with ok: false"),
    ("conn.blocked", {"reason": 1}, "conn.blocked reason 1"),
    ("channel.closed", {"reason": "x", "code": "406"}, "code '406'"),
])
def test_malformed_notice_fields_are_named(kind: str, fields: dict[str, Any], problem: str) -> None:
    bad = c.check_notices("p.jsonl", parsed([ev("client.start", 1.0, library="x", version="1"),
                                              ev(kind, 1.1, **fields)]))
    assert rules(bad) == ["notices"] and bad[0].where.startswith("p.jsonl:") and problem in bad[0].problem, bad


def test_outcome_rules() -> None:
    assert c.check_outcomes("p.jsonl", parsed(publisher_events())) == []
    evs = publisher_events()
    del evs[3]  # p0-0 has no outcome
    bad = c.check_outcomes("p.jsonl", parsed(evs))
    assert [v.where for v in bad] == ["p.jsonl:3"] and "has no outcome by client.exit" in bad[0].problem


def test_outcome_twice_and_reinvoke_before_outcome() -> None:
    evs = publisher_events(1)
    dup = [*evs[:4], ev("publish.ok", 1.3, id="p0-0", confirmed=True), evs[4]]
    assert "no unanswered publish.invoke" in c.check_outcomes("p.jsonl", parsed(dup))[0].problem
    resend = [*evs[:3], ev("publish.invoke", 1.25, id="p0-0"), *evs[3:]]
    bad = c.check_outcomes("p.jsonl", parsed(resend))
    assert "invoked again before the outcome" in bad[0].problem and "publish.info" in bad[0].fix


def test_resend_after_info_is_fine() -> None:
    evs = publisher_events(1)
    resend = [*evs[:3], ev("publish.info", 1.22, id="p0-0", error="conn lost"),
              ev("publish.invoke", 1.23, id="p0-0"), *evs[3:]]
    assert c.check_outcomes("p.jsonl", parsed(resend)) == []


# ---- ids / delivered ----------------------------------------------------------------------------

def test_ids_follow_the_config() -> None:
    assert c.check_ids("p.jsonl", parsed(publisher_events(3)), "p0-", 3) == []
    bad = c.check_ids("p.jsonl", parsed(publisher_events(3, prefix="msg-")), "p0-", 3)
    problems = " | ".join(v.problem for v in bad)
    assert "not in the config's range, e.g. 'msg-0'" in problems and "3 of 3 ids never published" in problems


def test_unconfirmed_publishes_are_named() -> None:
    evs = publisher_events(2)
    evs[3]["confirmed"] = False
    bad = c.check_ids("p.jsonl", parsed(evs), "p0-", 2)
    assert rules(bad) == ["ids"] and "'p0-0'" in bad[0].problem


def test_delivered_rules() -> None:
    pub = parsed(publisher_events(3))
    assert c.check_delivered(pub, "consumer-0.jsonl", parsed(consumer_events(["p0-0", "p0-1", "p0-2"]))) == []
    bad = c.check_delivered(pub, "consumer-0.jsonl", parsed(consumer_events(["p0-0", '"p0-1"'])))
    problems = " | ".join(v.problem for v in bad)
    assert "2 of 3 published ids never delivered" in problems
    assert "were never published, e.g. '\"p0-1\"'" in problems


def test_deliver_without_ack() -> None:
    con = [e for e in consumer_events(["p0-0"]) if e["kind"] != "ack"]
    bad = c.check_delivered(parsed(publisher_events(1)), "consumer-0.jsonl", parsed(con))
    assert rules(bad) == ["delivered"] and "no ack event" in bad[0].problem


# ---- exit / sigterm -----------------------------------------------------------------------------

def proc_exit(target: str, code: int, expected: bool, note: str) -> dict[str, Any]:
    return ev("proc.exit", 9.0, proc="harness", role="harness", target=target, code=code, expected=expected, note=note)


def test_exits_ok() -> None:
    harness = [proc_exit("publisher-0", 0, True, "finished"),
               proc_exit("consumer-0", 0, True, "stopped by the harness (SIGTERM)")]
    assert c.check_exits(harness, "publisher-0", "consumer-0", 5, parsed(publisher_events()),
                         parsed(consumer_events([]))) == []


def test_consumer_that_ignores_sigterm() -> None:
    harness = [proc_exit("publisher-0", 0, True, "finished"),
               proc_exit("consumer-0", -9, False, "ignored SIGTERM for 5s: killed by the harness")]
    con = consumer_events([])[:-1]
    bad = c.check_exits(harness, "publisher-0", "consumer-0", 5, parsed(publisher_events()), parsed(con))
    assert rules(bad) == ["sigterm"] and "ignored SIGTERM" in bad[0].problem and "grace_s" in bad[0].fix


def test_publisher_that_never_finishes_and_consumer_that_leaves() -> None:
    harness = [proc_exit("publisher-0", -9, False, "still publishing after 90s: stopped by the harness"),
               proc_exit("consumer-0", 1, False, "exited on its own")]
    bad = c.check_exits(harness, "publisher-0", "consumer-0", 5, parsed(publisher_events()),
                        parsed(consumer_events([])))
    assert rules(bad) == ["exit", "exit"]
    assert "still publishing" in bad[0].problem and "exited on its own" in bad[1].problem


def test_wrong_exit_reasons() -> None:
    pub = publisher_events()
    pub[-1]["reason"] = "finished"
    con = consumer_events([])
    con[-1]["reason"] = "done"
    harness = [proc_exit("publisher-0", 0, True, "finished"), proc_exit("consumer-0", 0, True, "stopped")]
    bad = c.check_exits(harness, "publisher-0", "consumer-0", 5, parsed(pub), parsed(con))
    assert [(v.rule, v.problem.split(",")[0]) for v in bad] == [
        ("exit", "client.exit reason 'finished'"), ("sigterm", "client.exit reason 'done'")]


# ---- connection names / verdict -----------------------------------------------------------------

def conn(name: str | None) -> dict[str, Any]:
    return {"name": "127.0.0.1:1 -> 127.0.0.1:2", "vhost": f"rc-{RUN}",
            "client_properties": {"connection_name": name} if name else {}}


def test_connection_names() -> None:
    good = [conn(f"{RUN}/publisher-0"), conn(f"{RUN}/consumer-0"), conn(f"{RUN}/harness")]
    assert c.check_connection_names(good, RUN, ["consumer-0", "publisher-0"]) == []
    bad = c.check_connection_names([conn(None), conn("consumer"), conn(f"{RUN}/consumer-0")], RUN,
                                   ["consumer-0", "publisher-0"])
    assert [v.where for v in bad] == ["publisher-0"]
    assert "unrecognised: (no connection_name), consumer" in bad[0].problem and "connection_name" in bad[0].fix


def test_log_line_parsing() -> None:
    m = c.ConnectionWatcher.LOG_LINE.search(
        "2026-11-22 21:43:45.250235+00:00 [info] <0.915.0> connection <0.915.0> (127.0.0.1:33008 -> "
        "127.0.0.1:48672 - x/2): user 'guest' authenticated and granted access to vhost 'rc-1'")
    assert m is not None and (m["name"], m["vhost"]) == ("x/2", "rc-1")
    m = c.ConnectionWatcher.LOG_LINE.search(
        "connection <0.9.0> (127.0.0.1:33008 -> 127.0.0.1:48672): user 'guest' authenticated and granted access "
        "to vhost '/'")
    assert m is not None and m["name"] is None


def test_verdict_only_when_nothing_else_explains_it() -> None:
    doc = {"verdict": "fail", "reasons": ["3 messages lost"]}
    assert rules(c.check_verdict(doc, [])) == ["verdict"]
    assert c.check_verdict(doc, [c.Violation("ids", "p", "x", "y")]) == []
    assert c.check_verdict({"verdict": "pass", "reasons": []}, []) == []


# ---- a whole run directory ----------------------------------------------------------------------

def write_run(tmp: Path, pub: list[dict[str, Any]], con: list[dict[str, Any]], harness: list[dict[str, Any]]) -> Path:
    run = tmp / RUN
    for proc, role in (("publisher-0", "publisher"), ("consumer-0", "consumer")):
        (run / "config").mkdir(parents=True, exist_ok=True)
        (run / "config" / f"{proc}.json").write_text(json.dumps({"role": role, "id_prefix": "p0-", "count": 3}))
    (run / "history").mkdir()
    (run / "history" / "publisher-0.jsonl").write_text(jsonl(pub))
    (run / "history" / "consumer-0.jsonl").write_text(jsonl(con))
    (run / "history" / "harness.jsonl").write_text(jsonl(harness))
    return run


@pytest.fixture
def good_harness() -> list[dict[str, Any]]:
    return [proc_exit("publisher-0", 0, True, "finished"), proc_exit("consumer-0", 0, True, "stopped")]


def test_check_run_dir_conformant(tmp_path: Path, good_harness: list[dict[str, Any]]) -> None:
    run = write_run(tmp_path, publisher_events(3), consumer_events(["p0-0", "p0-1", "p0-2"]), good_harness)
    conns = [conn(f"{RUN}/publisher-0"), conn(f"{RUN}/consumer-0")]
    res = c.check_run_dir(run, {"run_id": RUN, "verdict": "pass", "reasons": []}, conns, 5)
    assert res == []
    report = c.Conformance({"run_id": RUN, "verdict": "pass"}, run, res).render()
    assert report.endswith("conformant: the client speaks the protocol") and "FAIL" not in report


def test_check_run_dir_lists_each_violation(tmp_path: Path, good_harness: list[dict[str, Any]]) -> None:
    pub = publisher_events(3)[:-1]  # no client.exit
    run = write_run(tmp_path, pub, consumer_events(["p0-0", "p0-1", "p0-2"]), good_harness)
    (run / "logs").mkdir()
    (run / "logs" / "publisher-0.log").write_text("Traceback...\nValueError: boom\n")
    res = c.check_run_dir(run, {"run_id": RUN, "verdict": "unknown", "reasons": ["x"]}, [], 5)
    assert sorted(set(rules(res))) == ["bookends", "connection"]
    assert "ValueError: boom" in res[0].problem
    text = c.Conformance({"run_id": RUN, "verdict": "unknown"}, run, res).render()
    assert "FAIL bookends" in text and "not conformant: 3 violation(s)" in text
