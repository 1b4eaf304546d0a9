import os
import subprocess
import sys

import pytest

from harness.env import procs
from harness.errors import ChaosError


def test_reap_kills_recorded_orphan_but_never_a_stranger(tmp_path):
    marker = f"rabbit-chaos-test-{os.getpid()}"
    orphan = subprocess.Popen([sys.executable, "-c", f"import time; time.sleep(60)  # {marker}"],
                              start_new_session=True)
    stranger = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        rec = procs.PidRecord(tmp_path / "pids.json")
        rec.add("orphan", orphan.pid, marker, pgid=orphan.pid)
        rec.add("stranger", stranger.pid, "no-such-fragment")  # pid recycled into someone else
        data = rec.load()
        data["owner"] = 2**22 + 12345  # the run that wrote this record is gone
        rec.save(data)
        reaped = rec.reap()
        assert reaped == [f"orphan (pid {orphan.pid})"]
        assert orphan.wait(timeout=5) is not None
        assert stranger.poll() is None
        assert not (tmp_path / "pids.json").exists()
    finally:
        for p in (orphan, stranger):
            p.kill()
            p.wait()


def test_record_owned_by_a_live_other_process_is_refused(tmp_path):
    rec = procs.PidRecord(tmp_path / "pids.json")
    rec.save({"owner": os.getppid(), "procs": {}})
    with pytest.raises(ChaosError, match="in use by a running harness"):
        rec.reap()


def test_port_in_use_is_one_clear_error():
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        with pytest.raises(ChaosError) as info:
            procs.ensure_ports_free({"AMQP": port})
    assert f"port {port} (AMQP)" in info.value.problem
    assert "--base-port" in (info.value.fix or "")
