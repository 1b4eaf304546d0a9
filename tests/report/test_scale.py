"""The report at the size of a full matrix: 13 clients × 10 faults, several versions of one library.

What must hold at 130 cells: every cell says why (its headline) with detection beside recovery,
rows grouped by library then strategy then version, the filters offer every client, library
version and fault, the run sections are closed until asked for, hostile strings stay text, and
the page stays a size a browser opens at once.
"""

from __future__ import annotations

import re

import pytest
from report_fakes import BIG_FAULTS, BIG_ROWS, XSS, big_matrix, hostile_run
from report_page import Page, embedded

from harness.report import fmt, matrix, render_html, view


@pytest.fixture(scope="module")
def big() -> tuple[list[dict], str]:
    runs = big_matrix()
    return runs, render_html(runs, title="130 cells")


def _row_keys(html: str) -> list[str]:
    return re.findall(r'<tr class="mrow"[^>]*>\s*<th scope="row">([^<]+)', html)


def test_every_cell_is_there_and_links_to_its_run(big: tuple[list[dict], str]) -> None:
    runs, html = big
    page = Page(html)
    assert len(page.cells) == 130
    assert all(c["data-runs"] == "1" for c in page.cells)
    anchors = {h[1:] for h in page.hrefs if h.startswith("#run-")}
    assert anchors == {f"run-{fmt.slug(r['run_id'])}" for r in runs} and anchors <= set(page.ids)


def test_rows_are_grouped_by_library_then_strategy_then_version(big: tuple[list[dict], str]) -> None:
    _, html = big
    groups = re.findall(r'<tr class="libgroup"[^>]*><th scope="rowgroup"[^>]*>([^<]+)</th>', html)
    assert groups == ["pika", "kombu", "aio-pika", "aioamqp", "custom"]
    rows = _row_keys(html)
    assert len(rows) == len(BIG_ROWS)
    # aio-pika-robust's versions side by side in version order (9.4.3 < 9.5.5 < 10.2.1), then the next strategy
    i = rows.index("aio-pika-robust@9.4.3")
    assert rows[i:i + 4] == ["aio-pika-robust@9.4.3", "aio-pika-robust@9.5.5", "aio-pika-robust@10.2.1",
                             "aio-pika-naive"]
    # a row without @version still names its library version
    assert re.search(r'<th scope="row">pika-naive<span class="ver">pika 1\.3\.2</span>', html)


def test_a_label_run_at_two_versions_gets_a_row_per_version() -> None:
    a = big_matrix()[0]
    b = {**a, "run_id": "other", "versions": {**a["versions"], "client_library_version": "1.4.4"}}
    views = view.build_all([a, b])
    grid = matrix.build(views)
    assert grid.clients == ["pika-naive@1.3.2", "pika-naive@1.4.4"]
    assert [v.repeat_total for v in views] == [1, 1]  # versions are not repeats of each other
    assert matrix.version_key("9.4.3") < matrix.version_key("10.2.1") < matrix.version_key("—")


def test_cells_show_the_headline_and_detection_beside_recovery(big: tuple[list[dict], str]) -> None:
    _, html = big
    cells = re.findall(r'<td class="cell [^"]*"[^>]*>(.*?)</td>', html, re.S)
    text = [re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", c)) for c in cells]
    for word in ("lost", "stranded", "gave up", "blocked", "consumer lost", "not exercised", "no overlap",
                 "interrupted"):
        assert any(word in t for t in text), word
    faulted = [t for t in text if "pass" not in t or "det" in t]
    assert all(re.search(r"det \S+ ms · rec (\d\.\d\d s|never)", t) for t in faulted if "det" in t)
    # "never" carries its why as a tooltip
    assert 'title="consumer: no delivery on a live connection after the heal">never</b>' in html
    # unknown cells are their own class (striped in the CSS), never the fail one
    unknown = [c for c in Page(html).cells if c["data-verdict"] == "unknown"]
    assert unknown and all("v-unknown" in c["class"] and "v-fail" not in c["class"] for c in unknown)


def test_filters_offer_every_verdict_client_version_and_fault(big: tuple[list[dict], str]) -> None:
    _, html = big
    form = re.search(r'<form class="filters" id="filters" hidden>(.*?)</form>', html, re.S)
    assert form, "the filter bar (hidden until the script shows it)"

    def options(name: str) -> list[str]:
        sel = re.search(rf'<select data-filter="{name}">(.*?)</select>', form.group(1), re.S)
        assert sel, name
        return re.findall(r'<option value="([^"]*)"', sel.group(1))[1:]  # after "all"

    assert options("verdict") == ["fail", "unknown", "pass"]
    assert set(options("client")) == {label.split("@")[0] for label, _, _ in BIG_ROWS}
    assert {"aio-pika 9.4.3", "aio-pika 9.5.5", "aio-pika 10.2.1", "pika 1.3.2", "custom —"} <= set(options("version"))
    assert options("fault") == list(BIG_FAULTS)
    # what the script filters on: every run section and row carries the same keys
    runs = re.findall(r'<details class="run v-(\w+)" id="[^"]+" data-verdict="(\w+)" data-client="[^"]+" '
                      r'data-version="[^"]+" data-fault="[^"]+" data-queue="[^"]+">', html)
    assert len(runs) == 130 and all(a == b for a, b in runs)


def test_run_sections_are_closed_and_in_matrix_order(big: tuple[list[dict], str]) -> None:
    _, html = big
    tags = re.findall(r"<details class=\"run[^>]*>", html)
    assert len(tags) == 130 and not any(re.search(r"\sopen\b", t) for t in tags)
    order = re.findall(r'<details class="run[^"]*" id="run-20260102T\d+-([^"]+)"', html)
    assert order[0].startswith("pika-naive-none") and order[len(BIG_FAULTS)].startswith("pika-recover-none")


def test_the_page_stays_small(big: tuple[list[dict], str]) -> None:
    runs, html = big
    assert len(embedded(html)["runs"]) == 130
    # about 12 KB a run (most of it the embedded results.json and its timeline), the chart library once
    assert len(html.encode()) < 2_500_000, len(html.encode())
    markup = re.sub(r"<script\b.*?</script>", "", html, flags=re.S)
    assert len(markup.encode()) / len(runs) < 9_000, len(markup.encode()) / len(runs)


def test_hostile_strings_stay_text_at_scale() -> None:
    html = render_html([*big_matrix(), hostile_run()])
    assert "<script>alert" not in html and "<img" not in html
    text = "".join(Page(html).text)
    for where in (f"lost{XSS}", f"finding {XSS}", f"evil{XSS}@9.{XSS}", f"held {XSS}"):
        assert where in text, where
    assert html.count('data-client="evil&lt;script&gt;alert(1)&lt;/script&gt;') >= 2  # its row and its run
