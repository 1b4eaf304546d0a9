"""The report reads what the real checker writes: a history through ``check()`` into the page.

If the checker renames its timeline key or reshapes it, this test fails here rather than the
report quietly showing "no throughput timeline" for every run.
"""

from __future__ import annotations

from report_page import embedded

from harness.checker import check
from harness.checker.builder import HistoryBuilder
from harness.report import render_html


def _history() -> HistoryBuilder:
    h = HistoryBuilder()
    h.phase("warmup")
    h.start("consumer-0")
    h.start("publisher-0")
    for n in range(20):
        h.at(0.5 + n * 0.05).publish("publisher-0", f"p0-{n}")
        h.consume("consumer-0", f"p0-{n}")
    h.at(1.6).fault_start("connection-cut")
    h.at(1.65).conn("publisher-0", "lost")
    h.at(1.66).conn("consumer-0", "lost")
    h.at(2.6).fault_stop("connection-cut")
    h.at(2.9).conn("consumer-0", "open")
    h.at(3.0).conn("publisher-0", "open")
    for n in range(20, 30):
        h.at(3.1 + (n - 20) * 0.05).publish("publisher-0", f"p0-{n}")
        h.consume("consumer-0", f"p0-{n}")
    return h.finish()


def test_a_checked_history_renders_its_timeline_and_verdict() -> None:
    result = check(_history().events()).to_dict()
    doc = {"run_id": "contract", "client": "pika-recover", "fault": "connection-cut", "seed": 1,
           **{k: result[k] for k in ("verdict", "reasons", "counts", "timing", "metrics", "notes", "examples")}}
    html = render_html([doc])
    data = embedded(html)
    tl = data["timelines"]["run-contract"]
    assert sum(tl["published"]) == 30 and sum(tl["delivered"]) == 30
    assert [f["name"] for f in tl["faults"]] == ["connection-cut"]
    assert {(e["proc"], e["kind"]) for e in tl["conn"]} >= {("publisher-0", "conn.lost"), ("consumer-0", "conn.open")}
    assert f'data-verdict="{result["verdict"]}"' in html
    if result["timing"]["recovery_s"] is not None:
        assert "rec <b>never</b>" not in html


def test_unconfirmed_sends_are_never_drawn_as_confirmed() -> None:
    """pika-naive publishes without confirms: its oks say confirmed=false. The chart's "confirmed"
    line must stay at 0 and the sends show as "sent, unconfirmed"."""
    h = HistoryBuilder()
    h.phase("warmup")
    h.start("consumer-0")
    h.start("publisher-0")
    for n in range(20):
        h.at(0.5 + n * 0.05).publish("publisher-0", f"p0-{n}", confirmed=n < 5)
        h.consume("consumer-0", f"p0-{n}")
    result = check(h.finish().events()).to_dict()
    raw = result["metrics"]["throughput"]
    assert sum(raw["publish_ok"]) == 20 and sum(raw["publish_confirmed"]) == 5
    doc = {"run_id": "naive", "client": "pika-naive", "fault": "none", "seed": 1,
           **{k: result[k] for k in ("verdict", "reasons", "counts", "timing", "metrics", "notes", "examples")}}
    tl = embedded(render_html([doc]))["timelines"]["run-naive"]
    assert sum(tl["confirmed"]) == 5 and sum(tl["unconfirmed"]) == 15
