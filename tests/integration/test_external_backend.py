"""The external backend against our own local node treated as a broker someone else runs:
scenarios run through it, process faults skip with the reason, and the unusable cases (wrong
credentials, unreachable URL) are one clear error each, without the password in it."""

import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from harness.cli import app
from harness.env.local import LocalBroker

pytestmark = pytest.mark.broker
ROOT = Path(__file__).resolve().parents[2]
#: the node listens on BASE..BASE+3; every harness run here uses --base-port BASE (an external backend
#: only listens on BASE+4, its proxy API), so the module needs 5 ports in all
BASE = 24350


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory):
    b = LocalBroker(tmp_path_factory.mktemp("external-node"), base_port=BASE)
    b.start()
    try:
        yield b
    finally:
        b.stop()


def test_scenarios_run_through_the_external_backend(node: LocalBroker, tmp_path: Path):
    args = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", "-rs",
            "scenarios/test_control.py::test_fault_free_run_passes[pika-best]",
            "scenarios/test_network_proxy.py::test_client_survives_a_lost_connection[pika-best-connection-cut]",
            "scenarios/test_broker_process.py::test_client_survives_broker_process_faults[pika-best-broker-restart]",
            "--chaos-clients", "pika-best",
            "--chaos-backend", "external",
            "--chaos-amqp-url", f"amqp://guest:guest@127.0.0.1:{BASE}/",
            "--chaos-management-url", f"http://127.0.0.1:{BASE + 2}",
            "--chaos-state-dir", str(tmp_path / "state"), "--chaos-base-port", str(BASE),
            "--chaos-reports", str(tmp_path / "reports")]
    res = subprocess.run(args, cwd=ROOT, capture_output=True, text=True, timeout=600)
    out = res.stdout + res.stderr
    assert res.returncode == 0, out
    assert "2 passed, 1 skipped" in out, out
    assert "needs control of the broker process, which the external backend does not give" in out, out


def test_wrong_credentials_is_one_clear_error_without_the_password(node: LocalBroker, tmp_path: Path):
    res = CliRunner().invoke(app, ["run", "--client", "pika-recover", "--backend", "external",
                                   "--amqp-url", f"amqp://guest:s3cret-wrong@127.0.0.1:{BASE}/",
                                   "--state-dir", str(tmp_path / "s"), "--base-port", str(BASE)])
    assert res.exit_code == 2, res.output
    assert "refused the credentials for user 'guest'" in res.output
    assert "s3cret-wrong" not in res.output


def test_unreachable_url_is_one_clear_error(tmp_path: Path):
    res = CliRunner().invoke(app, ["run", "--client", "pika-recover", "--backend", "external",
                                   "--amqp-url", "amqp://guest:pw@127.0.0.1:1/",
                                   "--state-dir", str(tmp_path / "s"), "--base-port", str(BASE)])
    assert res.exit_code == 2, res.output
    assert "cannot reach an AMQP broker at amqp://guest:***@127.0.0.1:1/" in res.output
    assert ":pw@" not in res.output


def test_compose_without_a_docker_engine_is_one_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("DOCKER_HOST", "unix:///nonexistent/docker.sock")
    res = CliRunner().invoke(app, ["run", "--client", "pika-recover", "--backend", "compose",
                                   "--state-dir", str(tmp_path / "s"), "--base-port", str(BASE)])
    assert res.exit_code == 2, res.output
    assert "no Docker engine is reachable" in res.output
    assert "--backend local" in res.output
