"""The CLI end to end on a real broker: a run's evidence on disk, and Ctrl-C during a matrix
(finished cells kept, report still written, nothing of ours left running)."""

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


def test_ctrl_c_keeps_finished_cells_and_writes_the_report(tmp_path: Path):
    base, reports = 23072, tmp_path / "reports"
    cmd = [*CLI, "matrix", "--clients", "pika-recover", "--faults", "none,connection-cut,none",
           "--count", "400", "--rate", "100", "--warmup", "1", "--fault-for", "2",
           "--reports-dir", str(reports), "--state-dir", str(tmp_path / "state"), "--base-port", str(base)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline and not list(reports.glob("matrix-*/*/results.json")):
            assert proc.poll() is None, proc.stdout.read()
            time.sleep(0.2)
        time.sleep(2)  # into the second cell
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, out
    [mdir] = list(reports.glob("matrix-*"))
    meta = json.loads((mdir / "matrix.json").read_text())
    assert meta["interrupted"] is True
    assert len(meta["runs"]) == 1, meta
    assert (mdir / "report.html").exists()
    assert "interrupted: finished cells kept" in out
    assert ours_running(base, reports) == []
