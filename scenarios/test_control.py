"""Control runs: no fault. Every client must pass; a failure here is a harness or client bug."""

import pytest


def test_fault_free_run_passes(chaos_run, chaos_client, workload):
    chaos_run(chaos_client, "none", **workload).assert_pass().assert_no_loss()


@pytest.mark.parametrize("client", ["pika-naive"])
def test_baseline_passes_without_faults(chaos_run, workload, client):
    # the tutorial client is only wrong under faults: without one it must pass too
    chaos_run(client, "none", **workload).assert_pass().assert_no_loss()
