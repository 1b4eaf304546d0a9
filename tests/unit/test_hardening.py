"""Issue 16 (hardening), without a broker: every foreseeable error is one message (exit 2) made
before anything boots, interrupted matrices say so, ``report DIR...`` finds every run, and
hostile input (markup, NaN, a client line that is a list) never ends in a traceback.

Ports: ephemeral ones the tests bind themselves (so a broker of an integration test running at the
same time cannot interfere), or hardening-D's range (24300-24304) where nothing listens."""

from __future__ import annotations

import errno
import json
import os
import socket
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from harness import matrix as matrix_mod
from harness.cli import _print_table, app
from harness.config import ChaosConfig
from harness.env import local, procs
from harness.env.environment import Environment
from harness.env.local import LocalBroker
from harness.env.preflight import check_proxy_support, probe_writable
from harness.env.toxiproxy import planned_server
from harness.errors import ChaosError, Interrupted, signal_name
from harness.faults.registry import parse
from harness.history import merge, read_events
from harness.matrix import run_matrix, split_faults
from harness.report import find_runs

BASE = 24300
runner = CliRunner()


def _one_error(res: Any, *needles: str) -> str:
    out = res.output
    assert res.exit_code == 2, out
    assert "Traceback" not in out and "MarkupError" not in out, out
    assert out.count("error:") == 1, out
    for n in needles:
        assert n in out, (n, out)
    return out


@pytest.fixture
def no_real_toxiproxy(monkeypatch):
    for var in ("TOXIPROXY_URL", "TOXIPROXY_SERVER"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("PATH", "/usr/bin:/bin")


# ---- ports -------------------------------------------------------------------------------
def _listen(port: int = 0) -> socket.socket:
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("127.0.0.1", port))
    s.listen()
    return s


def _port(s: socket.socket) -> int:
    return int(s.getsockname()[1])


def test_busy_proxy_api_port_is_named_before_any_boot(tmp_path, monkeypatch, no_real_toxiproxy):
    booted: list[str] = []
    monkeypatch.setattr(LocalBroker, "start", lambda self: booted.append("boot"))
    with _listen() as held:
        base = _port(held) - 4
        env = Environment(tmp_path / "state", base)
        with pytest.raises(ChaosError) as info:
            env.start()
    assert f"{base + 4} (proxy API)" in info.value.problem
    assert "--base-port" in (info.value.fix or "")
    assert booted == []


def test_every_busy_port_is_listed_in_one_message():
    with _listen() as a, _listen() as b, _listen() as c:
        pa, pb, free = _port(a), _port(b), _port(c)
        c.close()
        with pytest.raises(ChaosError) as info:
            procs.ensure_ports_free({"AMQP": pa, "Erlang distribution": free, "management": pb})
    p = info.value.problem
    assert f"ports {pa} (AMQP), {pb} (management) on 127.0.0.1 are already in use" in p  # one holder
    assert f"{free}" not in p
    assert "by python" in p or "(pid " in p  # we hold it ourselves: named by program and pid


def test_free_ports_pass():
    with _listen() as a:
        port = _port(a)
    procs.ensure_ports_free({"AMQP": port})


def test_a_leftover_broker_of_ours_names_the_state_dir_that_reaps_it(tmp_path):
    """A process that looks like our beam.smp (node name rabbit_chaos_*, log base under a state
    dir) holding the AMQP port: the error says it is ours and which --state-dir reaps it."""
    other = tmp_path / "other-state"
    code = textwrap.dedent("""
        import socket, sys
        s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("127.0.0.1", 0)); s.listen(); print(s.getsockname()[1], flush=True); sys.stdin.read()
    """)
    env = {**os.environ, "RABBITMQ_NODENAME": f"rabbit_chaos_{BASE}@localhost",
           "RABBITMQ_LOG_BASE": str(other / "broker" / "log")}
    child = subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                             env=env, text=True)
    try:
        assert child.stdout is not None
        port = int(child.stdout.readline())
        with pytest.raises(ChaosError) as info:
            procs.ensure_ports_free({"AMQP": port})
    finally:
        child.kill()
        child.wait()
    assert f"a broker left by a run killed under state dir {other}" in info.value.problem
    assert f"--state-dir {other} to reap it" in (info.value.fix or "")


