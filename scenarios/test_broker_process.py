"""Broker process faults: the node is stopped and started again mid-run.

pika-recover (confirms, persistent messages, documented reconnect loop) must lose nothing.
pika-naive (tutorial: transient messages, no confirms, no reconnection) must be caught losing
messages: that the checker fails it is the proof the checker can fail.
"""



def test_recovering_client_survives_graceful_restart(chaos_run, workload):
    chaos_run("pika-recover", "broker-restart", **workload).assert_pass().assert_no_loss()


def test_naive_client_loses_messages_on_restart(chaos_run, workload):
    out = chaos_run("pika-naive", "broker-restart", **workload).assert_verdict("fail")
    assert out.counts["lost"] > 0, out.explain()
