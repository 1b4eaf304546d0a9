"""The local node's lifecycle against the real rabbitmq-server: boot, restart, crash, and the
reaping of what a SIGKILLed run leaves behind. Uses hardening-D's ports (24300-24304) and its own state dirs."""

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from harness.env import local, procs
from harness.env.local import LocalBroker
from harness.errors import ChaosError

pytestmark = pytest.mark.broker
BASE = 24300


def _ours_running(node: str) -> list[int]:
    return [p for p in procs._pids() if procs.matches(p, f"RABBITMQ_NODENAME={node}")
            or procs.matches(p, f"-port {BASE + 3}")]


def test_missing_broker_binary_is_one_clear_error(tmp_path, monkeypatch):
    monkeypatch.setattr(local, "RABBIT_BIN", tmp_path / "nowhere")
    with pytest.raises(ChaosError) as info:
        LocalBroker(tmp_path / "s", base_port=BASE).start()
    assert "RabbitMQ is not installed" in info.value.problem
    assert "bootstrap.sh" in (info.value.fix or "")


def test_boot_restart_crash_and_stop_leave_nothing(tmp_path):
    b = LocalBroker(tmp_path / "state", base_port=BASE)
    try:
        b.start()
        assert b.boot_s is not None
        print(f"cold boot {b.boot_s:.2f}s")
        assert b.versions()["broker"]
        b.mgmt.create_vhost("v", b.user)
        assert "v" in b.mgmt.vhosts()
        b.mgmt.delete_vhost("v")
        # everything we listen on is loopback
        listening = subprocess.run(["ss", "-ltnpH"], capture_output=True, text=True).stdout
        for line in listening.splitlines():
            if any(f":{p} " in line for p in b.ports.as_dict().values()):
                assert "127.0.0.1:" in line or "[::1]:" in line, line
        pid = b.beam_pid()
        b.kill_node()
        assert not procs.alive(pid)
        b.start_node()
        assert b.beam_pid() != pid
    finally:
        b.stop()
    assert _ours_running(b.node) == []


def test_a_sigkilled_run_is_reaped_by_the_next(tmp_path):
    state = tmp_path / "state"
    script = textwrap.dedent(f"""
        from pathlib import Path
        from harness.env.local import LocalBroker
        b = LocalBroker(Path({str(state)!r}), base_port={BASE})
        b.start()
        print("ready", flush=True)
        import time; time.sleep(600)
    """)
    owner = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        assert owner.stdout.readline().strip() == "ready"
        node = LocalBroker(state, base_port=BASE).node
        assert _ours_running(node), "the broker should be up"
        os.kill(owner.pid, signal.SIGKILL)
        owner.wait()
        assert _ours_running(node), "SIGKILL of the owner leaves the broker behind (until reaped)"
        # a run under another state dir is told the ports hold a leftover of ours, and how to reap it
        with pytest.raises(ChaosError) as info:
            LocalBroker(tmp_path / "other", base_port=BASE).start()
        assert f"a broker left by a run killed under state dir {state}" in info.value.problem
        assert f"run with --state-dir {state} to reap it" in (info.value.fix or "")
        nxt = LocalBroker(state, base_port=BASE)
        nxt.start()  # reaps the orphan, then boots on the same ports
        nxt.stop()
        assert _ours_running(node) == []
    finally:
        owner.kill()
        LocalBroker(state, base_port=BASE).record.reap()


def test_state_dir_in_use_by_a_live_harness_is_refused(tmp_path):
    rec = procs.PidRecord(tmp_path / "state" / "pids.json")
    rec.save({"owner": os.getppid(), "procs": {}})
    with pytest.raises(ChaosError, match="in use by a running harness"):
        LocalBroker(tmp_path / "state", base_port=BASE).start()


def test_port_in_use_names_the_port(tmp_path):
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", BASE))
        s.listen()
        with pytest.raises(ChaosError, match=rf"port {BASE} \(AMQP\)"):
            LocalBroker(tmp_path / "s", base_port=BASE).start()
    assert Path(tmp_path / "s").exists()
