"""Backends without a broker: the compose backend's Docker SDK calls against a fake client (these
machines have no Docker engine), the compose file itself, and the external backend's input
checks and credential redaction."""

from pathlib import Path

import pytest
import yaml

from harness.env import compose
from harness.env.compose import BROKER_CONTAINER, PROXY_CONTAINER, ComposeBroker
from harness.env.external import ExternalBroker, redact
from harness.errors import ChaosError, FaultUnavailable, HarnessFailure

ROOT = Path(__file__).resolve().parents[2]


class FakeContainer:
    def __init__(self, name: str, calls: list, status: str = "running") -> None:
        self.name, self.calls, self.status = name, calls, status

    def reload(self) -> None:
        pass

    def stop(self, timeout: int) -> None:
        self.calls.append(("stop", self.name, timeout))
        self.status = "exited"

    def start(self) -> None:
        self.calls.append(("start", self.name))
        self.status = "running"

    def kill(self, signal: str) -> None:
        self.calls.append(("kill", self.name, signal))
        self.status = "exited"

    def pause(self) -> None:
        self.calls.append(("pause", self.name))
        self.status = "paused"

    def unpause(self) -> None:
        self.calls.append(("unpause", self.name))
        self.status = "running"

    def exec_run(self, cmd: list) -> tuple[int, bytes]:
        self.calls.append(("exec", self.name, tuple(cmd)))
        return 0, b"ok"


class FakeDocker:
    def __init__(self, statuses: dict[str, str] | None = None) -> None:
        self.calls: list = []
        st = statuses or {}
        self.by_name = {n: FakeContainer(n, self.calls, st.get(n, "running"))
                        for n in (BROKER_CONTAINER, PROXY_CONTAINER)}
        self.containers = self

    def get(self, name: str) -> FakeContainer:
        if name not in self.by_name:
            raise LookupError(name)
        return self.by_name[name]


def test_compose_process_faults_map_to_docker_calls(monkeypatch):
    fake = FakeDocker()
    b = ComposeBroker(client=fake)
    monkeypatch.setattr(b, "wait_ready", lambda timeout: fake.calls.append(("wait_ready",)))
    b.stop_node(timeout=30)
    assert b.node_state() == "down"
    b.start_node()
    assert b.node_state() == "running"
    b.kill_node()
    b.start_node()
    b.pause()
    assert b.node_state() == "paused"
    b.resume()
    b.ctl("set_vm_memory_high_watermark", "0.4")
    assert fake.calls == [
        ("stop", BROKER_CONTAINER, 30), ("start", BROKER_CONTAINER), ("wait_ready",),
        ("kill", BROKER_CONTAINER, "SIGKILL"), ("start", BROKER_CONTAINER), ("wait_ready",),
        ("pause", BROKER_CONTAINER), ("unpause", BROKER_CONTAINER),
        ("exec", BROKER_CONTAINER, ("rabbitmqctl", "set_vm_memory_high_watermark", "0.4")),
    ]


def test_compose_stop_never_leaves_the_broker_paused(monkeypatch):
    fake = FakeDocker()
    b = ComposeBroker(client=fake)
    b.pause()
    b.stop()
    assert fake.by_name[BROKER_CONTAINER].status == "running"


def test_compose_start_requires_running_containers():
    b = ComposeBroker(client=FakeDocker({PROXY_CONTAINER: "exited"}))
    with pytest.raises(ChaosError) as info:
        b.start()
    assert "rabbit-chaos-toxiproxy is exited" in info.value.problem
    assert "docker compose up" in info.value.fix


def test_no_docker_engine_is_one_clear_error(monkeypatch):
    monkeypatch.setenv("DOCKER_HOST", "unix:///nonexistent/docker.sock")
    with pytest.raises(ChaosError) as info:
        compose.docker_client()
    assert "no Docker engine is reachable" in info.value.problem
    assert "--backend local" in info.value.fix


def test_compose_file_is_pinned_and_loopback_only():
    doc = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    services = doc["services"]
    assert set(services) == {"rabbitmq", "toxiproxy"}
    for svc in services.values():
        image = svc["image"]
        assert ":" in image and not image.endswith(":latest"), image
        for mapping in svc.get("ports", []):
            assert mapping.startswith("127.0.0.1:"), mapping
        assert "healthcheck" in svc
    assert services["rabbitmq"]["container_name"] == BROKER_CONTAINER
    assert services["toxiproxy"]["container_name"] == PROXY_CONTAINER
    assert "127.0.0.1:25670-25679:25670-25679" in services["toxiproxy"]["ports"]


def test_redact_hides_passwords():
    assert redact("amqp://bob:s3cret@mq.example:5672/v") == "amqp://bob:***@mq.example:5672/v"
    assert redact("amqp://mq.example/") == "amqp://mq.example/"


def test_external_needs_a_url_and_rejects_other_schemes(monkeypatch):
    monkeypatch.delenv("RABBIT_CHAOS_AMQP_URL", raising=False)
    with pytest.raises(ChaosError, match="needs an AMQP URL"):
        ExternalBroker(None)
    with pytest.raises(ChaosError) as info:
        ExternalBroker("http://bob:s3cret@mq.example/")
    assert "s3cret" not in str(info.value)


def test_external_has_no_process_faults():
    b = ExternalBroker("amqp://bob:pw@127.0.0.1:1/")
    assert not b.capabilities.process and not b.capabilities.ctl
    assert b.node_state() == "unknown"
    for op in (b.stop_node, b.start_node, b.kill_node, b.pause, b.resume):
        with pytest.raises(HarnessFailure, match="external backend has no control of the broker process"):
            op()
    with pytest.raises(HarnessFailure, match="rabbitmqctl"):
        b.ctl("status")


@pytest.mark.parametrize(("fault", "needs"), [("broker-restart", "broker process"), ("memory-alarm", "rabbitmqctl"),
                                              ("consumer-timeout", "rabbitmqctl")])
def test_external_backend_reports_unavailable_faults_before_the_run(fault, needs):
    from types import SimpleNamespace

    from harness.engine import check_available
    from harness.faults.registry import parse

    env = SimpleNamespace(broker=ExternalBroker("amqp://bob:pw@127.0.0.1:1/"))
    with pytest.raises(FaultUnavailable) as info:
        check_available(parse(fault), env)
    assert needs in info.value.problem and "external" in info.value.problem


def test_external_backend_can_still_force_close_and_cut():
    from types import SimpleNamespace

    from harness.engine import check_available
    from harness.faults.registry import parse

    env = SimpleNamespace(broker=ExternalBroker("amqp://bob:pw@127.0.0.1:1/"))
    for fault in ("force-close", "queue-delete", "connection-cut", "latency"):
        check_available(parse(fault), env)