# ---- broker binary and boot --------------------------------------------------------------
def test_broker_binary_not_executable_is_one_clear_error(tmp_path, monkeypatch):
    (tmp_path / "bin").mkdir()
    server = tmp_path / "bin" / "rabbitmq-server"
    server.write_text("#!/bin/sh\n")
    server.chmod(0o644)
    monkeypatch.setattr(local, "RABBIT_BIN", tmp_path / "bin")
    with pytest.raises(ChaosError) as info:
        LocalBroker(tmp_path / "s", base_port=BASE).preflight()
    assert "is not executable" in info.value.problem
    assert "chmod +x" in (info.value.fix or "")


def test_a_broker_that_fails_to_boot_shows_this_boots_log_lines_only(tmp_path, monkeypatch):
    (tmp_path / "bin").mkdir()
    server = tmp_path / "bin" / "rabbitmq-server"
    server.write_text("#!/bin/sh\necho 'BOOT FAILED: this boot'\nexit 3\n")
    server.chmod(0o755)
    monkeypatch.setattr(local, "RABBIT_BIN", tmp_path / "bin")
    monkeypatch.setattr(LocalBroker, "_start_epmd", lambda self: None)
    monkeypatch.setattr(procs, "ensure_ports_free", lambda *a, **k: None)  # the log is the point here
    b = LocalBroker(tmp_path / "s", base_port=BASE)
    b.log_dir.mkdir(parents=True)
    (b.log_dir / "stdout.log").write_text("stale line from an earlier, successful boot\n")
    with pytest.raises(ChaosError) as info:
        b.start()
    p = info.value.problem
    assert p.startswith("the broker did not boot: rabbitmq-server exited with code 3"), p
    assert "BOOT FAILED: this boot" in p
    assert "stale line" not in p
    assert str(b.log_dir) in (info.value.fix or "")


# ---- writable dirs -----------------------------------------------------------------------
def test_reports_dir_under_a_file_is_refused_before_boot(tmp_path, no_real_toxiproxy):
    (tmp_path / "afile").write_text("x")
    res = runner.invoke(app, ["run", "--client", "pika-recover", "--reports-dir", str(tmp_path / "afile" / "r"),
                              "--state-dir", str(tmp_path / "s"), "--base-port", str(BASE)])
    _one_error(res, "reports dir", "is a file, not a directory", "--reports-dir")
    assert not (tmp_path / "s").exists()


def test_state_dir_under_a_file_is_refused_before_boot(tmp_path, monkeypatch, no_real_toxiproxy):
    booted: list[str] = []
    monkeypatch.setattr(LocalBroker, "start", lambda self: booted.append("boot"))
    (tmp_path / "afile").write_text("x")
    res = runner.invoke(app, ["run", "--client", "pika-recover", "--reports-dir", str(tmp_path / "r"),
                              "--state-dir", str(tmp_path / "afile" / "s"), "--base-port", str(BASE)])
    _one_error(res, "state dir", "is a file", "--state-dir")
    assert booted == []


def test_read_only_filesystem_is_named(tmp_path, monkeypatch):
    def refuse(self: Path, *a: Any, **k: Any) -> None:
        raise OSError(errno.EROFS, "Read-only file system", str(self))

    monkeypatch.setattr(Path, "mkdir", refuse)
    with pytest.raises(ChaosError) as info:
        probe_writable(tmp_path / "r", "reports dir", "--reports-dir")
    assert "read-only filesystem" in info.value.problem


def test_a_writable_dir_passes_and_keeps_no_probe(tmp_path):
    probe_writable(tmp_path / "r", "reports dir", "--reports-dir")
    assert list((tmp_path / "r").iterdir()) == []


# ---- markup --------------------------------------------------------------------------------
@pytest.mark.parametrize("args", [["--client", "[/]"], ["--client", "pika-recover", "--fault", "[/]"],
                                  ["--client", "[bold]x[/bold]"]])
def test_user_text_is_never_markup(args, tmp_path):
    res = runner.invoke(app, ["run", *args, "--state-dir", str(tmp_path / "s")])
    _one_error(res, args[-1])


