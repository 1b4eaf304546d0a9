"""Kernel faults: real packet drops inside the clients' own network namespace (needs root;
skipped with the reason elsewhere). TCP retransmits under loss, so a confirming client should
see delay, not data loss; a blackhole is the real partition: nothing is closed, and a healed
link carries on, so only the client's heartbeat can notice it."""

import pytest

pytestmark = pytest.mark.kernel


@pytest.mark.parametrize("fault", ["kernel-loss:loss=0.2", "kernel-reset"])
def test_client_survives_kernel_faults(chaos_run, chaos_client, workload, fault):
    chaos_run(chaos_client, fault, **workload).assert_pass().assert_no_loss()


def test_client_detects_a_kernel_blackhole(chaos_run, chaos_client, silent_workload):
    out = chaos_run(chaos_client, "kernel-blackhole", **silent_workload).assert_pass().assert_no_loss()
    out.assert_detected()
