"""The report's pure parts: safe JSON, timeline normalising, anchors, matrix cells, bar layout."""

from __future__ import annotations

import json

from report_fakes import fake_run, sample_matrix

from harness.report import compare, embed, fmt, matrix, series, view


def test_json_for_script_cannot_close_its_element_and_round_trips() -> None:
    data = {"a": "</script><!-- & \u2028 >", "b": [1.5, None]}
    out = str(embed.json_for_script(data))
    assert "<" not in out and ">" not in out and "&" not in out and "\u2028" not in out
    assert json.loads(out) == data


def test_sanitise_numbers_drops_nan_and_infinity() -> None:
    assert embed.sanitise_numbers({"x": [float("nan"), float("inf"), 1.0], 2: "s"}) == {"x": [None, None, 1.0],
                                                                                         "2": "s"}


def test_series_downsamples_long_runs_and_keeps_totals() -> None:
    n = series.MAX_POINTS * 3 + 7
    tl, why = series.normalise({"bucket_s": 0.1, "publish_invoke": [1] * n, "publish_ok": [1] * n,
                                "deliver": [2] * n, "faults": [], "conn_events": []})
    assert why == "" and tl is not None
    assert len(tl["t"]) <= series.MAX_POINTS
    assert sum(tl["published"]) == n and sum(tl["delivered"]) == 2 * n
    assert abs(tl["bucket_s"] - 0.4) < 1e-9


def test_series_caps_connection_events() -> None:
    raw = {"bucket_s": 0.1, "deliver": [1], "conn_events": [[0.0, "c", "conn.lost"]] * (series.MAX_CONN_EVENTS + 3)}
    tl, _ = series.normalise(raw)
    assert tl is not None and len(tl["conn"]) == series.MAX_CONN_EVENTS and tl["conn_dropped"] == 3


def test_series_explains_each_missing_case() -> None:
    assert series.normalise(None)[1].startswith("no throughput timeline")
    assert "bucket size" in series.normalise({"bucket_s": -1})[1]
    assert "holds no series" in series.normalise({"bucket_s": 0.1})[1]
    assert "empty" in series.normalise({"bucket_s": 0.1, "deliver": []})[1]
    assert series.find({"throughput": "x", "timeline": {"bucket_s": 1}}) == {"bucket_s": 1}


def test_anchors_are_unique_and_slug_safe() -> None:
    docs = [{"run_id": "a b"}, {"run_id": "a b"}, {"run_id": "a-b-2"}, {}, {"run_id": "<x>"}]
    out = view.anchors(docs)
    assert len(set(out)) == len(out)
    assert all(fmt.slug(a) == a for a in out)


def test_cell_summary_counts_every_verdict() -> None:
    runs = view.build_all([fake_run(verdict="pass", index=0), fake_run(verdict="fail", lost=1, index=1),
                           fake_run(verdict="unknown", index=2)])
    cell = matrix.build(runs).cell("pika-recover", "broker-restart")
    assert cell.verdict == "fail"
    assert cell.summary == "1/3 pass · 1 fail · 1 unknown"
    assert [r.repeat_index for r in runs] == [1, 2, 3] and runs[0].repeat_total == 3


def test_matrix_puts_the_baseline_fault_first() -> None:
    runs = view.build_all([fake_run(fault="broker-restart"), fake_run(fault="none", index=1)])
    grid = matrix.build(runs)
    assert grid.faults == ["none", "broker-restart"]
    assert grid.cell("nobody", "none").verdict == "none"


def test_recovery_chart_takes_the_median_and_draws_never_full_width() -> None:
    grid = matrix.build(view.build_all(sample_matrix()))
    chart = compare.recovery_chart(grid, compare.client_colors(grid.clients))
    assert [g.label for g in chart.groups] == ["broker-restart", "connection-cut"]
    naive, recover = chart.groups[1].bars
    assert naive.never and naive.w == chart.bar_max and naive.display == "never recovered"
    assert recover.value == 1.5 and "median of 3" in recover.display
    assert 0 < recover.w <= chart.bar_max
    assert chart.height > 0


def test_loss_chart_sums_lost_and_stranded_per_client() -> None:
    grid = matrix.build(view.build_all(sample_matrix()))
    chart = compare.loss_chart(grid)
    naive = {b.label: b for b in chart.groups[0].bars}
    assert naive["lost"].value == 74 and naive["stranded"].value == 240
    assert naive["stranded"].w == chart.bar_max
    recover = {b.label: b for b in chart.groups[1].bars}
    assert recover["lost"].value == 0 and recover["lost"].w == 0


def test_never_recovered_needs_a_fault_and_an_explicit_no() -> None:
    baseline = view.build(fake_run(fault="none"), "a")
    assert baseline.recovery_text == "—" and not baseline.never_recovered
    never = view.build(fake_run(recovery_s=None), "b")
    assert never.recovery_text == "never" and never.never_recovered
    unknown = fake_run()
    unknown["timing"] = {}
    assert view.build(unknown, "c").recovery_text == "—"


def test_seconds_formatting() -> None:
    assert fmt.seconds(0.0423) == "42 ms"
    assert fmt.seconds(3.456) == "3.46 s"
    assert fmt.seconds(250) == "250 s"
    assert fmt.seconds(None) == "—" and fmt.seconds(True) == "—" and fmt.seconds("1") == "—"


