"""The default matrix without a broker: which columns and rows it picks, how each column is
calibrated (silent faults outlast every library's detection window at the column's heartbeat;
latency outlasts max_block_s), and how a cell's spec is built."""

from __future__ import annotations

import pytest

from harness.checker.model import CheckOptions
from harness.clients.heartbeat import MODELS, exercise_bound
from harness.config import ChaosConfig
from harness.engine import validate_fault
from harness.faults.registry import parse
from harness.matrix import cell_spec, cells
from harness.matrix_defaults import (
    COLUMNS,
    SILENT_HEARTBEAT_S,
    cell_params,
    column_for,
    default_clients,
    default_faults,
    label_for,
    resolve,
)
from harness.run.holds import choose_hold

LIBRARIES = ("pika", "aio-pika", "aioamqp", "kombu")


def test_every_default_column_parses_and_labels_are_distinct():
    for col in COLUMNS:
        validate_fault(col.fault, None)
    labels = [c.label for c in COLUMNS]
    assert len(set(labels)) == len(labels)
    assert all(len(label) <= 14 for label in labels)  # the console's fault column
    assert default_faults()[0] == "none"  # the control comes first


def test_the_default_columns_are_the_issue_s_fault_families():
    names = {w.fault.name for c in COLUMNS for w in validate_fault(c.fault, None).windows}
    assert names >= {"connection-cut", "partition", "packet-loss", "latency", "broker-restart", "broker-crash",
                     "memory-alarm", "queue-delete", "consumer-timeout", "heartbeat-starvation"}


def test_default_clients_prefer_the_best_practice_strategy_and_fall_back():
    have = ["pika-recover", "pika-naive", "pika-best", "kombu-drain", "kombu-mixin", "aio-pika-robust",
            "aio-pika-plain", "chat-app", "aioamqp-naive"]
    assert default_clients(have) == ["pika-best", "pika-naive", "kombu-drain", "kombu-mixin", "aio-pika-robust",
                                     "aio-pika-plain", "aioamqp-naive", "chat-app"]
    assert default_clients([]) == []


def test_the_registry_s_default_rows_exist():
    from harness.clients.registry import strategies

    rows = default_clients()
    assert set(rows) <= set(strategies()) and "chat-app" in rows and "pika-naive" in rows
    assert ChaosConfig().clients == rows and ChaosConfig().faults == default_faults()


def test_labels_resolve_to_their_column_and_anything_else_runs_as_given():
    assert resolve("cons-timeout") == column_for("consumer-timeout@0+15,force-close:target=consumer@3+0").fault
    assert resolve("latency:latency_ms=5") == "latency:latency_ms=5"
    assert label_for("broker-restart") == "restart" and label_for("reset-peer") == "reset-peer"


def test_a_column_s_client_knobs_yield_to_the_user_s():
    assert cell_params("partition", None) == {"heartbeat": SILENT_HEARTBEAT_S}
    assert cell_params("partition", {"heartbeat": 60, "prefetch": 1}) == {"heartbeat": 60, "prefetch": 1}
    assert cell_params("broker-restart", {"prefetch": 1}) == {"prefetch": 1}
    cfg = ChaosConfig(clients=["pika-recover"], faults=["partition", "none"], params={"prefetch": 2}, seed=5)
    specs = [cell_spec(cfg, c, f, i) for i, (c, f, _) in enumerate(cells(cfg))]
    assert [s.params for s in specs] == [{"heartbeat": SILENT_HEARTBEAT_S, "prefetch": 2}, {"prefetch": 2}]
    assert [s.seed for s in specs] == [5, 6] and specs[0].fault_s is None


@pytest.mark.parametrize("library", LIBRARIES)
@pytest.mark.parametrize("label", ["partition", "hb-starve"])
def test_silent_columns_outlast_every_library_s_detection_window(library, label):
    """The engine's default hold at the column's heartbeat is never one the checker calls "not
    exercised", and heartbeat starvation's silence lasts the whole hold."""
    col = next(c for c in COLUMNS if c.label == label)
    [window] = validate_fault(col.fault, None).windows
    assert window.fault.silences()
    start = {"library": library, "heartbeat_s": col.params["heartbeat"]}
    hold = choose_hold(window.fault, None, {"consumer-0": start}, CheckOptions().max_block_s)
    bound, _, _ = exercise_bound(start, CheckOptions().max_block_s)
    assert hold.seconds >= bound + 5, (hold, bound)
    assert hold.seconds <= 30  # calibrated: seconds, not the minutes of a 60 s heartbeat
    if label == "hb-starve":
        assert window.fault.silence_ms / 1000 >= hold.seconds  # type: ignore[attr-defined]
    assert library in MODELS


def test_the_latency_column_outlasts_the_blocked_deadline():
    col = column_for(resolve("latency-12s"))
    assert col is not None
    [window] = validate_fault(col.fault, None).windows
    latency_s = window.fault.latency_ms / 1000  # type: ignore[attr-defined]
    assert latency_s > CheckOptions().max_block_s  # a silent wait on a confirm is "blocked"
    assert window.hold > latency_s  # held long enough that a delayed confirm waits the full latency
    assert window.fault.targets_role() == "publisher"  # a delayed consumer would be "stalled" for all


def test_the_consumer_timeout_column_makes_the_consumer_reconnect_inside_it():
    windows = validate_fault(resolve("cons-timeout"), None).windows
    timeout = next(w for w in windows if w.fault.name == "consumer-timeout")
    close = next(w for w in windows if w.fault.name == "force-close")
    assert close.fault.targets_role() == "consumer"
    assert timeout.start < close.start and close.stop + 10 <= timeout.stop  # reconnects into the low timeout


def test_the_memory_alarm_column_outlasts_the_blocked_deadline():
    assert parse("memory-alarm").default_hold_s > CheckOptions().max_block_s
