"""The checker benchmark's plumbing (fresh-process samples, headline, goals), on a tiny history.

Timing itself is never asserted here (noisy shared box): only that the numbers reported are the
ones the samples give and that the goals are judged from them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from harness.checker.bench import GOAL_RATIO_2N_N, bench, measure, synthetic
from harness.history import write_history


def test_bench_reports_every_round_and_judges_the_goals_from_its_headline() -> None:
    out = bench(400, rounds=2, repeat=1)
    assert out["n_events"] == len(synthetic(400))
    assert out["n_events_2n"] == len(synthetic(800))
    assert len(out["seconds_n_rounds"]) == len(out["seconds_2n_rounds"]) == len(out["ratio_2n_n_rounds"]) == 2
    assert out["seconds_n"] == min(out["seconds_n_rounds"])
    assert out["seconds_2n"] == min(out["seconds_2n_rounds"])
    rounds = out["ratio_2n_n_rounds"]
    assert min(rounds) - 0.001 <= out["ratio_2n_n"] <= max(rounds) + 0.001  # the rounds' median
    assert out["ratio_2n_n_least"] == pytest.approx(out["seconds_2n"] / out["seconds_n"], rel=0.15)  # rounded times
    assert out["goals_met"]["ratio_2n_n"] is (out["ratio_2n_n"] <= GOAL_RATIO_2N_N)
    assert out["goals_met"]["events_per_s"] is (out["events_per_s"] >= out["goals"]["events_per_s"])
    assert out["verdict"] == "pass"  # the synthetic run is a sound one: the checker must say so
    json.dumps(out)  # one JSON line on the command line


def test_measure_refuses_a_history_with_problems(tmp_path: Path) -> None:
    path = tmp_path / "h.jsonl"
    write_history(synthetic(40), path)
    with open(path, "a", encoding="utf-8") as fh:
        fh.write("{not json\n")
    with pytest.raises(ValueError, match="problems"):
        measure(path, repeat=1)


@pytest.mark.parametrize("kwargs", [{"rounds": 0}, {"repeat": 0}, {"n_events": 3}])
def test_bad_parameters_are_refused_before_any_work(kwargs: dict[str, int]) -> None:
    args = {"n_events": 400, "rounds": 1, "repeat": 1, **kwargs}
    with pytest.raises(ValueError, match="rounds >= 1"):
        bench(**args)
