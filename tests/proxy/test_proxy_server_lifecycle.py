"""harness.env.toxiproxy: starting, finding, stopping and reaping servers; client errors."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from harness.env.toxiproxy import (
    PID_FILE,
    ToxiproxyClient,
    ToxiproxyUnavailable,
    embedded_command,
    find_or_start_server,
    free_port,
    kind_of,
    reap_stale,
    wait_ready,
)


def _gone(pid: int) -> bool:
    stat = Path(f"/proc/{pid}/stat")
    return not stat.exists() or stat.read_text().rsplit(")", 1)[1].split()[0] == "Z"


def test_embedded_start_stop_is_idempotent(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TOXIPROXY_URL", raising=False)
    server = find_or_start_server(tmp_path, prefer="embedded")
    assert server.kind == "embedded" and server.owned
    assert "rabbit-chaos" in server.version
    pid = server.proc.pid if server.proc else -1
    assert (tmp_path / PID_FILE).read_text().split() == [str(pid), str(os.getpid())]
    with server.client() as c:
        assert c.version() == server.version
    server.stop()
    server.stop()
    assert _gone(pid)
    assert not (tmp_path / PID_FILE).exists()


def test_toxiproxy_url_is_used_and_never_stopped(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TOXIPROXY_URL", raising=False)
    with find_or_start_server(tmp_path / "a", prefer="embedded") as owned:
        monkeypatch.setenv("TOXIPROXY_URL", owned.url)
        found = find_or_start_server(tmp_path / "b")
        assert found.url == owned.url and not found.owned
        assert found.kind == "embedded"  # told apart by its version string
        found.stop()
        assert ToxiproxyClient(owned.url).version() == owned.version  # still running


def test_explicit_port_and_long_flags(tmp_path: Path) -> None:
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "harness.proxy", "--host", "127.0.0.1", "--port", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        assert "rabbit-chaos" in wait_ready(f"http://127.0.0.1:{port}", 15, proc)
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        assert proc.wait(10) == 0  # SIGTERM is a clean shutdown


def test_reap_stale_kills_only_our_proxy(tmp_path: Path) -> None:
    port = free_port()
    proc = subprocess.Popen(embedded_command("127.0.0.1", port), stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        wait_ready(f"http://127.0.0.1:{port}", 15, proc)
        (tmp_path / PID_FILE).write_text(f"{proc.pid}\n")  # as a killed run would leave it
        assert reap_stale(tmp_path) is True
        proc.wait(10)
        assert not (tmp_path / PID_FILE).exists()
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(5)
    stranger = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"], start_new_session=True)
    try:
        (tmp_path / PID_FILE).write_text(f"{stranger.pid}\n")
        assert reap_stale(tmp_path) is False
        assert stranger.poll() is None  # not a proxy: left alone
    finally:
        stranger.kill()
        stranger.wait(5)


def test_reap_stale_spares_a_live_runs_proxy(tmp_path: Path) -> None:
    port = free_port()
    proc = subprocess.Popen(embedded_command("127.0.0.1", port), stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    owner = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"], start_new_session=True)
    try:
        wait_ready(f"http://127.0.0.1:{port}", 15, proc)
        (tmp_path / PID_FILE).write_text(f"{proc.pid} {owner.pid}\n")  # another run, still alive
        assert reap_stale(tmp_path) is False
        assert proc.poll() is None
    finally:
        for p in (proc, owner):
            os.killpg(p.pid, signal.SIGKILL)
            p.wait(5)


def test_client_errors_are_clear() -> None:
    client = ToxiproxyClient(f"http://127.0.0.1:{free_port()}", timeout=1)
    with pytest.raises(ToxiproxyUnavailable) as info:
        client.version()
    assert "GET /version" in str(info.value)


def test_kind_of() -> None:
    assert kind_of("2.12.0") == "real"
    assert kind_of("2.12.0+rabbit-chaos") == "embedded"
