"""RunOutcome's assertion helpers fail loudly, even under ``python -O`` (which strips ``assert``),
and a missing detection says which one and why."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

import harness.outcome
from harness.outcome import RunOutcome

ROOT = Path(__file__).resolve().parents[2]


def doc(**over: Any) -> dict[str, Any]:
    d: dict[str, Any] = {"run_id": "r1", "client": "pika-naive", "fault": "broker-restart", "verdict": "pass",
                         "reasons": [], "counts": {"lost": 0, "stranded": 0}, "metrics": {},
                         "timing": {"detection_s": 0.2, "recovery_s": 1.0,
                                    "detection_by_role": {"publisher": 0.2, "consumer": None}}}
    d.update(over)
    return d


def test_no_assert_statement_in_the_module() -> None:
    tree = ast.parse(Path(harness.outcome.__file__).read_text())
    asserts = [n.lineno for n in ast.walk(tree) if isinstance(n, ast.Assert)]
    assert not asserts, f"bare assert at lines {asserts}: python -O strips them"


def test_helpers_still_fail_under_python_O(tmp_path: Path) -> None:
    script = (
        "from pathlib import Path\n"
        "from harness.outcome import RunOutcome\n"
        "d = {'run_id': 'r', 'client': 'c', 'fault': 'f', 'verdict': 'fail', 'reasons': ['lost 3'],\n"
        "     'counts': {'lost': 3, 'stranded': 2}, 'metrics': {}, 'timing': {'detection_s': None,\n"
        "     'recovery_s': None}}\n"
        "o = RunOutcome(d, Path('.'))\n"
        "failed = []\n"
        "for name, call in [('pass', o.assert_pass), ('loss', o.assert_no_loss), ('stall', o.assert_no_stall),\n"
        "                   ('recovered', lambda: o.assert_recovered_within(5)), ('detected', o.assert_detected)]:\n"
        "    try:\n"
        "        call()\n"
        "    except AssertionError:\n"
        "        failed.append(name)\n"
        "assert not __debug__\n"  # this one is stripped: proves we really run under -O
        "print(','.join(failed), __debug__)\n"
    )
    res = subprocess.run([sys.executable, "-O", "-c", script], cwd=ROOT, capture_output=True, text=True,
                         timeout=60)
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == "pass,loss,stall,recovered,detected False", res.stdout


def test_passing_run_passes_every_helper() -> None:
    RunOutcome(doc(), Path("/r")).assert_pass().assert_no_loss().assert_no_stall() \
        .assert_recovered_within(5).assert_detected(within=1).assert_detected(role="publisher")


def test_messages_keep_their_wording() -> None:
    o = RunOutcome(doc(verdict="fail", counts={"lost": 2}, reasons=["lost 2 messages"]), Path("/r"))
    with pytest.raises(AssertionError, match="expected verdict 'pass'") as exc:
        o.assert_pass()
    assert "lost 2 messages" in str(exc.value) and "evidence: /r/r1" in str(exc.value)
    with pytest.raises(AssertionError, match="messages lost"):
        o.assert_no_loss()
    with pytest.raises(AssertionError, match=r"recovery took 1.00s > 0.5s"):
        o.assert_recovered_within(0.5)


def test_missing_detection_says_which_and_why() -> None:
    timing = {"detection_s": None, "recovery_s": 1.0, "detection_by_role": {"publisher": None, "consumer": None},
              "detail": {"faults": [{"fault": "partition", "start_s": 2.0, "stop_s": 6.0}],
                         "detection_by_proc": {},
                         "heartbeat_prediction": {"fault": "partition", "by_proc": {
                             "consumer-0": {"library": "pika", "heartbeat_s": 60, "window_s": [65, 130]}}}}}
    o = RunOutcome(doc(timing=timing), Path("/r"))
    with pytest.raises(AssertionError) as exc:
        o.assert_detected()
    text = str(exc.value)
    assert "the client under test never detected the fault" in text
    assert "partition at t=2.0s" in text and "no process wrote conn.lost" in text
    assert "consumer-0 (pika, heartbeat 60 s) predicts detection of a silent fault in 65-130 s" in text
    assert "None is not None" not in text


def test_late_or_one_sided_detection_names_the_role() -> None:
    timing = {"detection_s": 3.0, "detection_by_role": {"publisher": 3.0, "consumer": None},
              "detail": {"faults": [{"fault": "connection-cut", "start_s": 2.0}],
                         "detection_by_proc": {"publisher-0": {"detection_s": 3.0, "by": "conn.lost"}}}}
    o = RunOutcome(doc(timing=timing), Path("/r"))
    with pytest.raises(AssertionError, match=r"the consumer never detected the fault: .*publisher-0 noticed it "
                                             r"by conn\.lost after 3\.00s"):
        o.assert_detected(role="consumer")
    with pytest.raises(AssertionError, match=r"detected the fault 3\.00s after its first effect, later than 1s"):
        o.assert_detected(within=1)
    o.assert_detected(within=5, role="publisher")


def test_no_fault_means_nothing_to_detect() -> None:
    o = RunOutcome(doc(timing={"detection_s": None}), Path("/r"))
    with pytest.raises(AssertionError, match="no fault took effect in this run"):
        o.assert_detected()
