"""The matrix on the console and its exit code, without a broker: each cell says why (headline,
detection, recovery with "never"), the table fits an 80-column CI log with distinct labels, the
summary counts unknown apart, and ``matrix`` exits 1 on a failed cell, 3 on an unknown one
(0 with --no-fail-exit)."""

from __future__ import annotations

import itertools
import json
from pathlib import Path
from typing import Any

import pytest
from fakes import bootless_cli
from rich.console import Console
from typer.testing import CliRunner

from harness import cli
from harness import matrix as matrix_mod
from harness.cli import _print_table, abbreviate, app, cell_summary, summary_line
from harness.matrix import EXIT_FAIL, EXIT_UNKNOWN, MatrixResult
from harness.matrix_defaults import default_faults

runner = CliRunner()


def _doc(client: str, fault: str, verdict: str = "pass", headline: str = "", det: float | None = None,
         rec: float | None = None, never: bool = False, run_id: str = "r") -> dict[str, Any]:
    detail = {"recovery_never": {"consumer": "no delivery"}} if never else {}
    return {"run_id": run_id, "client": client, "fault": fault, "verdict": verdict, "headline": headline,
            "reasons": [] if verdict == "pass" else [headline], "counts": {"lost": 0, "duplicated": 0},
            "timing": {"detection_s": det, "recovery_s": rec, "detail": detail}}


def test_a_cell_says_why():
    assert cell_summary(_doc("c", "f", "fail", "gave up", det=0.43, never=True)) == ("fail", "gave up", "0.4s",
                                                                                     "never")
    assert cell_summary(_doc("c", "f", "pass", det=None, rec=12.3)) == ("pass", "-", "-", "12s")
    # no recovery and no work left: nothing to recover, not "never"
    assert cell_summary(_doc("c", "f", "unknown", "not exercised"))[1:] == ("not exercised", "-", "-")
    assert cell_summary({**_doc("c", "f", "unknown"), "headline": ""})[1] == "unknown"  # integrity only


def test_abbreviations_are_distinct_and_fit():
    names = ["latency:latency_ms=200,stream=both", "latency:latency_ms=300,stream=both", "short",
             "aioamqp-reconnect-with-a-long-name", "aioamqp-reconnect-with-a-long-nome", "x" * 40, "x" * 41]
    out = abbreviate(names, 14)
    assert len(set(out.values())) == len(names)
    assert all(len(v) <= 14 for v in out.values()) and out["short"] == "short"
    assert "200" in out[names[0]] and "300" in out[names[1]]  # where they differ stays visible


def _console(monkeypatch: pytest.MonkeyPatch, width: int) -> Console:
    con = Console(width=width, highlight=False, soft_wrap=True, force_terminal=False, color_system=None)
    monkeypatch.setattr(cli, "console", con)
    return con


def test_a_wide_matrix_prints_one_distinct_line_per_cell_within_80_columns(monkeypatch):
    con = _console(monkeypatch, 80)
    clients = ["aioamqp-reconnect", "aioamqp-reconnect-v2-long-name", "aioamqp-reconnect-v3-long-name", "chat-app"]
    faults = [*default_faults(), "latency:latency_ms=200,stream=both", "latency:latency_ms=300,stream=both"]
    verdicts = itertools.cycle([("pass", ""), ("fail", "blocked"), ("unknown", "not exercised")])
    docs = [_doc(c, f, *next(verdicts), det=1.25, never=True) for c in clients for f in faults]
    with con.capture() as cap:
        _print_table(docs, clients, faults)
    lines = [ln for ln in cap.get().splitlines() if ln.strip()]
    assert max(len(ln) for ln in lines) <= 80
    rows = lines[1:]
    assert len(rows) == len(clients) * len(faults)
    keys = [ln[:33] for ln in rows]  # client + fault labels
    assert len(set(keys)) == len(keys), "two rows read the same"
    assert any("FAIL    blocked" in r and "1.2s" in r and "never" in r for r in rows)
    assert any("UNKNOWN not exercised" in r for r in rows)


