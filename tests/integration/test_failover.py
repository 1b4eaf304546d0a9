"""The *no failover* rule on the real three-node cluster (slow: one cluster boot, ~10 s on 2 cores,
plus two node-partition runs of ~30-40 s each at the fault's default 20 s hold): a best-practice
client (pika-best, rotating over amqp_urls) leaves the partitioned node for the majority and passes
with its failover time; a single-host client (pika-recover, node 1 only) stays off the cluster
until the heal and fails "no failover" for both roles. Ports: RC_FAILOVER_BASE_PORT (25600) ..
+312; state: RC_FAILOVER_STATE (/tmp/rc-failover-state/env)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from harness.env.environment import Environment

pytestmark = [pytest.mark.slow, pytest.mark.broker]
BASE_PORT = int(os.environ.get("RC_FAILOVER_BASE_PORT", "25600"))
STATE_DIR = Path(os.environ.get("RC_FAILOVER_STATE", "/tmp/rc-failover-state")) / "env"
NODES = 3  # the conftest's env fixture boots a local cluster


def test_a_client_with_every_node_fails_over_and_a_single_host_client_does_not(env: Environment,
                                                                                  tmp_path: Path) -> None:
    from harness.engine import RunSpec, run_cell

    best = run_cell(env, RunSpec(client="pika-best", fault="node-partition", queue_type="quorum"), tmp_path)
    print(f"pika-best: {best['verdict']} failover_s={best['metrics'].get('failover_s')} "
          f"detection={best['timing'].get('detection_s')} recovery={best['timing'].get('recovery_s')}")
    assert best["verdict"] == "pass", best["reasons"]
    failover = best["metrics"]["failover_s"]
    assert failover and max(failover.values()) < 10.0

    one = run_cell(env, RunSpec(client="pika-recover", fault="node-partition", queue_type="quorum"), tmp_path)
    print(f"pika-recover: {one['verdict']} {one['headline']!r} {one['reasons']}")
    assert one["verdict"] == "fail" and one["headline"] == "no failover", one["reasons"]
    assert {f["rule"] for f in one["findings"]} == {"no_failover"}
    assert all("stayed off the cluster" in r for r in one["reasons"])
