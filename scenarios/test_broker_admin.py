"""AMQP-level trouble from the broker's side: forced closes, resource alarms, a deleted queue."""

import pytest


@pytest.mark.parametrize("fault", ["force-close", "memory-alarm"])
def test_client_survives_admin_faults(chaos_run, chaos_client, workload, fault):
    out = chaos_run(chaos_client, fault, **workload).assert_pass().assert_no_loss()
    # the client noticed: a closed connection, or connection.blocked while the alarm held
    assert out.timing["detection_s"] is not None, out.explain()


def test_deleting_the_queue_loses_what_is_published_meanwhile(chaos_run, chaos_client, workload):
    # Messages published to a queue that does not exist are unroutable: the broker confirms them
    # and drops them (no mandatory flag). Every client loses those; the checker must say so.
    out = chaos_run(chaos_client, "queue-delete", **workload).assert_verdict("fail")
    assert out.counts["lost_confirmed"] > 0, out.explain()
    assert out.timing["detection_s"] is not None, out.explain()  # basic.cancel reached the consumer