def test_config_hint_prints_the_table_name_literally(tmp_path):
    res = runner.invoke(app, ["run", "--client", "pika-recover", "--count", "0", "--state-dir", str(tmp_path)])
    _one_error(res, "[tool.rabbit-chaos]")


def test_matrix_table_with_markup_in_labels(capsys):
    doc = {"client": "[/]", "fault": "[red]x", "verdict": "pass", "counts": {"lost": 0, "duplicated": 0},
           "timing": {}}
    _print_table([doc], ["[/]"], ["[red]x"])
    out = capsys.readouterr().out
    assert "[/]" in out and "[red]x" in out


# ---- bounds --------------------------------------------------------------------------------
@pytest.mark.parametrize(("args", "needle"), [
    (["--fault", "latency:toxicity=nan"], "toxicity='nan' is out of bounds"),
    (["--fault", "packet-loss:loss_rate=inf"], "out of bounds"),
    (["--fault", "latency:latency_ms=1e20"], "is not a valid int"),
    (["--fault", "latency:latency_ms=100000000000"], "at most 86,400,000"),
    (["--count", "100000000000000000000"], "less than or equal to 10000000"),
    (["--rate", "inf"], "'rate'"),
    (["--warmup", "nan"], "'warmup'"),
])
def test_out_of_bounds_values_are_refused_up_front(args, needle, tmp_path):
    res = runner.invoke(app, ["run", "--client", "pika-recover", *args, "--state-dir", str(tmp_path / "s")])
    _one_error(res, needle)
    assert not (tmp_path / "s").exists()


def test_count_in_exponent_form_is_a_usage_error(tmp_path):
    res = runner.invoke(app, ["run", "--client", "pika-recover", "--count", "1e20", "--state-dir", str(tmp_path)])
    assert res.exit_code == 2 and "Traceback" not in res.output


def test_sane_fault_parameters_still_parse():
    assert parse("latency:latency_ms=200,toxicity=0.5").params()["latency_ms"] == 200
    assert parse("disk-alarm").params()["limit_bytes"] == 10**15


# ---- real Toxiproxy ------------------------------------------------------------------------
@pytest.mark.parametrize("fault", ["partition", "packet-loss", "packet-loss:loss_rate=0.5"])
def test_embedded_only_faults_fail_up_front_on_a_real_toxiproxy(fault, tmp_path, monkeypatch):
    monkeypatch.delenv("TOXIPROXY_URL", raising=False)
    monkeypatch.setenv("TOXIPROXY_SERVER", "/bin/true")
    res = runner.invoke(app, ["run", "--client", "pika-recover", "--fault", fault,
                              "--reports-dir", str(tmp_path / "r"), "--state-dir", str(tmp_path / "s")])
    _one_error(res, "only rabbit-chaos's embedded proxy", "/bin/true", "TOXIPROXY_SERVER")
    assert not (tmp_path / "s").exists()


def test_a_real_toxiproxy_keeps_its_own_faults(monkeypatch):
    monkeypatch.delenv("TOXIPROXY_URL", raising=False)
    monkeypatch.setenv("TOXIPROXY_SERVER", "/bin/true")
    server = planned_server("local")
    assert server is not None and "/bin/true" in server
    check_proxy_support([parse("latency"), parse("reset-peer")], server)  # no error
    check_proxy_support([parse("partition")], None)  # embedded: everything goes


def test_toxiproxy_url_that_does_not_answer_is_refused_up_front(monkeypatch):
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setenv("TOXIPROXY_URL", f"http://127.0.0.1:{port}")
    with pytest.raises(ChaosError, match="does not answer"):
        planned_server("local")


# ---- faults list syntax -------------------------------------------------------------------
@pytest.mark.parametrize(("text", "want"), [
    ("latency:latency_ms=200,stream=both", ["latency:latency_ms=200,stream=both"]),
    ("none,latency:latency_ms=200,stream=both,connection-cut",
     ["none", "latency:latency_ms=200,stream=both", "connection-cut"]),
    ("cycle(connection-cut,every=10,for=3,times=4),none", ["cycle(connection-cut,every=10,for=3,times=4)", "none"]),
    ("latency:latency_ms=200,jitter_ms=0@1+3,reset-peer@6+1", ["latency:latency_ms=200,jitter_ms=0@1+3",
                                                               "reset-peer@6+1"]),
    (" none , broker-restart ", ["none", "broker-restart"]),
])
def test_split_faults_on_commas_that_start_a_fault(text, want):
    assert split_faults(text) == want


