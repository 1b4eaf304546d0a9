"""Two matrix cells side by side on one real broker do not disturb each other.

The control cell (no fault) runs while the other cell cuts its own clients' connections: the
control must see no connection loss and exact counts, the faulted cell its own fault only. Their
histories share CLOCK_MONOTONIC, so the test also proves the fault fell inside the control run.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from harness.config import ChaosConfig
from harness.env.environment import Environment
from harness.matrix import run_matrix

COUNT = 150


@pytest.fixture(scope="module")
def par_env() -> Iterator[Environment]:
    env = Environment(Path("/tmp/rc-parallel-test-state"), base_port=24750)
    try:
        env.start()
        yield env
    finally:
        env.stop()


def _events(run_dir: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (run_dir / "history.jsonl").read_text().splitlines() if line.strip()]


def test_two_concurrent_cells_are_isolated(par_env: Environment, tmp_path: Path) -> None:
    # 6 s of traffic at 25/s, around the other cell's 4 s cut
    cfg = ChaosConfig.model_validate({"clients": ["pika-recover"], "faults": ["none", "connection-cut"],
                                      "count": COUNT, "rate": 25.0, "reports_dir": tmp_path})
    res = run_matrix(par_env, cfg, jobs=2)
    assert not res.interrupted and res.unavailable == [] and res.unrun == []
    assert [d["fault"] for d in res.docs] == ["none", "connection-cut"]  # cell order
    control, cut = res.docs
    assert res.timing is not None and res.timing["jobs"] == 2

    for doc in res.docs:
        assert doc["verdict"] == "pass", (doc["fault"], doc["reasons"])
        c = doc["counts"]
        assert c["published"] == c["confirmed"] == COUNT and c["lost"] == 0 and c["unexpected"] == 0
    assert control["counts"]["delivered"] == COUNT and control["counts"]["duplicated"] == 0

    ctl_events = _events(res.dir / control["run_id"])
    cut_events = _events(res.dir / cut["run_id"])
    # the control's clients never noticed anything
    noticed = [e for e in ctl_events if e["kind"] in ("conn.lost", "channel.closed", "consume.cancelled",
                                                      "publish.fail", "publish.info", "conn.blocked")]
    assert noticed == []
    assert sum(e["kind"] == "conn.open" for e in ctl_events) == 2  # one connection per client, never again
    # ...while the other cell's fault took effect inside the control's run
    effect = next(e for e in cut_events if e["kind"] == "fault.effect" and e["action"] == "start")
    first = next(e["t"] for e in ctl_events if e["kind"] == "publish.invoke")
    last = max(e["t"] for e in ctl_events if e["kind"] == "deliver")
    assert first < effect["t"] < last, "the cells did not overlap: the test proves nothing"
    assert cut["timing"]["detection_s"] is not None  # the faulted cell saw its own fault
    assert control["run_id"] != cut["run_id"]
