"""Network faults made through the Toxiproxy API (a real toxiproxy-server or our embedded one;
partition and packet-loss need ours)."""

import pytest


@pytest.mark.parametrize("fault", ["connection-cut", "reset-peer"])
def test_client_survives_a_lost_connection(chaos_run, chaos_client, workload, fault):
    chaos_run(chaos_client, fault, **workload).assert_pass().assert_no_loss().assert_detected()


@pytest.mark.parametrize("fault", ["latency:latency_ms=500", "packet-loss"])
def test_client_survives_a_degraded_link(chaos_run, chaos_client, workload, fault):
    # 500 ms of latency is below every deadline: nothing to notice. Packet loss corrupts the AMQP
    # stream (framing errors, a confirm that never comes): every wait must be bounded
    chaos_run(chaos_client, fault, **workload).assert_pass().assert_no_loss()


@pytest.mark.parametrize("fault", ["partition", "timeout", "heartbeat-starvation:heartbeat_s=5"])
def test_client_detects_a_silent_peer(chaos_run, chaos_client, silent_workload, fault):
    # nothing is closed and nothing arrives: only the client's heartbeat (5 s here) can tell. The
    # fault is held past the client's detection window, so passing proves detection
    out = chaos_run(chaos_client, fault, **silent_workload).assert_pass().assert_no_loss()
    out.assert_detected()


def test_publisher_is_told_when_confirms_come_late(chaos_run, chaos_client, workload):
    # confirms 12 s late for 20 s: past max_block_s (10 s), so the publisher's own deadline must
    # tell the application (publish.info) instead of a silent wait
    fault = "latency:latency_ms=12000,target=publisher@0+20"
    out = chaos_run(chaos_client, fault, **workload).assert_pass().assert_no_loss()
    out.assert_detected(role="publisher", within=10)


@pytest.mark.parametrize("fault", ["connection-cut", "reset-peer"])
def test_naive_client_is_caught_under_network_faults(chaos_run, workload, fault):
    # the tutorial consumer dies with its connection: it gave up, and what it left is stranded
    out = chaos_run("pika-naive", fault, **workload).assert_verdict("fail")
    assert out.doc["headline"] in ("lost", "stranded", "gave up"), out.explain()
