"""check-client's command line without a broker: bad input is one clear error (exit 2) before
anything starts."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from harness.cli import app

runner = CliRunner()


@pytest.mark.parametrize(("args", "problem"), [
    ([], "no client given"),
    (["--client", "nope"], "unknown client 'nope'"),
    (["--client-cmd", "/nonexistent/client"], "not found or not executable"),
    (["--client-cmd", "'unbalanced"], "cannot parse --client-cmd"),
])
def test_bad_input_exits_2_before_starting(args: list[str], problem: str, tmp_path: Path) -> None:
    res = runner.invoke(app, ["check-client", *args, "--state-dir", str(tmp_path / "s")])
    assert res.exit_code == 2, res.output
    assert "error:" in res.output and problem in res.output and "fix:" in res.output
    assert not (tmp_path / "s").exists()


def test_help_names_both_ways_to_give_a_client() -> None:
    res = runner.invoke(app, ["check-client", "--help"])
    assert res.exit_code == 0 and "--client-cmd" in res.output and "--client" in res.output
