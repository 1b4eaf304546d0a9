"""AMQP-level trouble from the broker's side: forced closes, resource alarms, a deleted queue,
the delivery-acknowledgement timeout.

The client under test (``--chaos-clients``, a best-practice strategy) must pass each and notice
it; the baselines show what the checker says of a client that does not.
"""


def test_client_survives_a_forced_close(chaos_run, chaos_client, workload):
    out = chaos_run(chaos_client, "force-close", **workload).assert_pass().assert_no_loss()
    out.assert_detected()  # connection.close 320 reached the client


def test_client_is_told_of_a_memory_alarm(chaos_run, chaos_client, workload):
    # held 20 s (the fault's default): longer than max_block_s (10 s), so the publisher must hear
    # connection.blocked or time its publishes out, and say so, instead of waiting it out silently
    out = chaos_run(chaos_client, "memory-alarm", **workload).assert_pass().assert_no_loss()
    out.assert_detected(role="publisher", within=10)


def test_client_survives_a_deleted_queue(chaos_run, chaos_client, workload):
    # mandatory publishes come back (basic.return) while the queue is gone and are re-sent once it
    # is back; the consumer hears basic.cancel, re-declares and re-consumes
    # messages in the queue (or on their way into it) when it was deleted went with it by the fault's
    # design: the checker counts them apart (deleted_with_queue), never as the client's loss
    out = chaos_run(chaos_client, "queue-delete", **workload)
    out.assert_pass().assert_no_loss().assert_detected(role="consumer")


def test_client_survives_the_consumer_timeout(chaos_run, chaos_client, workload):
    # consumer_timeout lowered to 1 s for 15 s; the consumer is forced to reconnect into it, so its
    # new channel is closed (406 PRECONDITION_FAILED) while it holds deliveries longer than that
    fault = "consumer-timeout@0+15,force-close:target=consumer@3+0"
    out = chaos_run(chaos_client, fault, **workload).assert_pass().assert_no_loss()
    out.assert_detected(role="consumer")


def test_baseline_loses_what_is_published_into_a_deleted_queue(chaos_run, workload):
    # pika-recover publishes without mandatory: the broker confirms what it cannot route and
    # drops it. The checker says "lost", with the cause
    out = chaos_run("pika-recover", "queue-delete", **workload).assert_verdict("fail")
    assert out.doc["headline"] == "lost", out.explain()
    assert out.counts["lost_confirmed"] > 0, out.explain()
    assert any("unroutable" in r for r in out.doc["reasons"]), out.explain()


def test_baseline_waits_out_a_memory_alarm_silently(chaos_run, workload):
    # pika without a blocked-connection deadline hears connection.blocked only at the heal
    out = chaos_run("pika-recover", "memory-alarm", **workload).assert_verdict("fail")
    assert out.doc["headline"] == "blocked", out.explain()
