"""The pytest plugin end to end, through pytester: a real broker per session, clients
parametrised from the command line, one merged HTML report at session end (also under xdist),
and kernel-marked tests skipped with the reason where kernel faults cannot run."""

from pathlib import Path

import pytest

pytestmark = pytest.mark.broker

TEST_FILE = """
def test_cell(chaos_run, chaos_client):
    chaos_run(chaos_client, "none", count=40, rate=100, warmup_s=0.5, fault_s=0.5).assert_pass().assert_no_loss()
"""


def _opts(tmp_path: Path, base: int) -> list[str]:
    return ["-p", "no:cacheprovider", "--chaos-reports", str(tmp_path / "reports"),
            "--chaos-state-dir", str(tmp_path / "state"), "--chaos-base-port", str(base)]


def _reports(tmp_path: Path) -> list[Path]:
    return sorted((tmp_path / "reports").glob("pytest-*/report.html"))


def test_clients_parametrised_and_one_report(pytester: pytest.Pytester, tmp_path: Path):
    pytester.makepyfile(test_cells=TEST_FILE)
    res = pytester.runpytest_subprocess(*_opts(tmp_path, 23572), "--chaos-clients", "pika-recover,pika-naive", "-v")
    res.assert_outcomes(passed=2)
    res.stdout.fnmatch_lines(["*test_cell?pika-recover? PASSED*", "*test_cell?pika-naive? PASSED*",
                              "rabbit-chaos report: *report.html"])
    [report] = _reports(tmp_path)
    html = report.read_text()
    assert "pika-recover" in html and "pika-naive" in html


def test_xdist_workers_get_their_own_broker_and_one_merged_report(pytester: pytest.Pytester, tmp_path: Path):
    pytester.makepyfile(test_cells=TEST_FILE)
    res = pytester.runpytest_subprocess(*_opts(tmp_path, 23602), "--chaos-clients", "pika-recover,pika-naive",
                                        "-n", "2")
    res.assert_outcomes(passed=2)
    [report] = _reports(tmp_path)
    runs = [p for p in report.parent.glob("*/results.json") if not p.parent.is_symlink()]
    assert len(runs) == 2
    # each worker had its own state dir (own node), none shared the controller's
    assert sorted(p.name for p in (tmp_path / "state").iterdir() if p.name.startswith("w")) == ["w1", "w2"]


def test_kernel_marked_tests_skip_with_the_reason(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch,
                                                    tmp_path: Path):
    import harness.env.netns as netns

    monkeypatch.setattr(netns, "kernel_support", lambda: "kernel faults need root (test)")
    pytester.makepyfile(test_k="""
        import pytest

        @pytest.mark.kernel
        def test_needs_root():
            raise AssertionError("must not run")
    """)
    res = pytester.runpytest(*_opts(tmp_path, 23632), "-rs")
    res.assert_outcomes(skipped=1)
    res.stdout.fnmatch_lines(["*kernel faults need root (test)*"])


def test_a_failing_scenario_shows_its_reason_not_the_harness_polling(pytester: pytest.Pytester, tmp_path: Path):
    """The broker boot (readiness handshakes refused for seconds) and the run's own polling log
    through pika in the pytest process; a failing scenario must show its assertion message and
    the verdict's explanation, not hundreds of lines of captured connection-refused tracebacks."""
    pytester.makepyfile(test_fails="""
        def test_expects_the_wrong_verdict(chaos_run):
            chaos_run("pika-recover", "none", count=20, rate=100, warmup_s=0.5, fault_s=0.5).assert_verdict("fail")
    """)
    res = pytester.runpytest_subprocess(*_opts(tmp_path, 24350))
    res.assert_outcomes(failed=1)
    out = res.stdout.lines
    start = next(i for i, line in enumerate(out) if "FAILURES" in line)
    end = next(i for i, line in enumerate(out) if "short test summary" in line)
    failure = "\n".join(out[start:end])
    assert "expected verdict 'fail'" in failure and "verdict pass" in failure, failure
    assert "Connection refused" not in failure and "Captured log" not in failure, failure
    assert end - start <= 30, f"{end - start} lines:\n{failure}"
