"""Reference strategies against a real broker, as real processes (``python -m harness.clients``).

For each strategy: fault-free, every published id is delivered and every history line is a valid
event; under a graceful broker restart mid-publish, the strategy does what its documentation
promises (see EXPECT_RESTART and docs/clients.md). The checker is not used here on purpose: these
tests pin the clients' evidence, so the checker's own tests can trust it.

One broker per session (boot costs seconds), one vhost per test (isolation without restarts).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from harness.clients.registry import strategies
from harness.history import validate_event

pytestmark = pytest.mark.broker

ROOT = Path(__file__).resolve().parents[2]
STATE_DIR = Path("/tmp/rc-clients-state")
BASE_PORT = 22672
COUNT = 300
RATE = 200.0

#: strategy -> what a graceful restart mid-publish must show:
#:   "recovers": publisher exits 0 with every id confirmed; the consumer reconnects and gets them all
#:   "survives": both reconnect and carry on (publisher exits 0, consumer until SIGTERM); without
#:               confirms nothing is promised, so loss is observed, not asserted
#:   "gives-up": the consumer exits non-zero (it has no reconnection)
EXPECT_RESTART: dict[str, str] = {
    "pika-recover": "recovers",
    "pika-naive": "gives-up",
    "pika-retry-loop": "survives",
    "pika-retry-decorator": "survives",
    "pika-threaded-ack": "recovers",
    "chat-app": "gives-up",
    "kombu-drain": "recovers",
    "kombu-mixin": "recovers",
    "aio-pika-robust": "recovers",
    "aio-pika-plain": "gives-up",
    "aioamqp-reconnect": "recovers",
    "aioamqp-naive": "gives-up",
    "pika-async": "recovers",
}
ALL = sorted(EXPECT_RESTART)


@pytest.fixture(scope="module")
def broker() -> Iterator[Any]:
    from harness.env.local import LocalBroker

    b = LocalBroker(STATE_DIR, base_port=BASE_PORT)
    try:
        b.start()
        yield b
    finally:
        b.stop()


class Client:
    """One client process and its history file."""

    def __init__(self, strategy: str, cfg: dict[str, Any], workdir: Path) -> None:
        self.strategy = strategy
        self.history = Path(cfg["history"])
        cfg_path = workdir / f"{cfg['proc']}.json"
        cfg_path.write_text(json.dumps(cfg))
        self.log = workdir / f"{cfg['proc']}.log"
        with open(self.log, "wb") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "harness.clients", strategy, "--config", str(cfg_path)],
                cwd=ROOT, stdout=out, stderr=subprocess.STDOUT,
                env={**os.environ, "PYTHONUNBUFFERED": "1"},
            )

    def events(self) -> list[dict[str, Any]]:
        if not self.history.exists():
            return []
        return [json.loads(line) for line in self.history.read_text().splitlines() if line.strip()]

    def ids(self, kind: str, **match: Any) -> set[str]:
        return {e["id"] for e in self.events()
                if e["kind"] == kind and all(e.get(k) == v for k, v in match.items())}

    def wait_for(self, pred: Callable[[], bool], timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while not pred():
            if time.monotonic() > deadline:
                pytest.fail(f"{self.strategy}: timed out waiting for {what}\n{self.tail()}")
            time.sleep(0.1)

    def quiet_for(self, seconds: float) -> Callable[[], bool]:
        """A predicate: true once the history has not grown for ``seconds``."""
        state = {"size": -1, "since": time.monotonic()}

        def pred() -> bool:
            size = self.history.stat().st_size if self.history.exists() else 0
            if size != state["size"]:
                state["size"], state["since"] = size, time.monotonic()
            return time.monotonic() - state["since"] >= seconds

        return pred

    def wait_exit(self, timeout: float) -> int:
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            pytest.fail(f"{self.strategy}: process did not exit within {timeout}s\n{self.tail()}")

    def terminate(self, timeout: float = 5.0) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        return self.wait_exit(timeout)

    def tail(self) -> str:
        text = self.log.read_text(errors="replace") if self.log.exists() else ""
        return "log tail:\n" + "\n".join(text.splitlines()[-20:])

    def assert_valid_history(self) -> None:
        lines = [ln for ln in self.history.read_text().splitlines() if ln.strip()]
        for n, line in enumerate(lines, 1):
            assert validate_event(json.loads(line)) == [], f"{self.history.name}:{n}: {line}"
        kinds = [json.loads(ln)["kind"] for ln in lines]
        assert kinds[0] == "client.start" and kinds[-1] == "client.exit", kinds[:3] + kinds[-3:]


@pytest.fixture
def spawn(broker: Any, tmp_path: Path) -> Iterator[Callable[..., Client]]:
    """Start clients of one run (fresh vhost); kills whatever is still running at teardown."""
    vhost = f"rc-{uuid.uuid4().hex[:8]}"
    broker.mgmt.create_vhost(vhost, "guest")
    started: list[Client] = []

    def start(strategy: str, role: str, **over: Any) -> Client:
        proc = f"{role}-0"
        cfg = {"run_id": f"test-{vhost}", "proc": proc, "role": role, "amqp_url": broker.amqp_url(vhost),
               "queue": "rc-queue", "history": str(tmp_path / f"{proc}.jsonl"), "count": COUNT,
               "rate": RATE, "id_prefix": "p0-", "params": {"retry_delay_s": 0.5}, **over}
        client = Client(strategy, cfg, tmp_path)
        started.append(client)
        return client

    yield start
    for c in started:
        if c.proc.poll() is None:
            c.proc.kill()
            c.proc.wait(5)
    with contextlib.suppress(Exception):  # teardown after a broker fault must not mask the result
        broker.mgmt.delete_vhost(vhost)


def test_strategies_are_registered() -> None:
    assert set(ALL) <= set(strategies())


@pytest.mark.parametrize("strategy", ALL)
def test_fault_free_delivers_everything(spawn: Callable[..., Client], strategy: str) -> None:
    consumer = spawn(strategy, "consumer")
    consumer.wait_for(lambda: "conn.open" in {e["kind"] for e in consumer.events()}, 20, "consumer conn.open")
    publisher = spawn(strategy, "publisher")
    assert publisher.wait_exit(60) == 0, publisher.tail()
    published = publisher.ids("publish.ok")
    assert len(published) == COUNT
    consumer.wait_for(lambda: published <= consumer.ids("deliver"), 30, "every id delivered")
    assert consumer.ids("ack") >= published
    assert consumer.terminate() == 0, consumer.tail()
    publisher.assert_valid_history()
    consumer.assert_valid_history()
    assert consumer.events()[-1]["reason"] == "sigterm"


@pytest.mark.parametrize("strategy", ALL)
def test_graceful_restart_mid_publish(broker: Any, spawn: Callable[..., Client], strategy: str) -> None:
    consumer = spawn(strategy, "consumer")
    consumer.wait_for(lambda: "conn.open" in {e["kind"] for e in consumer.events()}, 20, "consumer conn.open")
    publisher = spawn(strategy, "publisher", rate=100.0)
    publisher.wait_for(lambda: len(publisher.ids("publish.ok")) >= 50, 20, "50 publishes before the fault")
    broker.stop_node()
    broker.start_node()
    expect = EXPECT_RESTART[strategy]
    if expect in ("recovers", "survives"):
        assert publisher.wait_exit(90) == 0, publisher.tail()
        assert len(publisher.ids("publish.ok")) == COUNT
        confirmed = publisher.ids("publish.ok", confirmed=True)
        if expect == "recovers":
            assert len(confirmed) == COUNT
        consumer.wait_for(lambda: confirmed <= consumer.ids("deliver"), 60, "every confirmed id delivered")
        consumer.wait_for(consumer.quiet_for(2.0), 30, "the consumer to go quiet")
        assert consumer.terminate() == 0, consumer.tail()
        kinds = [e["kind"] for e in consumer.events()]
        assert "conn.lost" in kinds and kinds.count("conn.open") >= 2
    else:
        assert consumer.wait_exit(30) != 0, consumer.tail()
        assert consumer.events()[-1]["ok"] is False
        assert "conn.lost" in {e["kind"] for e in consumer.events()}
        publisher.wait_exit(60)
    publisher.assert_valid_history()
    consumer.assert_valid_history()
