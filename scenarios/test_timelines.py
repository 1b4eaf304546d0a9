"""Fault timelines: repeated and overlapping faults, and a seeded random schedule."""


def test_client_survives_repeated_cuts(chaos_run, chaos_client, workload):
    spec = {**workload, "count": 700}
    chaos_run(chaos_client, "cycle(connection-cut,every=2,for=1,times=3)", **spec).assert_pass().assert_no_loss()


def test_client_survives_overlapping_faults(chaos_run, chaos_client, workload):
    out = chaos_run(chaos_client, "latency:latency_ms=200@0+3,reset-peer@1+1", **workload)
    out.assert_pass().assert_no_loss()


def test_seeded_random_schedule_is_recorded(chaos_run, chaos_client, workload):
    out = chaos_run(chaos_client, "random(faults=latency|connection-cut,seed=7,duration=4,for=1..2,gap=0..1)",
                    **workload).assert_pass()
    assert out.doc["timeline"]["seed"] == 7
    assert out.doc["timeline"]["windows"], out.doc["timeline"]
