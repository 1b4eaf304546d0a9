from pathlib import Path

import pytest

from harness.config import load
from harness.errors import ChaosError


def test_defaults_then_pyproject_then_flags(tmp_path: Path):
    (tmp_path / "pyproject.toml").write_text(
        '[tool.rabbit-chaos]\ncount = 50\nrate = 10.0\nclients = ["pika-recover"]\n')
    cfg = load(cwd=tmp_path, overrides={"rate": 20.0, "seed": None})
    assert cfg.count == 50  # from the file
    assert cfg.rate == 20.0  # the flag wins
    assert cfg.clients == ["pika-recover"]
    assert cfg.warmup == 2.0  # default


def test_a_standalone_toml_file_and_comma_strings(tmp_path: Path):
    f = tmp_path / "chaos.toml"
    f.write_text('faults = "none, broker-restart"\nrepeat = 3\n')
    cfg = load(config_file=f, cwd=tmp_path)
    assert cfg.faults == ["none", "broker-restart"]
    assert cfg.repeat == 3


@pytest.mark.parametrize(("text", "problem"), [
    ("cuont = 5\n", "'cuont'"),
    ("count = -1\n", "'count'"),
    ("backend = 'k8s'\n", "'backend'"),
    ("count = \n", "not valid TOML"),
])
def test_bad_config_is_one_clear_error(tmp_path: Path, text: str, problem: str):
    f = tmp_path / "chaos.toml"
    f.write_text(text)
    with pytest.raises(ChaosError) as info:
        load(config_file=f, cwd=tmp_path)
    assert problem in info.value.problem


def test_missing_config_file(tmp_path: Path):
    with pytest.raises(ChaosError, match="does not exist"):
        load(config_file=tmp_path / "nope.toml")


@pytest.mark.parametrize(("key", "value"), [("count", 10**20), ("rate", float("inf")), ("warmup", float("nan")),
                                            ("work", 1e9), ("repeat", 10**6)])
def test_workload_values_are_bounded_and_finite(tmp_path: Path, key: str, value: float):
    with pytest.raises(ChaosError) as info:
        load(cwd=tmp_path, overrides={key: value})
    assert repr(key) in info.value.problem
    assert "[tool.rabbit-chaos]" in (info.value.fix or "")


def test_sane_workload_values_pass(tmp_path: Path):
    cfg = load(cwd=tmp_path, overrides={"count": 10_000_000, "rate": 0.0, "warmup": 3600, "work": 60, "repeat": 1000})
    assert cfg.count == 10_000_000 and cfg.repeat == 1000


def test_a_faults_string_in_toml_splits_like_the_faults_flag(tmp_path):
    f = tmp_path / "c.toml"
    f.write_text('faults = "none,latency:latency_ms=200,stream=both,connection-cut"\n')
    cfg = load(f)
    assert cfg.faults == ["none", "latency:latency_ms=200,stream=both", "connection-cut"]
