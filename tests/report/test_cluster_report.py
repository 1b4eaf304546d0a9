"""Cluster runs in the report: queue type and node count in the run header, matrix rows split by
broker setup when runs differ (and a queue type filter), findings' owner, a lost bar that never
carries the broker's or the queue type's loss, and each client's node over time -- all escaped."""

from __future__ import annotations

import re
from typing import Any

from report_fakes import XSS, fake_run
from report_page import Page, embedded

from harness.checker import CheckOptions, check
from harness.checker.builder import clean_run
from harness.report import compare, matrix, render_html, view

N1, N2 = "rabbit-1@localhost", "rabbit-2@localhost"


def cluster_run(queue_type: str = "quorum", nodes: int = 3, *, node: str = N2, index: int = 0,
                client: str = "pika-best", lost_by_broker: int = 0) -> dict[str, Any]:
    doc = fake_run(client, "node-kill", index=index, seed=7 + index, lost=lost_by_broker,
                   verdict="fail" if lost_by_broker else "pass")
    doc["spec"]["queue_type"] = queue_type
    doc["spec"]["nodes"] = nodes
    doc["counts"]["lost_by_broker"] = lost_by_broker
    if lost_by_broker:
        doc["headline"] = "broker lost"
        doc["findings"] = [{"rule": "lost", "category": "lost_by_broker", "headline": "broker lost", "effect": "fail",
                            "count": lost_by_broker, "text": "the broker lost 2 confirmed messages", "proven": True,
                            "owner": "broker"}]
    doc["metrics"].update({
        "queue_type": queue_type, "nodes": nodes, "node_names": [N1, node],
        "nodes_timeline": {"consumer-0": [{"node": node, "start_s": 0.5, "end_s": 2.1},
                                          {"node": None, "start_s": 2.1, "end_s": 2.9},
                                          {"node": N1, "start_s": 2.9, "end_s": 12.0}],
                           "publisher-0": [{"node": N1, "start_s": 0.6, "end_s": 12.0}]},
        "node_faults": [{"fault": "node-kill", "nodes": [node], "start_s": 2.0, "end_s": 6.0, "down": True}],
    })
    return doc


def test_run_header_shows_queue_type_and_nodes_and_the_rerun_command_repeats_them() -> None:
    v = view.build(cluster_run(), "run-x")
    assert (v.queue_type, v.nodes, v.setup) == ("quorum", "3", "quorum queue · 3 nodes")
    assert "--queue-type quorum --nodes 3" in v.command
    html = render_html([cluster_run()])
    assert '<b class="qtype">quorum</b>' in html and '<b class="nnodes">3</b>' in html
    # a run from before queue types says so rather than guessing
    old = view.build(fake_run(), "run-y")
    assert (old.queue_type, old.nodes, old.setup) == ("—", "—", "")
    assert "not recorded" in render_html([fake_run()])


def test_rows_split_by_setup_only_when_runs_differ_and_the_filter_offers_queue_types() -> None:
    same = view.build_all([cluster_run(index=0), cluster_run(index=1)])
    assert {v.row for v in same} == {"pika-best"}  # repeats of one cell
    mixed = view.build_all([cluster_run("quorum", index=0), cluster_run("classic", index=1)])
    assert [v.row for v in mixed] == ["pika-best · quorum queue · 3 nodes", "pika-best · classic queue · 3 nodes"]
    grid = matrix.build(mixed)
    assert len(grid.clients) == 2 and grid.queue_types() == ["classic", "quorum"]
    html = render_html([cluster_run("quorum", index=0), cluster_run("classic", index=1)])
    assert '<select data-filter="queue">' in html
    assert re.findall(r'<tr class="mrow"[^>]* data-queue="(\w+)">', html) == ["classic", "quorum"]
    assert '<select data-filter="queue">' not in render_html([cluster_run(index=0), cluster_run(index=1)])


