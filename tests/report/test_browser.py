"""The report in a real browser: headless Chromium opens it from file:// with networking off.

Checks what only a browser can: the inlined chart library and our script run under the page's
Content-Security-Policy without a single console message, every timeline chart is drawn once its
run is opened (and none before: runs load closed), a link to a run opens it, the filters hide
what they should, and the script payloads stay text after the scripts ran. Skipped when no Chromium is installed
(Debian: ``apt-get install -y chromium``).
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
from report_fakes import big_matrix, hostile_run, sample_matrix

from harness.report import render_report

BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-extensions",
         "--disable-default-apps", "--mute-audio", "--enable-logging=stderr", "--v=0")


def _browser() -> str:
    for name in BROWSERS:
        path = shutil.which(name)
        if path:
            return path
    pytest.skip("no headless Chromium on PATH (Debian: apt-get install -y chromium); the browser check did not run")


def _run(browser: str, profile: Path, *args: str) -> subprocess.CompletedProcess[str]:
    cmd = [browser, *FLAGS, f"--user-data-dir={profile}", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False)


@pytest.fixture(scope="module")
def page(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    browser = _browser()
    tmp = tmp_path_factory.mktemp("browser")
    runs = [*sample_matrix(), hostile_run()]
    report = render_report(runs, tmp / "report.html", title="browser check", meta={"seed": "1"})
    uri = report.as_uri()
    dom = _run(browser, tmp / "profile", "--dump-dom", uri + "?open=all")
    closed = _run(browser, tmp / "profile", "--dump-dom", uri)
    target = next(r for r in runs if r["verdict"] == "unknown")["run_id"]
    linked = _run(browser, tmp / "profile", "--dump-dom", f"{uri}#run-{target}")
    filtered = _run(browser, tmp / "profile", "--dump-dom", uri + "?verdict=fail&fault=broker-restart")
    shot = _run(browser, tmp / "profile", "--window-size=1280,2400", f"--screenshot={tmp / 'report.png'}", uri)
    return {"runs": runs, "dom": dom, "closed": closed, "linked": linked, "target": f"run-{target}",
            "filtered": filtered, "shot": shot, "png": tmp / "report.png"}


@pytest.mark.parametrize("view", ["dom", "closed", "linked", "filtered"])
def test_page_loads_without_console_messages(page: dict, view: str) -> None:
    dom = page[view]
    assert dom.returncode == 0, dom.stderr[-2000:]
    console = [line for line in dom.stderr.splitlines() if ":CONSOLE" in line or "Uncaught" in line]
    assert console == [], "\n".join(console)
    body = re.search(r"<body[^>]*>", dom.stdout)
    assert body and "data-js-error" not in body.group(0), body
    assert "data-error=" not in dom.stdout


def _details(html: str) -> dict[str, str]:
    """Each run section's opening tag, by id."""
    return {m.group(1): m.group(0) for m in re.finditer(r'<details class="run[^"]*" id="([^"]+)"[^>]*>', html)}


def test_runs_load_closed_and_draw_nothing_until_opened(page: dict) -> None:
    html = page["closed"].stdout
    runs = _details(html)
    assert len(runs) == len(page["runs"])
    assert not any(" open" in tag for tag in runs.values())
    assert 'data-charts-rendered="0"' in html and "<canvas" not in html
    # the filter bar is shown once the script runs (hidden without it)
    assert re.search(r'<form class="filters" id="filters">', html)
    assert f'{len(page["runs"])} of {len(page["runs"])} runs shown' in html


def test_a_link_to_a_run_opens_it_and_draws_its_chart(page: dict) -> None:
    html = page["linked"].stdout
    runs = _details(html)
    assert " open" in runs[page["target"]]
    assert sum(" open" in tag for tag in runs.values()) == 1
    assert 'data-charts-rendered="1"' in html