def test_matrix_accepts_the_docs_fault_syntax(tmp_path, monkeypatch):
    seen: list[list[str]] = []

    def fake_env(cfg: Any) -> Any:
        seen.append(list(cfg.faults))
        raise ChaosError("stop here", "test")

    monkeypatch.setattr("harness.cli._environment", fake_env)
    res = runner.invoke(app, ["matrix", "--clients", "pika-recover", "--faults", "latency:latency_ms=200,stream=both",
                              "--reports-dir", str(tmp_path / "r")])
    assert "unknown fault" not in res.output, res.output
    assert seen == [["latency:latency_ms=200,stream=both"]]


# ---- interrupted matrices ------------------------------------------------------------------
class _Env:
    def versions(self) -> dict[str, Any]:
        return {"broker": "test"}


def _doc(run_id: str, client: str, fault: str, **extra: Any) -> dict[str, Any]:
    return {"run_id": run_id, "client": client, "fault": fault, "verdict": "pass", "reasons": [],
            "counts": {"published": 1, "lost": 0, "duplicated": 0}, "timing": {}, **extra}


@pytest.mark.parametrize(("signame", "code"), [("SIGTERM", 143), ("SIGINT", 130)])
def test_an_interrupted_matrix_records_the_signal_and_the_unrun_cells(tmp_path, monkeypatch, signame, code):
    calls: list[str] = []

    def fake_run_cell(env: Any, spec: Any, out: Path, command: Any = None) -> dict[str, Any]:
        calls.append(spec.fault)
        run_id = f"run-{len(calls)}"
        if len(calls) == 2:  # the engine writes the cut cell's record, then re-raises
            (out / run_id).mkdir()
            doc = {**_doc(run_id, spec.client, spec.fault), "verdict": "unknown", "interrupted": True,
                   "reasons": [f"interrupted by {signame}"]}
            (out / run_id / "results.json").write_text(json.dumps(doc))
            (out / "latest").symlink_to(out / run_id)  # results.write points out/latest at it
            raise Interrupted(signame) if signame == "SIGTERM" else KeyboardInterrupt()
        return _doc(run_id, spec.client, spec.fault)

    monkeypatch.setattr(matrix_mod, "run_cell", fake_run_cell)
    cfg = ChaosConfig(clients=["pika-recover"], faults=["none", "connection-cut", "broker-restart"],
                      reports_dir=tmp_path / "r")
    res = run_matrix(_Env(), cfg)  # type: ignore[arg-type]
    assert res.interrupted and res.signal == signame and res.exit_code == code
    meta = json.loads((res.dir / "matrix.json").read_text())
    assert meta["interrupted"] is True and meta["interrupted_by"] == signame
    assert meta["runs"] == ["run-1", "run-2"]
    assert meta["unrun"] == [{"client": "pika-recover", "fault": "broker-restart", "repeat": 0}]
    html = (res.dir / "report.html").read_text()
    assert "interrupted runs" in html and "run-2" in html


def test_sigterm_becomes_an_interrupt_named_sigterm():
    import signal

    from harness.cli import _sigterm

    old = signal.getsignal(signal.SIGTERM)
    try:
        with pytest.raises(KeyboardInterrupt) as info:
            _sigterm(signal.SIGTERM, None)
        assert signal_name(info.value) == "SIGTERM"
        assert signal.getsignal(signal.SIGTERM) == signal.SIG_IGN  # a second SIGTERM during cleanup
    finally:
        signal.signal(signal.SIGTERM, old)
    assert signal_name(KeyboardInterrupt()) == "SIGINT"


def test_an_interrupted_run_prints_one_line_and_exits_130(tmp_path, monkeypatch, no_real_toxiproxy):
    def interrupted_env(cfg: Any) -> Any:
        run = cfg.reports_dir / "20260101T000000-x"
        run.mkdir()
        raise KeyboardInterrupt

    monkeypatch.setattr("harness.cli._environment", interrupted_env)
    res = runner.invoke(app, ["run", "--client", "pika-recover", "--reports-dir", str(tmp_path / "r"),
                              "--state-dir", str(tmp_path / "s")])
    assert res.exit_code == 130, res.output
    lines = [ln for ln in res.output.splitlines() if ln.strip()]
    assert lines == [f"interrupted by SIGINT: results so far in {tmp_path / 'r' / '20260101T000000-x'}"]


