"""Network faults made through the Toxiproxy API (real toxiproxy-server or our embedded one)."""

import pytest


@pytest.mark.parametrize("fault", ["connection-cut", "reset-peer"])
def test_recovering_client_survives_network_faults(chaos_run, workload, fault):
    chaos_run("pika-recover", fault, **workload).assert_pass().assert_no_loss()


@pytest.mark.parametrize("fault", ["connection-cut", "reset-peer"])
def test_naive_client_is_caught_under_network_faults(chaos_run, workload, fault):
    # the tutorial consumer dies with its connection: what it leaves in the queue is stranded
    chaos_run("pika-naive", fault, **workload).assert_verdict("fail")
