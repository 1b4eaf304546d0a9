"""The Node.js example client (examples/node-amqplib) on a real broker: it passes check-client,
a fault-free run passes, and it runs to a verdict (not ``unknown``) under a broker restart and a
connection cut. The fault verdicts are recorded (printed), not asserted: they are findings about
the client, which is the point of the tool.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from harness.clients import conformance
from harness.engine import RunSpec, run_cell
from harness.env.environment import Environment

pytestmark = pytest.mark.broker

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "node-amqplib"
COMMAND = ["node", str(EXAMPLE / "client.js")]

if shutil.which("node") is None:
    pytest.skip("node is not installed (bash scripts/bootstrap.sh install puts it there)", allow_module_level=True)
if not (EXAMPLE / "node_modules" / "amqplib").is_dir():
    pytest.skip("examples/node-amqplib/node_modules is missing: run `npm ci` there "
                "(bash scripts/bootstrap.sh install does)", allow_module_level=True)



def test_node_client_passes_check_client(conf_env: Environment, tmp_path: Path) -> None:
    res = conformance.check(conf_env, "node-amqplib", tmp_path, command=COMMAND)
    print(res.render())
    assert res.ok, res.render()


def test_node_client_fault_free_run_passes(conf_env: Environment, tmp_path: Path) -> None:
    doc = run_cell(conf_env, RunSpec(client="node-amqplib", count=300, rate=100), tmp_path, command=COMMAND)
    assert doc["verdict"] == "pass", doc["reasons"]
    assert doc["counts"]["confirmed"] == doc["counts"]["delivered"] == 300


@pytest.mark.parametrize("fault", ["broker-restart", "connection-cut"])
def test_node_client_runs_to_a_verdict_under_faults(conf_env: Environment, tmp_path: Path, fault: str) -> None:
    doc = run_cell(conf_env, RunSpec(client="node-amqplib", fault=fault, count=500, rate=100), tmp_path,
                   command=COMMAND)
    print(f"node-amqplib × {fault}: {doc['verdict']} counts={json.dumps(doc['counts'])} "
          f"timing={json.dumps({k: doc['timing'].get(k) for k in ('detection_s', 'recovery_s', 'wall_s')})} "
          f"reasons={doc['reasons']}")
    assert doc["verdict"] in {"pass", "fail"}, doc["reasons"]
