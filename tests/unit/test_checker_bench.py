"""The checker benchmark's plumbing (fresh-process samples, headline, goals), on a tiny history.

Timing itself is never asserted here (noisy shared box): only that the numbers reported are the
ones the samples give and that the goals are judged from them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from harness.bench.checker import FLOOR_BAND, GOAL_RATIO_2N_N, bench, judge_ratio, measure, synthetic
from harness.history import write_history


def test_bench_reports_every_round_and_judges_the_goals_from_its_headline() -> None:
    out = bench(400, rounds=2, repeat=1)
    assert out["n_events"] == len(synthetic(400))
    assert out["n_events_2n"] == len(synthetic(800))
    n_rounds = len(out["seconds_n_rounds"])
    assert 2 <= n_rounds <= 6  # at least --rounds, at most the default 3 x rounds
    assert len(out["seconds_2n_rounds"]) == len(out["ratio_2n_n_rounds"]) == n_rounds
    assert out["seconds_n"] == min(out["seconds_n_rounds"])
    assert out["seconds_2n"] == min(out["seconds_2n_rounds"])
    t_n, t_2n, eps = out["seconds_n_rounds"], out["seconds_2n_rounds"], 1e-4  # times are rounded to 0.1 ms
    for k in range(n_rounds):  # quiet: both halves within 10 % of their size's least time
        quiet = t_n[k] <= 1.1 * min(t_n) and t_2n[k] <= 1.1 * min(t_2n)
        if abs(t_n[k] - 1.1 * min(t_n)) > eps and abs(t_2n[k] - 1.1 * min(t_2n)) > eps:  # not a rounding edge
            assert (k in out["quiet_rounds"]) is quiet
    if len(out["quiet_rounds"]) < 2:  # a loud box: more rounds were tried, and the ratio is not judged
        assert n_rounds == 6 and out["ratio_2n_n"] is None and out["goals_met"]["ratio_2n_n"] is None
    else:
        quiet = [out["ratio_2n_n_rounds"][k] for k in out["quiet_rounds"]]
        assert min(quiet) - 0.01 <= out["ratio_2n_n"] <= max(quiet) + 0.01  # their median (of rounded times)
        if FLOOR_BAND[0] <= out["floor_ratio_2n_n"] <= FLOOR_BAND[1]:
            assert out["goals_met"]["ratio_2n_n"] is (out["ratio_2n_n"] <= GOAL_RATIO_2N_N)
        else:  # the control says the sizes ran on differently loaded boxes: more rounds, no verdict
            assert n_rounds == 6 and out["goals_met"]["ratio_2n_n"] is None
    assert out["ratio_2n_n_least"] == pytest.approx(out["seconds_2n"] / out["seconds_n"], rel=0.15)  # rounded times
    assert out["goals_met"]["events_per_s"] is (out["events_per_s"] >= out["goals"]["events_per_s"])
    met = out["goals_met"].values()
    assert out["goal_verdict"] == ("fail" if False in met else "unknown" if None in met else "pass")
    assert out["check_verdict"] == "pass"  # the synthetic run is a sound one: the checker must say so
    json.dumps(out)  # one JSON line on the command line


def test_quiet_rounds_judge_the_ratio_and_a_loud_round_does_not() -> None:
    # rounds 0, 1, 3 are quiet (both times within 10 % of the least); round 2's 2n half was slowed,
    # round 4's n half was slowed (its ratio of 1.5 would "meet" the goal: it must not count)
    n = [1.00, 1.05, 1.02, 1.00, 1.40]
    n2 = [2.05, 2.10, 2.90, 2.06, 2.10]
    j = judge_ratio(n, n2)
    assert j["quiet_rounds"] == [0, 1, 3]
    assert j["ratio"] == 2.05 and j["met"] is True
    j = judge_ratio(n, [2.40, 2.45, 2.90, 2.42, 2.10])  # the least 2n-time is in loud round 4
    assert j["quiet_rounds"] == [] and j["met"] is None and "too loud" in j["reason"]


def test_a_quiet_run_over_the_goal_fails_it() -> None:
    j = judge_ratio([0.57, 0.58, 0.60], [1.23, 1.24, 1.27])
    assert j["quiet_rounds"] == [0, 1, 2]
    assert j["ratio"] == 2.138 and j["met"] is False and ">" in j["reason"]


def test_a_control_out_of_its_band_makes_the_ratio_unknown() -> None:
    # three quiet rounds by their own least times, but the bare loop (linear) ran 2.3x slower at 2n:
    # every 2n process had a loaded box (the least 2n-time is a loaded one), so no verdict
    n, n2 = [0.56, 0.56, 0.57], [1.31, 1.32, 1.37]
    loaded_2n = ([0.10, 0.10, 0.10], [0.23, 0.23, 0.23])
    j = judge_ratio(n, n2, loaded_2n)
    assert j["quiet_rounds"] == [0, 1, 2] and j["ratio"] == 2.357 and j["floor_ratio"] == 2.3
    assert j["met"] is None and "the 2n processes ran on a more loaded box" in j["reason"]
    loaded_n = ([0.12, 0.12, 0.12], [0.20, 0.20, 0.20])  # ratio 1.67: the n processes were the slow ones
    j = judge_ratio([0.62, 0.62, 0.63], [1.16, 1.17, 1.18], loaded_n)
    assert j["met"] is None and "the n processes ran" in j["reason"]  # 1.887 would have "met" 2.1
    quiet = ([0.10, 0.10, 0.10], [0.196, 0.196, 0.197])
    j = judge_ratio([0.49, 0.50, 0.49], [1.02, 1.04, 1.03], quiet)
    assert j["floor_ratio"] == 1.96 and j["met"] is True and j["ratio"] == 2.082
    with pytest.raises(ValueError, match="one control time"):
        judge_ratio(n, n2, ([0.1], [0.2]))


def test_too_few_quiet_rounds_are_unknown_not_met() -> None:
    j = judge_ratio([1.0, 1.5], [2.0, 2.2])  # round 1 loud: one quiet round, three needed
    assert j["quiet_rounds"] == [0] and j["ratio"] is None and j["met"] is None
    assert "1 of 2 rounds were quiet" in j["reason"]
    with pytest.raises(ValueError, match="one n-time and one 2n-time per round"):
        judge_ratio([1.0], [])


def test_measure_refuses_a_history_with_problems(tmp_path: Path) -> None:
    path = tmp_path / "h.jsonl"
    write_history(synthetic(40), path)
    with open(path, "a", encoding="utf-8") as fh:
        fh.write("{not json\n")
    with pytest.raises(ValueError, match="problems"):
        measure(path, repeat=1)


@pytest.mark.parametrize(("kwargs", "named"), [({"rounds": 0}, "--rounds 0"), ({"repeat": 0}, "--repeat 0"),
                                               ({"n_events": 3}, "--events 3"), ({"max_rounds": 0}, "--max-rounds 0")])
def test_bad_parameters_are_refused_before_any_work(kwargs: dict[str, int], named: str) -> None:
    args = {"n_events": 400, "rounds": 1, "repeat": 1, **kwargs}
    with pytest.raises(ValueError, match=f"^bench checker: {named}: give") as err:
        bench(**args)
    assert err.value.args[0].count("give") == 1  # only the bad one is named
