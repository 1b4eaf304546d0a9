"""Network faults made through the Toxiproxy API (a real toxiproxy-server or our embedded one)."""

import pytest


@pytest.mark.parametrize("fault", ["connection-cut", "reset-peer", "latency:latency_ms=500", "timeout",
                                   "partition"])
def test_client_survives_network_faults(chaos_run, chaos_client, workload, fault):
    chaos_run(chaos_client, fault, **workload).assert_pass().assert_no_loss()


@pytest.mark.parametrize("fault", ["connection-cut", "reset-peer"])
def test_naive_client_is_caught_under_network_faults(chaos_run, workload, fault):
    # the tutorial consumer dies with its connection: what it leaves in the queue is stranded
    chaos_run("pika-naive", fault, **workload).assert_verdict("fail")