def test_heartbeat_prediction_rows_sit_beside_the_measured_detection() -> None:
    doc = fake_run("pika-recover", "partition")
    doc["timing"]["detail"] = {"heartbeat_prediction": {"fault": "partition", "by_proc": {
        "consumer-0": {"role": "consumer", "library": "pika", "heartbeat_s": 2, "window_s": [7.0, 14.0],
                       "measured_s": 9.5, "within": "inside"},
        "publisher-0": {"role": "publisher", "library": "<b>x</b>", "heartbeat_s": 2, "window_s": None,
                        "measured_s": None},
    }}}
    rows = dict(view.build(doc, "a").timing_rows)
    assert rows["detection predicted by heartbeat, consumer-0 (pika, heartbeat 2 s)"] == \
        "7.00 s – 14.00 s; measured 9.50 s (inside)"
    other = rows["detection predicted by heartbeat, publisher-0 (<b>x</b>, heartbeat 2 s)"]
    assert other == "no model for this library (or heartbeat off); measured never noticed"


def test_series_counts_only_broker_confirms_as_confirmed() -> None:
    raw = {"bucket_s": 1.0, "publish_invoke": [5, 5], "publish_ok": [5, 4], "publish_confirmed": [2, 0],
           "deliver": [5, 4]}
    tl, why = series.normalise(raw)
    assert why == "" and tl is not None
    assert tl["confirmed"] == [2, 0] and tl["unconfirmed"] == [3, 4]
    assert "acknowledged" not in tl


def test_series_from_an_older_run_does_not_call_its_oks_confirmed() -> None:
    tl, _ = series.normalise({"bucket_s": 1.0, "publish_invoke": [5], "publish_ok": [5], "deliver": [5]})
    assert tl is not None and tl["confirmed"] is None and tl["unconfirmed"] is None
    assert tl["acknowledged"] == [5]


def test_series_split_survives_downsampling() -> None:
    n = series.MAX_POINTS * 2 + 1
    tl, _ = series.normalise({"bucket_s": 0.1, "publish_invoke": [2] * n, "publish_ok": [2] * n,
                              "publish_confirmed": [1] * n, "deliver": [2] * n})
    assert tl is not None and sum(tl["confirmed"]) == n and sum(tl["unconfirmed"]) == n
    assert len(tl["confirmed"]) == len(tl["unconfirmed"]) == len(tl["t"])


def test_fault_headers_break_at_their_parameters_only() -> None:
    from harness.report.render import _breakable
    assert _breakable("latency:latency_ms=200,stream=both") == ["latency:", "latency_ms=", "200,", "stream=", "both"]
    assert _breakable("none") == ["none"]


def test_settle_and_recovery_whys_in_words() -> None:
    doc = fake_run("pika-recover", "partition", recovery_s=None)
    doc["settle"] = {"reason": "cap", "held_unacked": 2, "waited_s": 120.0, "bound": "settle_unacked_cap_s"}
    doc["timing"]["detail"]["recovery_never"] = {"publisher": "no successful publish after the heal"}
    doc["timing"]["detail"]["recovery_not_needed"] = {"consumer": "no messages were left"}
    v = view.build(doc, "a")
    assert v.settle_text.startswith("cut at settle_unacked_cap_s while the client still held unacked deliveries")
    assert "2 held unacked at the end" in v.settle_text
    assert v.recovery_text == "never" and v.recovery_why == "publisher: no successful publish after the heal"
    rows = dict(v.timing_rows)
    assert rows[view.RECOVERY_LABEL] == "never: publisher: no successful publish after the heal"
    # nothing needed recovering: "—", not "never", and the cell's tooltip says why
    doc["timing"]["detail"].pop("recovery_never")
    doc["timing"]["detail"]["recovered"] = None
    v = view.build(doc, "b")
    assert v.recovery_text == "—" and not v.never_recovered and v.recovery_why.startswith("not needed")


def test_library_and_version_from_versions_the_processes_or_the_label() -> None:
    doc = fake_run("aio-pika-robust@9.4.3", "none")
    doc["versions"].update(client_library="aio-pika", client_library_version="9.4.3")
    v = view.build(doc, "a")
    assert (v.library, v.strategy, v.library_version) == ("aio-pika", "aio-pika-robust", "9.4.3")
    doc["versions"].update(client_library="custom", client_library_version=None)
    v = view.build(doc, "b")  # an outside client: its processes' library, the label's version
    assert (v.library, v.library_version) == ("pika", "9.4.3")
    assert view.split_label("a@b c") == ("a@b c", "")


def test_findings_and_the_reasons_they_do_not_state() -> None:
    doc = fake_run("pika-recover", "partition", verdict="unknown", reasons=[
        "not exercised: the 4 s partition is shorter; not proven: x", "no run.end event: the history was cut short"])
    doc["findings"] = [{"rule": "not_exercised", "category": "not_exercised", "headline": "not exercised",
                        "effect": "unknown", "count": 1, "text": "not exercised: the 4 s partition is shorter",
                        "proven": False}, "junk"]
    v = view.build(doc, "a")
    assert [f["proven"] for f in v.findings] == ["not proven"]
    assert v.other_reasons == ["no run.end event: the history was cut short"]
    doc["interrupted"] = True
    assert view.build(doc, "b").headline == "interrupted"
