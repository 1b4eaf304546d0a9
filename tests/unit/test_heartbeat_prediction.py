"""The detection time a client's heartbeat predicts for a silent fault, beside the measured one."""

from __future__ import annotations

import pytest

from harness.checker import check
from harness.checker.builder import HistoryBuilder
from harness.clients.heartbeat import detection_window
from harness.faults.registry import parse as parse_fault


@pytest.mark.parametrize(("library", "hb", "window"), [
    ("pika", 60, (65.0, 130.0)),            # checks every hb+5 s, closes after one silent interval
    ("aio-pika", 60, (183.0, 213.0)),        # aiormq: 3(hb+1) grace, checked every hb//2 s
    ("aioamqp", 10, (15.0, 20.0)),           # 2 hb after the last byte
    ("kombu", 10, (15.0, None)),             # only when the app calls heartbeat_check()
    ("pika", "2", (7.0, 14.0)),              # a param given as text on the command line
])
def test_models(library, hb, window):
    assert detection_window(library, hb) == window


@pytest.mark.parametrize(("library", "hb"), [("pika", 0), ("pika", None), ("my-client", 60), ("pika", "x")])
def test_no_prediction_when_heartbeat_is_off_or_library_unknown(library, hb):
    assert detection_window(library, hb) is None


def test_which_faults_silence_the_connection():
    silent = ["partition", "broker-pause", "kernel-blackhole", "timeout", "timeout:stream=downstream",
              "kernel-oneway:direction=from-broker", "heartbeat-starvation"]
    loud = ["connection-cut", "reset-peer", "broker-restart", "broker-crash", "force-close", "latency",
            "timeout:timeout_ms=500", "timeout:stream=upstream", "kernel-oneway:direction=to-broker",
            "heartbeat-starvation:stream=upstream", "memory-alarm", "none"]
    assert [f for f in silent if not parse_fault(f).silences()] == []
    assert [f for f in loud if parse_fault(f).silences()] == []


def _history(detect_after: float, silent: bool = True, target: str = "all") -> list:
    h = HistoryBuilder()
    h.start("publisher-0", heartbeat_s=2, heartbeat_window_s=[7.0, 14.0])
    h.start("consumer-0", library="aio-pika", heartbeat_s=2, heartbeat_window_s=[10.0, 12.0])
    h.at(1.0).publish("publisher-0", "p0-0")
    h.consume("consumer-0", "p0-0")
    h.at(2.0).fault_start("partition", silent=silent, params={"target": target})
    h.at(2.0 + detect_after).emit("publisher-0", "conn.lost", error="StreamLostError")
    h.emit("consumer-0", "conn.lost", error="AMQPConnectionError")
    h.at(30.0).fault_stop("partition")
    h.at(31.0).publish("publisher-0", "p0-1")
    h.consume("consumer-0", "p0-1")
    return h.finish().events()


def test_prediction_shown_beside_measured_detection():
    r = check(_history(detect_after=8.0))
    pred = r.timing.detail["heartbeat_prediction"]
    pub, con = pred["by_proc"]["publisher-0"], pred["by_proc"]["consumer-0"]
    assert pred["fault"] == "partition"
    assert pub["window_s"] == [7.0, 14.0] and pub["measured_s"] == pytest.approx(8.0)
    assert pub["within"] == "inside"
    assert con["within"] == "early"  # noticed at 8 s, its window opens at 10 s (1 s slack)
    assert not any("later than its heartbeat" in n for n in r.notes)


def test_late_detection_is_a_note_naming_the_window():
    r = check(_history(detect_after=20.0))
    rows = r.timing.detail["heartbeat_prediction"]["by_proc"]
    assert rows["publisher-0"]["within"] == "late" and rows["consumer-0"]["within"] == "late"
    late = [n for n in r.notes if "later than its heartbeat predicts" in n]
    assert len(late) == 2 and "at most 14.0 s" in " ".join(late)
    assert r.verdict == "pass"  # late detection alone loses nothing: the counts judge that


def test_no_prediction_for_a_fault_that_closes_the_connection():
    r = check(_history(detect_after=0.01, silent=False))
    assert "heartbeat_prediction" not in r.timing.detail


def test_prediction_only_for_the_targeted_role():
    r = check(_history(detect_after=8.0, target="consumer"))
    assert list(r.timing.detail["heartbeat_prediction"]["by_proc"]) == ["consumer-0"]


def test_a_few_hundred_ms_past_the_window_is_within_the_slack():
    r = check(_history(detect_after=14.5))
    assert r.timing.detail["heartbeat_prediction"]["by_proc"]["publisher-0"]["within"] == "inside"


def test_a_client_that_declares_only_its_heartbeat_gets_its_librarys_window() -> None:
    h = HistoryBuilder()
    h.start("consumer-0", library="aioamqp", heartbeat_s=10)  # no heartbeat_window_s: the model's 15-20 s
    h.at(1.0).consume("consumer-0", "x")
    h.at(2.0).fault_start("partition", silent=True)
    h.at(19.0).emit("consumer-0", "conn.lost", error="heartbeat timeout")
    h.at(30.0).fault_stop("partition")
    row = check(h.finish().events()).timing.detail["heartbeat_prediction"]["by_proc"]["consumer-0"]
    assert row["window_s"] == [15.0, 20.0] and row["within"] == "inside"


def test_a_client_with_heartbeats_off_has_no_window() -> None:
    h = HistoryBuilder()
    h.start("consumer-0", heartbeat_s=0, heartbeat_window_s=None)
    h.at(2.0).fault_start("partition", silent=True)
    h.at(30.0).fault_stop("partition")
    row = check(h.finish().events()).timing.detail["heartbeat_prediction"]["by_proc"]["consumer-0"]
    assert row["window_s"] is None and "within" not in row