def test_findings_show_whose_they_are_and_the_lost_bar_leaves_the_brokers_out() -> None:
    runs = [cluster_run(lost_by_broker=2, index=0), cluster_run(client="pika-naive", index=1)]
    v = view.build(runs[0], "a")
    assert v.findings[0]["owner"] == "broker" and v.lost_owed == 2 and v.lost_by_client == 0
    html = render_html(runs)
    assert '<td class="owner">broker</td>' in html and "(2 not the client's)" in html
    chart = compare.loss_chart(matrix.build(view.build_all(runs)))
    bars = {(g.label, b.label): b.value for g in chart.groups for b in g.bars}
    assert bars[("pika-best", "lost")] == 0 and bars[("pika-best", compare.OWED_LABEL)] == 2
    # no owed loss anywhere: no extra bar
    plain = compare.loss_chart(matrix.build(view.build_all([fake_run(lost=3)])))
    assert [b.label for g in plain.groups for b in g.bars] == ["lost", "stranded"]
    # an older run's finding has no owner: the client's
    assert view.build({**runs[0], "findings": [{"rule": "lost", "text": "x"}]}, "b").findings[0]["owner"] == "client"


def test_node_strip_shows_each_client_and_the_node_faults_on_one_scale() -> None:
    v = view.build(cluster_run(), "a")
    procs = {r["proc"]: r["segments"] for r in v.node_rows}
    assert [s["node"] for s in procs["consumer-0"]] == [N2, "no connection", N1]
    assert procs["consumer-0"][0]["slot"] == 1 and procs["consumer-0"][1]["slot"] == -1
    assert procs["consumer-0"][2]["left"] == round(100 * 2.9 / 12, 2)
    assert v.node_faults[0]["text"] == f"node-kill of {N2}: 2.00 s → 6.00 s"
    html = render_html([cluster_run()])
    assert "Broker nodes" in html and f"{N2}: 500 ms → 2.10 s" in html
    # a run with no node facts shows no strip; odd values never break the page
    assert "Broker nodes" not in render_html([fake_run()])
    odd = cluster_run()
    odd["metrics"]["nodes_timeline"] = {"consumer-0": [{"node": 3, "start_s": "x"}, "junk"], "p": "junk"}
    odd["metrics"]["node_faults"] = ["junk", {"start_s": None}, {"start_s": 1, "nodes": "x"}]
    odd["metrics"]["node_names"] = "junk"
    assert "Broker nodes" in render_html([odd])


def test_hostile_node_names_and_queue_types_are_text_never_markup() -> None:
    evil = f"rabbit{XSS}@h\"><img src=x onerror=alert(4)>"
    doc = cluster_run(f"quorum{XSS}", node=evil)
    doc["spec"]["nodes"] = f"3{XSS}"  # not a count: shown as not recorded
    doc["metrics"]["node_faults"][0]["fault"] = f"node-kill{XSS}"
    doc["findings"] = [{"rule": "lost", "headline": "x", "owner": f"broker{XSS}", "text": "t"}]
    html = render_html([doc, cluster_run("classic", index=1)])
    assert "<script>alert" not in html and "<img" not in html
    text = "".join(Page(html).text)
    for where in (f"quorum{XSS}", f"{evil}: 500 ms → 2.10 s", f"node-kill{XSS} of {evil}", f"broker{XSS}"):
        assert where in text, where
    assert embedded(html)["runs"][0]["results"]["metrics"]["node_names"][1] == evil


def test_a_checked_cluster_history_renders_its_node_timeline() -> None:
    """End to end: conn.node events -> the checker's metrics -> the report's strip."""
    h = clean_run(per_publisher=3)
    h.emit("consumer-0", "conn.node", t=0.6, role="harness", node=N1)
    h.emit("consumer-0", "conn.node", t=1.5, role="harness", node=N2)
    result = check(h.at(4).finish().events(), options=CheckOptions(queue_type="quorum", nodes=3)).to_dict()
    doc = {**fake_run("pika-best", "node-kill"), **{k: result[k] for k in ("verdict", "counts", "metrics",
                                                                              "findings", "reasons", "notes")}}
    doc["spec"]["queue_type"] = "quorum"
    v = view.build(doc, "a")
    assert [s["node"] for s in v.node_rows[0]["segments"]] == [N1, N2] and v.setup == "quorum queue · 3 nodes"
    assert f"{N2}: 1.50 s →" in render_html([doc])