# ---- report DIR... -------------------------------------------------------------------------
def _store(root: Path, runs: dict[str, dict[str, Any] | None]) -> None:
    for rel, doc in runs.items():
        d = root / rel
        (d / "history").mkdir(parents=True)
        if doc is not None:
            (d / "results.json").write_text(json.dumps(doc))


def test_report_merges_several_directories_finds_runs_at_any_depth_and_lists_incomplete_ones(tmp_path):
    a, b = tmp_path / "machine-a", tmp_path / "machine-b"
    _store(a, {"matrix-1/run-a1": _doc("run-a1", "pika-recover", "none"),
               "matrix-1/run-a2": None,  # killed before its results.json
               "run-a3": _doc("run-a3", "pika-naive", "none", interrupted=True, verdict="unknown")})
    _store(b, {"deep/er/matrix-2/run-b1": _doc("run-b1", "pika-recover", "connection-cut")})
    (a / "latest").symlink_to(a / "matrix-1")  # followed, it would count run-a1 twice
    out = tmp_path / "merged.html"
    res = runner.invoke(app, ["report", str(a), str(b), "--out", str(out)])
    assert res.exit_code == 0, res.output
    assert f"incomplete run (no results.json): {a / 'matrix-1' / 'run-a2'}" in res.output
    assert "interrupted runs: run-a3" in res.output
    assert "(3 runs)" in res.output
    html = out.read_text()
    assert "run-a1" in html and "run-b1" in html and "incomplete run (no results.json)" in html


def test_report_of_a_store_after_a_matrix(tmp_path):
    _store(tmp_path / "reports", {"matrix-1/run-1": _doc("run-1", "pika-recover", "none")})
    res = runner.invoke(app, ["report", str(tmp_path / "reports")])
    assert res.exit_code == 0, res.output
    assert (tmp_path / "reports" / "report.html").exists()


def test_report_of_an_empty_store_is_one_error(tmp_path):
    res = runner.invoke(app, ["report", str(tmp_path)])
    _one_error(res, "no runs under", "rabbit-chaos matrix")


def test_the_same_run_in_two_stores_counts_once(tmp_path):
    _store(tmp_path / "a", {"run-1": _doc("run-1", "c", "none")})
    _store(tmp_path / "b", {"copy/run-1": _doc("run-1", "c", "none")})
    found = find_runs([tmp_path / "a", tmp_path / "b"])
    assert [d["run_id"] for d in found.docs] == ["run-1"]


# ---- history reader ------------------------------------------------------------------------
def test_a_client_line_that_is_a_list_is_one_clear_problem(tmp_path):
    good = {"t": 1.0, "wall": 1.0, "pid": 1, "proc": "consumer-0", "role": "consumer", "kind": "conn.open"}
    p = tmp_path / "consumer-0.jsonl"
    p.write_text("\n".join([json.dumps(good), "[1,2,3]", json.dumps({**good, "role": [1]}),
                            json.dumps({**good, "kind": {"a": 1}})]) + "\n")
    events, problems = merge([p], tmp_path / "history.jsonl")
    assert events == [good]
    assert problems == ["consumer-0.jsonl:2: event is not a JSON object: [1, 2, 3]",
                        "consumer-0.jsonl:3: role must be a string, not [1]",
                        "consumer-0.jsonl:4: kind must be a string, not {'a': 1}"]
    assert read_events(p)[1] == problems


def test_a_fault_spec_with_several_parameters_is_one_window():
    from harness.engine import validate_fault

    [w] = validate_fault("latency:latency_ms=200,stream=both", 4).windows
    assert w.fault.params()["stream"] == "both" and w.fault.params()["latency_ms"] == 200
    w1, w2 = validate_fault("latency:latency_ms=200,stream=both@1+3,reset-peer@6+1").windows
    assert w1.fault.params()["stream"] == "both" and w2.fault.name == "reset-peer"
