"""Broker process faults: the node is stopped gracefully, killed (SIGKILL) or frozen (SIGSTOP).

The client under test (``--chaos-clients``: confirms, persistent messages, reconnect and
re-publish) must lose nothing and notice each. pika-naive (tutorial: transient messages, no
confirms, no reconnection) must be caught: that the checker fails it is the proof that it can.
"""

import pytest


@pytest.mark.parametrize("fault", ["broker-restart", "broker-crash"])
def test_client_survives_broker_process_faults(chaos_run, chaos_client, workload, fault):
    chaos_run(chaos_client, fault, **workload).assert_pass().assert_no_loss().assert_detected()


def test_client_detects_a_frozen_broker(chaos_run, chaos_client, silent_workload):
    # SIGSTOP: TCP still connects, AMQP is silent; only the client's heartbeat can tell. Held for
    # the client's detection window + margin (silent_workload: heartbeat 5 s)
    out = chaos_run(chaos_client, "broker-pause", **silent_workload).assert_pass().assert_no_loss()
    out.assert_detected()


def test_naive_client_loses_messages_on_restart(chaos_run, workload):
    out = chaos_run("pika-naive", "broker-restart", **workload).assert_verdict("fail")
    assert out.counts["lost"] > 0 or out.counts.get("stranded", 0) > 0, out.explain()
