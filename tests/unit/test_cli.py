"""The CLI's contract without a broker: listings, and one clear error (exit 2) for bad input,
raised before anything is started."""

import json

import pytest
from typer.testing import CliRunner

from harness.cli import app

runner = CliRunner()


def test_clients_lists_every_strategy_with_version():
    res = runner.invoke(app, ["clients", "--json"])
    assert res.exit_code == 0, res.output
    rows = json.loads(res.output)
    names = {r["name"] for r in rows}
    assert {"pika-recover", "pika-naive"} <= names
    for r in rows:
        assert r["description"] and r["version"] != "unknown", r


def test_faults_lists_parameters():
    res = runner.invoke(app, ["faults", "--json"])
    assert res.exit_code == 0, res.output
    by = {r["name"]: r for r in json.loads(res.output)}
    assert by["reset-peer"]["params"]["timeout_ms"] == {"type": "int", "default": 0}
    assert by["connection-cut"]["params"]["target"]["type"] == "all|publisher|consumer"


@pytest.mark.parametrize(("args", "problem", "fix"), [
    (["run", "--client", "nope"], "unknown client 'nope'", "rabbit-chaos clients"),
    (["run", "--client", "pika-recover", "--fault", "nope"], "unknown fault 'nope'", "rabbit-chaos faults"),
    (["run", "--client", "pika-recover", "--fault", "reset-peer:timeout_ms=x"], "is not a valid int", "timeout_ms="),
    (["run", "--client", "pika-recover", "--param", "prefetch"], "is not KEY=VALUE", "--param prefetch=10"),
    (["run", "--client", "pika-recover", "--count", "0"], "'count'", "flag"),
    (["matrix", "--clients", "pika-recover,bogus"], "unknown client 'bogus'", "rabbit-chaos clients"),
    (["run", "--client", "pika-recover", "--backend", "k8s"], "'backend'", "flag"),
    (["run", "--client", "pika-recover", "--config", "/nonexistent.toml"], "does not exist", "TOML"),
])
def test_bad_input_is_one_clear_error_before_anything_starts(args, problem, fix, tmp_path):
    res = runner.invoke(app, [*args, "--state-dir", str(tmp_path / "s")] if args[0] == "run" else args)
    assert res.exit_code == 2, res.output
    out = res.output
    assert "error:" in out and problem in out, out
    assert "fix:" in out and fix in out, out
    assert "Traceback" not in out
    assert not (tmp_path / "s").exists()  # nothing was started


def test_report_of_a_missing_directory(tmp_path):
    res = runner.invoke(app, ["report", str(tmp_path / "none")])
    assert res.exit_code == 2
    assert "is not a directory" in res.output


def test_bench_checker_names_the_bad_parameter_and_starts_nothing():
    res = runner.invoke(app, ["bench", "checker", "--events", "400", "--rounds", "3", "--max-rounds", "2"])
    assert res.exit_code == 2, res.output
    flat = " ".join(res.output.replace("│", " ").split())  # rich may wrap the message in its box
    assert "--max-rounds 2: give at least --rounds (3)" in flat, res.output
    assert "Traceback" not in res.output
