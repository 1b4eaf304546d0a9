"""Fault timelines: repeated and overlapping faults, and a seeded random schedule."""


def test_client_survives_repeated_cuts(chaos_run, chaos_client, workload):
    spec = {**workload, "count": 700}
    out = chaos_run(chaos_client, "cycle(connection-cut,every=2,for=1,times=3)", **spec)
    out.assert_pass().assert_no_loss().assert_detected()


def test_client_survives_overlapping_faults(chaos_run, chaos_client, workload):
    out = chaos_run(chaos_client, "latency:latency_ms=200@0+3,reset-peer@1+1", **workload)
    out.assert_pass().assert_no_loss()


def test_seeded_random_schedule_is_recorded_and_reproducible(chaos_run, chaos_client, workload):
    from harness.faults.timeline import Timeline

    schedule = "random(faults=latency|connection-cut,duration=4,for=1..2,gap=0..1)"
    out = chaos_run(chaos_client, schedule, seed=7, **workload).assert_pass()
    recorded = out.doc["timeline"]
    assert recorded["seed"] == 7 and out.doc["seed"] == 7
    assert recorded["windows"], recorded
    # the same string and seed give the same schedule: the run can be replayed exactly
    assert recorded["spec"] == Timeline.parse(schedule, hold_s=4, seed=7).spec()
