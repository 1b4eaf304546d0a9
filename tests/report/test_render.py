"""The rendered page: matrix, anchors, embedded data, escaping, re-run commands, the store."""

from __future__ import annotations

import base64
import hashlib
import html as html_lib
import json
import re
from pathlib import Path

import pytest
from report_fakes import XSS, fake_run, hostile_run, sample_matrix
from report_page import Page, embedded

from harness.errors import ChaosError
from harness.report import render_dir, render_html, render_report


def test_matrix_has_one_cell_per_client_and_fault_linking_to_its_runs(tmp_path: Path) -> None:
    runs = sample_matrix()
    out = render_report(runs, tmp_path / "r.html", title="demo")
    html = out.read_text()
    page = Page(html)
    assert len(page.cells) == 2 * 3
    verdicts = [c["data-verdict"] for c in page.cells]
    assert verdicts == ["pass", "fail", "fail", "pass", "pass", "unknown"]
    # every in-page link points at an element that exists, and every run has its section
    anchors = {h[1:] for h in page.hrefs if h.startswith("#")}
    assert anchors <= set(page.ids)
    run_sections = [i for i in page.ids if i.startswith("run-")]
    assert len(run_sections) == len(runs) == len(set(run_sections))
    assert {f"run-{r['run_id']}" for r in runs} == set(run_sections)
    assert {f"run-{r['run_id']}" for r in runs} <= anchors


def test_repeated_cell_shows_all_runs_and_worst_colour(tmp_path: Path) -> None:
    html = render_html(sample_matrix())
    cell = re.search(r'<td class="cell v-unknown" data-verdict="unknown" data-runs="3"[^>]*>(.*?)</td>', html, re.S)
    assert cell, "the repeated cell is not there"
    body = cell.group(1)
    assert "2/3 pass · 1 unknown" in body
    assert len(re.findall(r'href="#run-', body)) == 3
    assert "run 2 of 3" in html


def test_cell_shows_verdict_as_text_lost_duplicated_and_recovery() -> None:
    html = render_html([fake_run("pika-naive", "broker-restart", verdict="fail", lost=37, duplicated=4,
                                 recovery_s=None)])
    cell = re.search(r'<td class="cell v-fail"[^>]*>(.*?)</td>', html, re.S)
    assert cell
    text = re.sub(r"<[^>]+>", "", cell.group(1))
    assert "fail" in text and "lost 37" in text and "dup 4" in text and "rec never" in text


def test_embedded_json_parses_back_to_the_runs() -> None:
    runs = [*sample_matrix(), hostile_run()]
    data = embedded(render_html(runs, meta={"command": "matrix"}))
    assert data["schema"] == 1
    assert [r["results"] for r in data["runs"]] == runs
    assert data["meta"] == {"command": "matrix"}
    anchor = data["runs"][1]["anchor"]
    tl = data["timelines"][anchor]
    assert len(tl["t"]) == len(tl["published"]) == len(tl["confirmed"]) == len(tl["delivered"]) > 0
    assert tl["faults"] == [{"name": "broker-restart", "start": 2.0, "stop": 6.0}]
    assert {e["kind"] for e in tl["conn"]} == {"conn.lost", "conn.open"}


def test_script_payloads_show_as_text_and_never_as_markup() -> None:
    html = render_html([fake_run(), hostile_run()])
    assert "<script>alert" not in html
    assert "<img" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    page = Page(html)
    # exactly our three script elements: the data block, the chart library, our script
    assert len(page.script_tags) == 3
    assert page.script_tags[0] == {"type": "application/json", "id": "rc-data"}
    # the payload is visible text in the places a user reads it
    text = "".join(page.text)
    for where in (f"evil{XSS}", f"lost message {XSS}", f"p0-{XSS}", f"3.10.8{XSS}", f"note {XSS}",
                  f"queue rabbit-chaos.q{XSS}", f"publisher{XSS}",
                  # the newer fields: headline, findings, @version label, library version, hold reason,
                  # settle, recovery's why, detection by process
                  f"lost{XSS}", f"finding {XSS}", f"fail{XSS}", f"evil{XSS}@9.{XSS}", f"lib{XSS} 1.0{XSS}",
                  f"held {XSS}", f"cap{XSS}", f"never {XSS}", f"err {XSS}"):
        assert where in text, where
    # and the JSON block holds it escaped, yet parses back to the original strings
    block = re.search(r'id="rc-data">(.*?)</script>', html, re.S)
    assert block and "\\u003cscript\\u003e" in block.group(1) and "<" not in block.group(1)
    assert embedded(html)["runs"][1]["results"]["reasons"][1] == "</script><script>alert(2)</script>"


def test_title_and_meta_are_escaped() -> None:
    html = render_html([fake_run()], title=f"t{XSS}", meta={f"k{XSS}": f"v{XSS}"})
    assert "<script>alert" not in html
    assert html.count("&lt;script&gt;alert(1)&lt;/script&gt;") >= 3


def test_csp_allows_exactly_the_inline_scripts() -> None:
    html = render_html([fake_run()])
    csp = re.search(r'http-equiv="Content-Security-Policy" content="([^"]+)"', html)
    assert csp
    policy = html_lib.unescape(csp.group(1))
    assert "default-src 'none'" in policy and "connect-src" not in policy
    code = re.findall(r"<script>(.*?)</script>", html, re.S)
    assert len(code) == 2
    for c in code:
        digest = base64.b64encode(hashlib.sha256(c.encode()).digest()).decode()
        assert f"'sha256-{digest}'" in policy


