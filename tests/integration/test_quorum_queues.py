"""Quorum queues on one node (RabbitMQ 3.10.8): what changes for a client, measured, and each
best-practice strategy's fault-free run on a quorum queue.

The broker facts docs/clients.md ("Queue types") states are checked here with plain pika, no
strategy's recovery in the way: a quorum queue refuses global QoS, persists transient messages,
marks redeliveries with ``x-delivery-count``, and its consumers are cancelled when it is deleted,
except when it is re-declared by the same name at once (the queue-delete race: no cancel, a
consumer the broker lists and never serves).

One broker per module, one vhost per test. Base port 25340 and state dir /tmp/rc-qtype-state unless
RC_QTYPE_BASE_PORT / RC_QTYPE_STATE_DIR say otherwise.
"""

from __future__ import annotations

import os
import secrets
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pika
import pika.exceptions
import pytest

from harness.clients.strategies._common import queue_arguments
from harness.engine import RunSpec, run_cell
from harness.env.environment import Environment

pytestmark = pytest.mark.broker

STATE_DIR = Path(os.environ.get("RC_QTYPE_STATE_DIR", "/tmp/rc-qtype-state"))
BASE_PORT = int(os.environ.get("RC_QTYPE_BASE_PORT", "25340"))
BEST = ("pika-best", "pika-async-best", "kombu-best", "aio-pika-best", "aioamqp-best")
WORKLOAD: dict[str, Any] = {"count": 200, "rate": 100.0, "warmup_s": 1.0, "settle_s": 1.0,
                            "settle_timeout_s": 20.0, "grace_s": 3.0}


@pytest.fixture
def vhost(env: Environment) -> Iterator[str]:
    """A fresh vhost of this test's own, deleted after it."""
    name = f"rc-qtype-{secrets.token_hex(3)}"
    env.broker.mgmt.create_vhost(name, env.broker.user)
    try:
        yield name
    finally:
        env.broker.mgmt.delete_vhost(name)


def _conn(env: Environment, vhost: str) -> pika.BlockingConnection:
    return pika.BlockingConnection(pika.URLParameters(env.broker.amqp_url(vhost)))


def _quorum(ch: Any, name: str = "q") -> None:
    ch.queue_declare(name, durable=True, arguments=queue_arguments("quorum"))


def test_a_quorum_queue_refuses_global_qos_and_takes_per_consumer_prefetch(env, vhost):
    conn = _conn(env, vhost)
    try:
        ch = conn.channel()
        _quorum(ch)
        ch.basic_qos(prefetch_count=10)  # per consumer: what every strategy sets
        ch.basic_consume("q", lambda *a: None)
    finally:
        conn.close()
    conn = _conn(env, vhost)
    g = conn.channel()
    g.basic_qos(prefetch_count=10, global_qos=True)
    # refused at the consume, and as a connection error: 540 closes the whole connection
    with pytest.raises(pika.exceptions.ConnectionClosedByBroker) as err:
        g.basic_consume("q", lambda *a: None)
    assert err.value.reply_code == 540 and "global qos" in err.value.reply_text, err.value


def test_a_redeclare_with_other_arguments_is_refused(env, vhost):
    conn = _conn(env, vhost)
    try:
        _quorum(conn.channel())
        with pytest.raises(pika.exceptions.ChannelClosedByBroker) as err:
            conn.channel().queue_declare("q", durable=True)  # no x-queue-type: a classic declare
        assert err.value.reply_code == 406 and "x-queue-type" in err.value.reply_text
        _quorum(conn.channel())  # the same arguments: fine
    finally:
        conn.close()


def test_a_quorum_queue_keeps_transient_messages_over_a_restart_a_classic_one_does_not(env, vhost):
    conn = _conn(env, vhost)
    try:
        ch = conn.channel()
        ch.confirm_delivery()
        _quorum(ch, "qq")
        ch.queue_declare("cq", durable=True)
        for q in ("qq", "cq"):
            ch.basic_publish("", q, b"transient", pika.BasicProperties())  # as the tutorials send
    finally:
        conn.close()
    env.broker.stop_node()
    env.broker.start_node()
    conn = _conn(env, vhost)
    try:
        ch = conn.channel()
        kept = {q: ch.queue_declare(q, passive=True, durable=True).method.message_count for q in ("qq", "cq")}
        assert kept == {"qq": 1, "cq": 0}
    finally:
        conn.close()


def test_a_quorum_queue_counts_deliveries(env, vhost):
    conn = _conn(env, vhost)
    try:
        ch = conn.channel()
        _quorum(ch)
        ch.basic_publish("", "q", b"m", pika.BasicProperties())
        ch.confirm_delivery()
        method, _props, _body = ch.basic_get("q")
        assert method is not None
        ch.basic_nack(method.delivery_tag, requeue=True)
        method, props, body = ch.basic_get("q", auto_ack=True)
        assert body == b"m" and method.redelivered and (props.headers or {}).get("x-delivery-count") == 1
        info = env.broker.mgmt.queue(vhost, "q")
        assert info is not None and info.get("type") == "quorum"
    finally:
        conn.close()


