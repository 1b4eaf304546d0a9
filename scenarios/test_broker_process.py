"""Broker process faults: the node is stopped gracefully, killed (SIGKILL) or frozen (SIGSTOP).

The client under test (--chaos-clients, default pika-recover: confirms, persistent messages,
the documented reconnect loop) must lose nothing. pika-naive (tutorial: transient messages, no
confirms, no reconnection) must be caught losing messages: that the checker fails it is the
proof that the checker can fail.
"""

import pytest


@pytest.mark.parametrize("fault", ["broker-restart", "broker-crash", "broker-pause"])
def test_client_survives_broker_process_faults(chaos_run, chaos_client, workload, fault):
    chaos_run(chaos_client, fault, **workload).assert_pass().assert_no_loss()


def test_naive_client_loses_messages_on_restart(chaos_run, workload):
    out = chaos_run("pika-naive", "broker-restart", **workload).assert_verdict("fail")
    assert out.counts["lost"] > 0, out.explain()