def test_no_network_references() -> None:
    html = render_html(sample_matrix())
    assert not re.search(r'(src|href)="(https?:)?//', html)
    assert "@import" not in html and "url(http" not in html


def test_run_section_shows_evidence() -> None:
    doc = fake_run("pika-recover", "connection-cut", verdict="fail", lost=3, seed=1234,
                   notes=["2 duplicates (broker redelivery)"])
    html = render_html([doc])
    text = "".join(Page(html).text)
    assert "Why fail" in text and "3 messages lost" in text
    assert "2 duplicates (broker redelivery)" in text
    assert "3.10.8" in text and "25.2.3" in text and "1.3.2" in text
    assert ("rabbit-chaos run --client pika-recover --fault connection-cut --count 1000 --rate 100 "
            "--warmup 2 --fault-for 4 --seed 1234") in text
    assert "detection (fault took effect → the client noticed)" in text and "50 ms" in text and "1.25 s" in text


def test_rerun_command_quotes_names_and_admits_what_it_cannot_repeat() -> None:
    doc = fake_run("my client", "latency:ms=500,jitter=50")
    doc["spec"] = {"rate": 250.5, "params": {"prefetch": 10}}
    html = render_html([doc])
    text = "".join(Page(html).text)
    assert ("rabbit-chaos run --client 'my client' --fault latency:ms=500,jitter=50 --rate 250.5 --seed 42") in text
    assert "does not record --count, --warmup, --fault-for" in text
    assert "client parameters" in text


def test_runs_with_missing_or_odd_fields_still_render() -> None:
    odd = [
        {},
        {"run_id": "x", "verdict": "maybe", "counts": {"lost": "many"}, "timing": {"recovery_s": "soon"},
         "metrics": {"throughput": {"bucket_s": 0}}, "reasons": "one string"},
        {"run_id": "y", "client": "c", "fault": "f", "verdict": "pass",
         "metrics": {"throughput": {"bucket_s": 0.1, "publish_invoke": [1, None, "x"], "deliver": [1, 2, 3, 4],
                                    "faults": [["f", 0.1], "junk"], "conn_events": [[0.2, "p", "conn.lost"], [None]]}}},
        {"run_id": "z", "verdict": "fail", "timing": {"recovery_s": float("nan")}, "metrics": None},
    ]
    html = render_html(odd)  # type: ignore[arg-type]
    page = Page(html)
    text = "".join(page.text)
    assert "no throughput timeline was recorded for this run" in text
    assert "the throughput timeline has no valid bucket size" in text
    assert "the report read verdict 'maybe', which is not pass/fail/unknown" in text
    assert "one string" in text
    data = embedded(html)
    assert data["runs"][3]["results"]["timing"]["recovery_s"] is None  # NaN is not JSON
    tl = data["timelines"]["run-y"]
    assert tl["published"] == [1, 0, 0, 0] and tl["delivered"] == [1, 2, 3, 4]
    assert tl["faults"] == [{"name": "f", "start": 0.1, "stop": None}]
    assert len(tl["conn"]) == 1
    # an unrecognised verdict is never shown as pass
    assert [c["data-verdict"] for c in page.cells].count("pass") == 1


def test_empty_run_list_renders_a_page(tmp_path: Path) -> None:
    html = render_report([], tmp_path / "empty.html").read_text()
    assert "No runs to show." in html


def _store(tmp_path: Path, runs: list[dict]) -> Path:
    reports = tmp_path / "reports"
    for r in runs:
        d = reports / r["run_id"]
        (d / "logs").mkdir(parents=True)
        (d / "results.json").write_text(json.dumps(r))
        (d / "history.jsonl").write_text("")
    (reports / "latest").symlink_to(runs[-1]["run_id"])
    return reports


def test_render_dir_collects_every_run_once_and_lists_unreadable_ones(tmp_path: Path) -> None:
    runs = sample_matrix()
    reports = _store(tmp_path, runs)
    (reports / "broken-run").mkdir()
    (reports / "broken-run" / "results.json").write_text("{not json")
    out = render_dir(reports)
    assert out == reports / "report.html"
    html = out.read_text()
    data = embedded(html)
    assert sorted(r["results"]["run_id"] for r in data["runs"]) == sorted(r["run_id"] for r in runs)
    assert "broken-run/results.json" in html
    # each run links to its evidence directory, relative to the report
    assert f'href="{runs[0]["run_id"]}/"' in html


def test_render_dir_selects_runs_and_writes_elsewhere(tmp_path: Path) -> None:
    runs = sample_matrix()
    reports = _store(tmp_path, runs)
    pick = [runs[0]["run_id"], runs[3]["run_id"]]
    out = render_dir(reports, tmp_path / "out" / "sel.html", run_ids=pick)
    data = embedded(out.read_text())
    assert [r["results"]["run_id"] for r in data["runs"]] == pick
    assert f'href="../reports/{runs[0]["run_id"]}/"' in out.read_text()
    with pytest.raises(ChaosError, match=r"no results\.json for nope"):
        render_dir(reports, run_ids=["nope"])


def test_render_dir_refuses_an_empty_or_missing_store(tmp_path: Path) -> None:
    with pytest.raises(ChaosError, match="not a directory"):
        render_dir(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ChaosError, match="no runs under"):
        render_dir(tmp_path / "empty")
