"""Control runs: no fault. Every client must pass; a failure here is a harness or client bug."""

import pytest


@pytest.mark.parametrize("client", ["pika-recover", "pika-naive"])
def test_fault_free_run_passes(chaos_run, workload, client):
    chaos_run(client, "none", **workload).assert_pass().assert_no_loss()
