"""Nothing left on a user's broker, no secret in our files: the external backend against our own
local node treated as a broker someone else runs, with its own administrator and a known password.

A run killed with SIGKILL mid-way leaves its vhost (a durable queue holding persistent messages);
the next run on this host deletes it and never a vhost it did not create. Nothing either run
wrote under reports/ holds the password. Ports 24350-24354 (node 24350-24353, proxy API 24354).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import pytest

from harness.env.local import LocalBroker

pytestmark = pytest.mark.broker
ROOT = Path(__file__).resolve().parents[2]
BASE = 24350
USER = "rc-admin"
SECRET = "Sekr1t-pw:7/Q@x"  # ':', '/' and '@' must survive URL quoting, and be found quoted too


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalBroker]:
    b = LocalBroker(tmp_path_factory.mktemp("hygiene-node"), base_port=BASE)
    b.start()
    try:
        b.mgmt._req("PUT", f"/users/{USER}", json={"password": SECRET, "tags": "administrator"})
        b.mgmt._req("PUT", f"/permissions/%2F/{USER}", json={"configure": ".*", "write": ".*", "read": ".*"})
        b.mgmt.create_vhost("users-own-vhost", b.user)  # a vhost the next run must leave alone...
        b.mgmt._req("PUT", "/vhosts/rc-not-ours", json={})  # ...and one named like ours, unlabelled
        yield b
    finally:
        b.stop()


def run_cmd(state: Path, reports: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "harness", "run", "--client", "pika-recover", "--backend", "external",
            "--amqp-url", f"amqp://{USER}@127.0.0.1:{BASE}/", "--management-url", f"http://127.0.0.1:{BASE + 2}",
            "--base-port", str(BASE), "--state-dir", str(state), "--reports-dir", str(reports), *extra]


def env() -> dict[str, str]:
    return {**os.environ, "RABBIT_CHAOS_PASSWORD": SECRET}


def run_vhosts(node: LocalBroker) -> set[str]:
    return {v for v in node.mgmt.vhosts() if v.startswith("rc-") and v != "rc-not-ours"}


def wait_for(pred, timeout: float, what: str):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = pred()
        if got:
            return got
        time.sleep(0.5)
    pytest.fail(f"timed out after {timeout:.0f}s waiting for {what}")


def test_killed_run_vhost_is_reaped_and_no_file_holds_the_password(node: LocalBroker, tmp_path: Path) -> None:
    state, reports = tmp_path / "state", tmp_path / "reports"
    # a slow consumer (0.2 s a message) under a 50 msg/s publisher: a backlog of persistent messages
    killed = subprocess.Popen(run_cmd(state, reports, "--count", "100000", "--rate", "50", "--work", "0.2",
                                      "--warmup", "60"),
                              cwd=ROOT, env=env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        def backlog() -> str | None:
            for v in run_vhosts(node):
                q = node.mgmt.queue(v, "rabbit-chaos.q")
                if q and q.get("durable") and q.get("messages", 0) >= 20:
                    return v
            return None

        left = wait_for(backlog, 120, "the run's queue to hold 20 messages")
    finally:
        killed.send_signal(signal.SIGKILL)
        killed.wait(30)
    # what SIGKILL leaves behind: the vhost, its durable queue, its persistent messages
    time.sleep(1.0)  # let the broker notice the clients' connections are gone (killed with their parent)
    q = node.mgmt.queue(left, "rabbit-chaos.q")
    assert q is not None and q["durable"] and q["messages"] >= 20, q
    desc = next(v for v in node.mgmt._req("GET", "/vhosts") if v["name"] == left)["description"]
    assert desc.startswith(f"rabbit-chaos owner={os.uname().nodename}:{killed.pid} ")

    res = subprocess.run(run_cmd(state, reports, "--count", "40", "--rate", "100", "--warmup", "0.5",
                                 "--fault-for", "0.5"),
                         cwd=ROOT, env=env(), capture_output=True, text=True, timeout=300)
    out = res.stdout + res.stderr
    assert res.returncode == 0, out
    assert left in out and "left by killed rabbit-chaos runs" in out, out  # the user is told
    assert run_vhosts(node) == set(), node.mgmt.vhosts()  # the killed run's and its own: both gone
    assert {"users-own-vhost", "rc-not-ours", "/"} <= set(node.mgmt.vhosts())

    assert SECRET not in out and quote(SECRET, safe="") not in out
    files = [f for f in reports.rglob("*") if f.is_file()]
    assert any(f.parent.name == "config" for f in files)  # the redacted client configs are there
    for f in files:
        data = f.read_bytes()
        for secret in (SECRET, quote(SECRET, safe=""), quote(SECRET)):
            assert secret.encode() not in data, f"{f} holds the password"
    private = state / "private"
    assert not private.exists() or not any(private.rglob("*.json")), list(private.rglob("*"))