def _deleted_while_consumed(env: Environment, vhost: str, queue_type: str, redeclare: bool) -> dict[str, Any]:
    """Consume, delete the queue through the management API (what the queue-delete fault does),
    optionally re-declare it at once, publish 5 more: what did the consumer see?"""
    args = queue_arguments(queue_type)
    conn, pub = _conn(env, vhost), _conn(env, vhost)
    try:
        ch, pch = conn.channel(), pub.channel()
        ch.queue_declare("q", durable=True, arguments=args)
        cancelled: list[float] = []
        got: list[bytes] = []
        ch.add_on_cancel_callback(lambda _f: cancelled.append(time.monotonic()))
        ch.basic_qos(prefetch_count=10)
        ch.basic_consume("q", lambda c, m, _p, body: (got.append(body), c.basic_ack(m.delivery_tag)))
        t0 = time.monotonic()
        env.broker.mgmt.delete_queue(vhost, "q")
        if redeclare:
            pch.queue_declare("q", durable=True, arguments=args)
        conn.process_data_events(time_limit=2)
        if not redeclare:
            pch.queue_declare("q", durable=True, arguments=args)
        for i in range(5):
            pch.basic_publish("", "q", str(i).encode())
        conn.process_data_events(time_limit=2)
        depth = pch.queue_declare("q", passive=True).method
        return {"cancel_s": cancelled[0] - t0 if cancelled else None, "delivered": len(got),
                "consumers": depth.consumer_count, "ready": depth.message_count}
    finally:
        for c in (conn, pub):
            if c.is_open:
                c.close()


def test_a_deleted_quorum_queue_cancels_its_consumer(env, vhost):
    seen = _deleted_while_consumed(env, vhost, "quorum", redeclare=False)
    assert seen["cancel_s"] is not None and seen["cancel_s"] < 1.0, seen
    assert seen["consumers"] == 0 and seen["ready"] == 5, seen


def test_the_quorum_queue_delete_race_leaves_a_consumer_nobody_serves(env, vhost):
    """RabbitMQ 3.10.8: re-declared by the same name at once, the new quorum queue keeps the old
    consumer (same Raft server id): no basic.cancel, listed as a consumer, served nothing. A
    classic queue cancels its consumer either way. (If a broker version stops doing this, this
    test fails: then docs/clients.md's race paragraph is out of date.)"""
    quorum = _deleted_while_consumed(env, vhost, "quorum", redeclare=True)
    assert quorum["cancel_s"] is None and quorum["delivered"] == 0 and quorum["consumers"] == 1, quorum
    env.broker.mgmt.delete_queue(vhost, "q")
    classic = _deleted_while_consumed(env, vhost, "classic", redeclare=True)
    assert classic["cancel_s"] is not None and classic["consumers"] == 0, classic


#: CI runs one strategy's whole quorum run (the idle-check race below runs for all five); the other
#: four are ``slow``: the quorum matrix in docs/recipes.md measures every one under faults
@pytest.mark.parametrize("client", [BEST[0], *(pytest.param(c, marks=pytest.mark.slow) for c in BEST[1:])])
def test_each_best_practice_strategy_runs_on_a_quorum_queue(env, tmp_path, client):
    doc = run_cell(env, RunSpec(client=client, queue_type="quorum", **WORKLOAD), tmp_path / "reports")
    assert doc["verdict"] == "pass", (doc["headline"], doc["reasons"])
    assert doc["spec"]["queue_type"] == "quorum"
    assert doc["counts"]["lost"] == 0


def _events(path: Path) -> list[dict[str, Any]]:
    import json

    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _until(pred: Any, timeout: float) -> bool:
    """Poll ``pred`` (a file the consumer process appends to) until true or ``timeout``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(0.1)
    return bool(pred())


@pytest.mark.parametrize("client", BEST)
def test_the_idle_check_recovers_a_consumer_the_race_left_unserved(env, vhost, tmp_path, client):
    """Each best-practice consumer on a quorum queue, put in the race (delete through the
    management API, re-declare at once: when the consumer loses it, no basic.cancel and a consumer
    the broker never serves): every message still arrives, through the broker's basic.cancel when
    the consumer won the race, else through its idle check (5 s on a quorum queue: the ready
    messages are named in ``consume.cancelled``, and the re-consume on a new channel also frees
    what the broker had checked out to the unserved consumer)."""
    import signal
    import subprocess

    from harness.clients.protocol import ClientConfig
    from harness.clients.supervisor import strategy_command

    history = tmp_path / "consumer-0.jsonl"
    cfg = ClientConfig(run_id=f"race-{client}", proc="consumer-0", role="consumer", queue="q",
                       amqp_url=env.broker.amqp_url(vhost), history=str(history), queue_type="quorum")
    (tmp_path / "cfg.json").write_text(cfg.model_dump_json())
    conn = _conn(env, vhost)
    _quorum(conn.channel())
    with open(tmp_path / "consumer.log", "wb") as log:
        proc = subprocess.Popen([*strategy_command(client), "--config", str(tmp_path / "cfg.json")],
                                stdout=log, stderr=subprocess.STDOUT)
    try:
        assert _until(lambda: any(e["kind"] == "conn.open" for e in _events(history)), 20)
        ch = conn.channel()
        assert _until(lambda: ch.queue_declare("q", passive=True).method.consumer_count == 1, 10)
        env.broker.mgmt.delete_queue(vhost, "q")
        _quorum(ch)  # at once: the race
        ch.confirm_delivery()
        for i in range(150):  # more than the prefetch (100): some stay ready for the idle check to see
            ch.basic_publish("", "q", f"m-{i}".encode(), pika.BasicProperties(delivery_mode=2))
        got = lambda: {e["id"] for e in _events(history) if e["kind"] == "ack"}  # noqa: E731
        notices = lambda: [e.get("reason") for e in _events(history) if e["kind"] == "consume.cancelled"]  # noqa: E731
        assert _until(lambda: len(got()) == 150, 40), (len(got()), notices(),
                                                       (tmp_path / "consumer.log").read_text()[-2000:])
        print(f"{client}: {len(got())} acked; notices: {notices()}")
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
        conn.close()
