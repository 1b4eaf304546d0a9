"""Reference strategies against a real broker, as real processes (``python -m harness.clients``).

For each strategy: fault-free, every published id is delivered and every history line is a valid
event; under a graceful broker restart mid-publish, the strategy does what its documentation
promises (see EXPECT_RESTART and docs/clients.md). The checker is not used here on purpose: these
tests pin the clients' evidence, so the checker's own tests can trust it.

Detection evidence: each strategy writes what its library tells it (docs/clients.md, "What each
strategy reports"): a memory alarm gives ``conn.blocked`` / ``conn.unblocked``, a deleted queue
``consume.cancelled``, a refused declare ``channel.closed`` with the reply code.

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
def vhost(broker: Any) -> Iterator[str]:
    """A fresh vhost per test (isolation without broker restarts)."""
    name = f"rc-{uuid.uuid4().hex[:8]}"
    broker.mgmt.create_vhost(name, "guest")
    yield name
    with contextlib.suppress(Exception):  # teardown after a broker fault must not mask the result
        broker.mgmt.delete_vhost(name)


@pytest.fixture
def spawn(broker: Any, vhost: str, tmp_path: Path) -> Iterator[Callable[..., Client]]:
    """Start clients of one run (fresh vhost); kills whatever is still running at teardown."""
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


# ---- detection evidence: what each library tells its application --------------------------------

def kinds(client: Client) -> list[str]:
    return [e["kind"] for e in client.events()]


def first(client: Client, kind: str) -> dict[str, Any]:
    return next(e for e in client.events() if e["kind"] == kind)


@contextlib.contextmanager
def memory_alarm(broker: Any) -> Iterator[None]:
    """A node-wide memory alarm (watermark 0), always cleared (0.4, RabbitMQ's default)."""
    broker.ctl("eval", "vm_memory_monitor:set_vm_memory_high_watermark(0.0).")
    try:
        yield
    finally:
        broker.ctl("eval", "vm_memory_monitor:set_vm_memory_high_watermark(0.4).")


#: strategy -> does its library tell the application about connection.blocked *while* the alarm
#: lasts? pika's BlockingConnection runs the callback only after the blocked publish returns.
BLOCKED_TOLD_AT_ONCE = {"pika-async": True, "kombu-drain": True, "aio-pika-robust": True, "pika-recover": False}


@pytest.mark.parametrize("strategy", sorted(BLOCKED_TOLD_AT_ONCE))
def test_memory_alarm_writes_conn_blocked(broker: Any, spawn: Callable[..., Client], strategy: str) -> None:
    publisher = spawn(strategy, "publisher", count=200, rate=50.0)
    publisher.wait_for(lambda: len(publisher.ids("publish.ok")) >= 10, 20, "10 publishes before the alarm")
    with memory_alarm(broker):
        if BLOCKED_TOLD_AT_ONCE[strategy]:
            publisher.wait_for(lambda: "conn.blocked" in kinds(publisher), 15, "conn.blocked during the alarm")
        else:
            publisher.wait_for(publisher.quiet_for(1.5), 15, "the publisher to stall in basic_publish")
            assert "conn.blocked" not in kinds(publisher)  # pika has not told it yet
    publisher.wait_for(lambda: "conn.unblocked" in kinds(publisher), 15, "conn.unblocked after the alarm")
    blocked = first(publisher, "conn.blocked")
    if strategy != "kombu-drain":  # py-amqp passes its own fixed text, not the broker's reason
        assert "memory" in blocked.get("reason", ""), blocked
    assert publisher.wait_exit(60) == 0, publisher.tail()
    assert len(publisher.ids("publish.ok")) == 200
    publisher.assert_valid_history()


#: strategy -> (the deadline param it sets, the words its publish.info must contain)
DEADLINES = {"pika-recover": ("blocked_connection_timeout", "blocked_connection_timeout=2"),
             "kombu-drain": ("confirm_timeout_s", "confirm_timeout_s=2"),
             "aio-pika-robust": ("publish_timeout_s", "publish_timeout_s=2"),
             "aioamqp-reconnect": ("publish_timeout_s", "publish_timeout_s=2")}


@pytest.mark.parametrize("strategy", sorted(DEADLINES))
def test_a_deadline_that_runs_out_is_publish_info_naming_it(broker: Any, spawn: Callable[..., Client],
                                                            strategy: str) -> None:
    param, words = DEADLINES[strategy]
    publisher = spawn(strategy, "publisher", count=100, rate=50.0, params={"retry_delay_s": 0.5, param: 2})
    publisher.wait_for(lambda: len(publisher.ids("publish.ok")) >= 10, 20, "10 publishes before the alarm")
    with memory_alarm(broker):
        publisher.wait_for(lambda: any(words in str(e.get("error")) for e in publisher.events()
                                       if e["kind"] == "publish.info"), 20, f"publish.info naming {param}")
    assert publisher.wait_exit(60) == 0, publisher.tail()
    assert len(publisher.ids("publish.ok", confirmed=True)) == 100  # re-sent after the alarm
    publisher.assert_valid_history()


def publish_raw(broker: Any, vhost: str, *ids: str, arguments: dict[str, Any] | None = None) -> None:
    """Declare the run's queue (as the harness does, or with ``arguments``) and publish ``ids``
    as persistent messages, from the test itself (not the strategy under test)."""
    import pika

    conn = pika.BlockingConnection(pika.URLParameters(broker.amqp_url(vhost)))
    try:
        channel = conn.channel()
        channel.queue_declare("rc-queue", durable=True, arguments=arguments)
        for mid in ids:
            channel.basic_publish("", "rc-queue", mid.encode(), pika.BasicProperties(delivery_mode=2))
    finally:
        conn.close()


#: strategy -> does it consume again after the broker cancelled its consumer (queue deleted)?
RECONSUMES = {"pika-recover": True, "pika-async": True, "kombu-drain": True, "kombu-mixin": True,
              "aio-pika-robust": True, "aioamqp-reconnect": True,
              "pika-naive": False, "aio-pika-plain": False, "aioamqp-naive": False}


@pytest.mark.parametrize("strategy", sorted(RECONSUMES))
def test_queue_delete_writes_consume_cancelled(broker: Any, vhost: str, spawn: Callable[..., Client],
                                               strategy: str) -> None:
    consumer = spawn(strategy, "consumer")
    consumer.wait_for(lambda: "conn.open" in kinds(consumer), 20, "consumer conn.open")
    publish_raw(broker, vhost, "p0-0")
    consumer.wait_for(lambda: "p0-0" in consumer.ids("ack"), 20, "the first message acked (consuming)")
    broker.mgmt.delete_queue(vhost, "rc-queue")
    consumer.wait_for(lambda: "consume.cancelled" in kinds(consumer), 15, "consume.cancelled")
    assert "basic.cancel" in first(consumer, "consume.cancelled")["reason"]
    if RECONSUMES[strategy]:
        publish_raw(broker, vhost, "p0-1")
        consumer.wait_for(lambda: "p0-1" in consumer.ids("deliver"), 20, "a delivery after the queue came back")
        assert consumer.terminate() == 0, consumer.tail()
    elif consumer.terminate() != 0:  # a naive consumer may give up: then it says why
        exit_event = consumer.events()[-1]
        assert exit_event["ok"] is False and "cancel" in exit_event["error"], exit_event
    consumer.assert_valid_history()


#: strategies whose consumer declares the queue itself: a declare the broker refuses (406) must
#: show as channel.closed with its code, whatever the strategy then does about it
DECLARING = ["aio-pika-robust", "aioamqp-reconnect", "kombu-drain", "kombu-mixin", "pika-async", "pika-recover"]


@pytest.mark.parametrize("strategy", DECLARING)
def test_refused_declare_writes_channel_closed(broker: Any, vhost: str, spawn: Callable[..., Client],
                                               strategy: str) -> None:
    publish_raw(broker, vhost, arguments={"x-max-length": 10})  # not what the strategies declare
    consumer = spawn(strategy, "consumer")
    consumer.wait_for(lambda: "channel.closed" in kinds(consumer), 20, "channel.closed")
    closed = first(consumer, "channel.closed")
    assert closed["code"] == 406 and "PRECONDITION_FAILED" in closed["reason"], closed
    if consumer.proc.poll() is None:
        consumer.terminate()
    consumer.assert_valid_history()