def test_a_small_matrix_is_a_grid(monkeypatch):
    con = _console(monkeypatch, 80)
    docs = [_doc("pika-best", "none", rec=0.5), _doc("pika-best", "connection-cut", "fail", "stranded", 0.1,
                                                     never=True)]
    with con.capture() as cap:
        _print_table(docs, ["pika-best"], ["none", "connection-cut"],
                     [{"client": "pika-best", "fault": "x", "reason": "no root"}])
    out = cap.get()
    assert "conn-cut" in out and "FAIL stranded" in out and "d 0.1s r never" in out
    assert max(len(ln) for ln in out.splitlines()) <= 80


def _result(verdicts: list[str], **kw: Any) -> MatrixResult:
    res = MatrixResult("m", Path("."), **kw)
    res.docs = [_doc("c", f"f{i}", v, run_id=str(i)) for i, v in enumerate(verdicts)]
    return res


@pytest.mark.parametrize(("verdicts", "code"), [
    (["pass", "pass"], 0), (["pass", "fail", "unknown"], EXIT_FAIL), (["pass", "unknown"], EXIT_UNKNOWN), ([], 0)])
def test_exit_code_fails_on_a_failed_cell_and_unknown_apart(verdicts, code):
    res = _result(verdicts)
    assert res.outcome_code() == code
    assert res.outcome_code(fail_exit=False) == 0


def test_an_interrupt_wins_over_verdicts():
    assert _result(["fail"], interrupted=True, signal="SIGTERM").outcome_code(fail_exit=False) == 143


def test_the_summary_counts_unknown_apart():
    res = _result(["pass", "fail", "unknown", "unknown"])
    res.unavailable = [{"client": "c", "fault": "kernel-loss", "reason": "not root"}]
    assert summary_line(res.tally(), 1) == "matrix: 4 cells: 1 pass, 1 fail, 2 unknown, 1 unavailable (exit 1)"


@pytest.mark.parametrize(("verdict", "flags", "code"), [
    ("fail", [], 1), ("fail", ["--no-fail-exit"], 0), ("unknown", [], 3), ("pass", [], 0)])
def test_matrix_command_exit_code(tmp_path, monkeypatch, verdict, flags, code):
    bootless_cli(monkeypatch)
    seen: list[Any] = []

    def fake_run_cell(env: Any, spec: Any, out: Path, command: Any = None) -> dict[str, Any]:
        seen.append(spec)
        v = verdict if spec.fault == "connection-cut" else "pass"
        return _doc(spec.client, spec.fault, v, "gave up" if v == "fail" else "", run_id=f"r{len(seen)}")

    monkeypatch.setattr(matrix_mod, "run_cell", fake_run_cell)
    res = runner.invoke(app, ["matrix", "--clients", "pika-recover", "--faults", "none,conn-cut,partition",
                              "--reports-dir", str(tmp_path), "--jobs", "1", *flags])
    assert res.exit_code == code, res.output
    assert [s.fault for s in seen] == ["none", "connection-cut", "partition"]  # a label stands for its column
    assert seen[2].params == {"heartbeat": 5}  # the partition column's calibration
    assert f"(exit {code})" in res.output.splitlines()[-1]
    [meta] = [json.loads(p.read_text()) for p in tmp_path.glob("matrix-*/matrix.json")]
    assert meta["labels"]["connection-cut"] == "conn-cut" and meta["tally"][verdict] >= 1


def test_chaos_shard_splits_a_collection_into_disjoint_covering_shards():
    from harness.pytest_plugin import parse_shard, shard_items

    items: list[Any] = list(range(11))
    shards = [shard_items(items, k, 4) for k in range(1, 5)]
    kept = [x for k, _ in shards for x in k]
    assert sorted(kept) == items and len(kept) == len(items)
    assert all(sorted(k + d) == items for k, d in shards)
    assert parse_shard("2/4") == (2, 4)
    for bad in ("0/4", "5/4", "x", "1/0", "2"):
        with pytest.raises(pytest.UsageError, match="K/N"):
            parse_shard(bad)
