"""The CLI end to end on a real broker: Ctrl-C (SIGINT) and SIGTERM during a matrix (finished
cells kept, the signal and the unrun cells recorded, report still written, one line printed,
nothing of ours left running), and SIGTERM during a run. Ports 24300-24304 (hardening-D)."""

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from harness.env import procs

pytestmark = pytest.mark.broker
CLI = [sys.executable, "-m", "harness"]


def ours_running(base_port: int, reports: Path) -> list[str]:
    """Our processes for this base port: broker, epmd, proxy, clients, relays."""
    marks = (f"rabbit_chaos_{base_port}@", f"-port {base_port + 3}", f"-port {base_port + 4}", str(reports))
    found = []
    for pid in procs._pids():
        if any(procs.matches(pid, m) for m in marks):
            found.append(f"{pid} {procs.cmdline(pid)[:100]}")
    return found


def _foreground_sigint() -> None:
    """The CLI as a user's Ctrl-C reaches it: in the foreground, SIGINT at its default. A test
    suite started in the background of a non-interactive shell (``cmd &``) inherits SIGINT
    *ignored*, Python then keeps it ignored, and the SIGINT below would never arrive (seen in a
    clean-clone CI run launched with ``nohup ... &``: the matrix ran to its end, exit 0)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _wait_for(pred: object, proc: subprocess.Popen[str], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and not pred():  # type: ignore[operator]
        assert proc.poll() is None, proc.stdout.read() if proc.stdout else ""
        time.sleep(0.2)


@pytest.mark.parametrize(("sig", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_an_interrupted_matrix_keeps_finished_cells_and_says_so(tmp_path: Path, sig: int, code: int):
    base, reports = 24300, tmp_path / "reports"
    cmd = [*CLI, "matrix", "--clients", "pika-recover", "--faults", "none,connection-cut,none", "--jobs", "1",
           "--count", "400", "--rate", "100", "--warmup", "1", "--fault-for", "2",
           "--reports-dir", str(reports), "--state-dir", str(tmp_path / "state"), "--base-port", str(base)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            preexec_fn=_foreground_sigint)
    try:
        _wait_for(lambda: list(reports.glob("matrix-*/*/results.json")), proc, 180)
        _wait_for(lambda: len(list(reports.glob("matrix-*/*/history"))) >= 2, proc, 60)  # into the 2nd cell
        proc.send_signal(sig)
        out, _ = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    name = signal.Signals(sig).name
    assert proc.returncode == code, out
    [mdir] = list(reports.glob("matrix-*"))
    meta = json.loads((mdir / "matrix.json").read_text())
    assert meta["interrupted"] is True and meta["interrupted_by"] == name, meta
    assert meta["runs"][0] and len(meta["runs"]) <= 2, meta
    assert {"client": "pika-recover", "fault": "none", "repeat": 0} in meta["unrun"], meta
    assert (mdir / "report.html").exists()
    assert out.strip().splitlines()[-1] == f"interrupted by {name}: results so far in {mdir}", out
    assert "Traceback" not in out
    assert ours_running(base, reports) == []
    # the store re-renders, the interrupted run (if the engine recorded it) listed
    res = subprocess.run([*CLI, "report", str(reports)], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stdout + res.stderr
    assert f"({len(meta['runs'])} runs)" in res.stdout, res.stdout


def test_a_sigtermed_run_records_itself_as_interrupted(tmp_path: Path):
    base, reports = 24300, tmp_path / "reports"
    cmd = [*CLI, "run", "--client", "pika-recover", "--fault", "connection-cut", "--count", "2000", "--rate", "100",
           "--warmup", "1", "--fault-for", "3", "--reports-dir", str(reports), "--state-dir", str(tmp_path / "state"),
           "--base-port", str(base)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        _wait_for(lambda: list(reports.glob("*/history/publisher-0.jsonl")), proc, 180)  # traffic flows
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 143, out
    [run] = [d for d in reports.iterdir() if d.is_dir() and not d.is_symlink()]
    assert out.strip().splitlines()[-1] == f"interrupted by SIGTERM: results so far in {run}", out
    doc = json.loads((run / "results.json").read_text())
    assert doc["verdict"] == "unknown" and doc.get("interrupted") is True, doc
    assert "interrupted by SIGTERM" in " ".join(doc["reasons"]), doc["reasons"]
    assert ours_running(base, reports) == []
    res = subprocess.run([*CLI, "report", str(reports)], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0 and f"interrupted runs: {doc['run_id']}" in res.stdout, res.stdout + res.stderr