def test_filters_from_the_query_hide_other_runs_columns_and_rows(page: dict) -> None:
    html = page["filtered"].stdout
    runs = _details(html)
    shown = [rid for rid, tag in runs.items() if " hidden" not in tag]
    want = [r for r in page["runs"] if r["verdict"] == "fail" and r["fault"] == "broker-restart"]
    assert sorted(shown) == sorted(f"run-{r['run_id']}" for r in want) and want
    assert f"{len(want)} of {len(page['runs'])} runs shown" in html
    # the other faults' columns are hidden, the broker-restart column is not
    assert re.search(r'<th scope="col" data-fault="connection-cut"[^>]*hidden', html)
    assert not re.search(r'<th scope="col" data-fault="broker-restart"[^>]*hidden', html)
    # pika-recover passed broker-restart: its row has no failing cell and is hidden
    assert re.search(r'<tr class="mrow"[^>]*data-client="pika-recover"[^>]*hidden', html)
    assert not re.search(r'<tr class="mrow"[^>]*data-client="pika-naive"[^>]*hidden', html)


def test_every_timeline_chart_is_drawn(page: dict) -> None:
    html = page["dom"].stdout
    n = len(page["runs"])
    assert f'data-charts-rendered="{n}"' in html
    assert html.count('data-rendered="1"') == n
    assert len(re.findall(r"<canvas\b", html)) >= n
    assert 'class="uplot' in html


def test_matrix_and_comparison_charts_are_in_the_dom(page: dict) -> None:
    html = page["dom"].stdout
    assert '<table class="matrix">' in html
    assert html.count('class="cell ') == 3 * 4  # 3 clients (one hostile) × 4 faults
    assert 'id="chart-recovery"' in html and 'id="chart-loss"' in html


def test_script_payload_is_text_after_scripts_ran(page: dict) -> None:
    html = page["dom"].stdout
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    # the DOM may hold <script> elements only for our own three blocks
    assert len(re.findall(r"<script\b", html)) == 3
    assert "<script>alert" not in html and "<img" not in html


def test_screenshot_is_written(page: dict) -> None:
    shot, png = page["shot"], page["png"]
    assert shot.returncode == 0, shot.stderr[-2000:]
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert png.stat().st_size > 20_000  # a blank page is a few KB


def test_the_130_cell_page_filters_by_library_version(tmp_path: Path) -> None:
    browser = _browser()
    report = render_report(big_matrix(), tmp_path / "big.html", title="130 cells")
    dom = _run(browser, tmp_path / "profile", "--dump-dom", report.as_uri() + "?version=aio-pika+9.4.3")
    assert dom.returncode == 0, dom.stderr[-2000:]
    html = dom.stdout
    body = re.search(r"<body[^>]*>", html)
    assert body and "data-js-error" not in body.group(0)
    assert 'data-runs-shown="10"' in body.group(0) and "10 of 130 runs shown" in html
    shown = [tag for tag in _details(html).values() if " hidden" not in tag]
    assert len(shown) == 10 and all('data-version="aio-pika 9.4.3"' in t for t in shown)
    # the matrix keeps one row (aio-pika-robust@9.4.3) under its library's header
    rows = re.findall(r'<tr class="(mrow|libgroup)"[^>]*>', html)
    visible = re.findall(r'<tr class="(?:mrow|libgroup)"(?![^>]*hidden)[^>]*>', html)
    assert len(rows) == 13 + 5 and len(visible) == 2
    assert 'data-charts-rendered="0"' in html


def test_the_queue_type_filter_keeps_one_setups_runs_and_rows(tmp_path: Path) -> None:
    from test_cluster_report import cluster_run

    browser = _browser()
    runs = [cluster_run("quorum", index=0), cluster_run("classic", index=1), cluster_run("quorum", index=2,
                                                                                         client="pika-naive")]
    report = render_report(runs, tmp_path / "q.html", title="queue types")
    dom = _run(browser, tmp_path / "profile", "--dump-dom", report.as_uri() + "?queue=quorum")
    assert dom.returncode == 0, dom.stderr[-2000:]
    html = dom.stdout
    body = re.search(r"<body[^>]*>", html)
    assert body and "data-js-error" not in body.group(0) and 'data-runs-shown="2"' in body.group(0)
    shown = [tag for tag in _details(html).values() if " hidden" not in tag]
    assert len(shown) == 2 and all('data-queue="quorum"' in t for t in shown)
    visible = re.findall(r'<tr class="mrow"(?![^>]*hidden)[^>]*>', html)
    assert len(visible) == 2 and all('data-queue="quorum"' in t for t in visible)
    # the node strip is drawn for every run (server-side, no script needed)
    assert html.count('class="small nodestrip"') == 3
