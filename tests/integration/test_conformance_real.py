"""check-client end to end on a real broker: a reference strategy is conformant, and a
deliberately broken client (conformance_broken_client.py) fails with one message per violation.

One environment for this module (own state dir and ports, always stopped); the node client's
module boots its own afterwards on the same ports.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from harness.clients import conformance
from harness.env.environment import Environment

pytestmark = pytest.mark.broker

ROOT = Path(__file__).resolve().parents[2]
BROKEN = [sys.executable, str(Path(__file__).with_name("conformance_broken_client.py"))]



@pytest.mark.parametrize("strategy", ["pika-async", "pika-recover"])
def test_reference_strategy_is_conformant(conf_env: Environment, tmp_path: Path, strategy: str) -> None:
    res = conformance.check(conf_env, strategy, tmp_path)
    print(res.render())
    assert res.ok, res.render()
    assert res.doc["verdict"] == "pass"


def test_broken_client_fails_with_one_message_per_violation(conf_env: Environment, tmp_path: Path) -> None:
    res = conformance.check(conf_env, "broken", tmp_path, command=BROKEN, grace_s=2.0)
    text = res.render()
    print(text)
    assert not res.ok
    by_rule = {v.rule for v in res.violations}
    assert {"json", "schema", "bookends", "ids", "sigterm", "connection"} <= by_rule, text
    assert "[json] publisher-0.jsonl:3: not JSON" in text
    assert "[schema] publisher-0.jsonl:5: publish.ok event missing field 'confirmed'" in text
    assert "[bookends] publisher-0.jsonl:4: no client.exit" in text
    assert "[bookends] consumer-0.jsonl:2: no client.exit" in text
    assert "[sigterm] consumer-0: ignored SIGTERM" in text
    assert "no connection named" in text and "/consumer-0'" in text
    assert "fix:" in text and text.endswith(f"not conformant: {len(res.violations)} violation(s)")
