"""The run's phase logic without a broker: when settle may end (made-up clocks), how long a bare
fault is held, what the history tail counts as held, and that the supervisor announces a signal
before it sends it. No test here measures time."""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import pytest

from harness.clients.protocol import ClientConfig
from harness.clients.supervisor import ClientProcess, HistoryTail
from harness.engine import RunSpec, timeline_for, validate_fault
from harness.env.backend import Capabilities, NullBackend
from harness.errors import ChaosError
from harness.faults.base import Fault, FaultContext
from harness.faults.registry import parse
from harness.history import HistoryWriter
from harness.run.holds import choose_hold, window_upper
from harness.run.settle import CAP, QUIET, SettleWatch


# ---- settle --------------------------------------------------------------------------------
def watch() -> SettleWatch:
    return SettleWatch(quiet_s=2.0, timeout_s=60.0, cap_s=120.0, started=0.0)


def test_settle_ends_quiet_once_nothing_moved_for_settle_s_and_the_queue_is_empty():
    w = watch()
    asked: list[float] = []

    def depth() -> int:
        asked.append(1)
        return 0

    assert w.step(0.0, 10, 0, depth) is None
    assert w.step(1.9, 10, 0, depth) is None and asked == []  # not quiet long enough: depth not asked
    assert w.step(2.0, 10, 0, depth) == QUIET


def test_settle_never_ends_quiet_while_the_client_holds_a_delivery():
    w = watch()
    empty = lambda: 0  # noqa: E731 - the queue is empty: only the held delivery keeps settle going
    for now in (0.0, 5.0, 30.0, 60.0, 90.0, 119.9):
        assert w.step(now, 1, 1, empty) is None
    assert w.step(120.0, 1, 1, empty) == CAP and w.bound == "settle_unacked_cap_s"


def test_a_slow_delivery_then_its_redelivery_stays_inside_settle():
    """The inline slow consumer: holds one delivery 30 s, its connection dies (held cleared),
    the redelivery comes and is acked; settle ends quiet 2 s after that."""
    w = watch()
    empty = lambda: 0  # noqa: E731
    assert w.step(0.0, 1, 1, empty) is None     # holding the slow delivery
    assert w.step(30.0, 1, 0, empty) is None    # conn.lost: nothing held, but something changed
    assert w.step(31.0, 2, 1, empty) is None    # the redelivery
    assert w.step(61.0, 2, 0, empty) is None    # acked: 0 held; the timeout counts from the last hold
    assert w.step(62.9, 2, 0, empty) is None
    assert w.step(63.0, 2, 0, empty) == QUIET


def test_settle_waits_while_messages_wait_and_nothing_moves_until_its_timeout():
    w = watch()
    stuck = lambda: 5  # noqa: E731
    assert w.step(0.0, 3, 0, stuck) is None
    assert w.step(2.0, 3, 0, stuck) is None      # quiet, but the queue holds 5: keep waiting
    assert w.step(59.9, 3, 0, stuck) is None
    assert w.step(60.0, 3, 0, stuck) == CAP and w.bound == "settle_timeout_s"


def test_unknown_depth_is_not_empty():
    w = watch()
    assert w.step(0.0, 0, 0, lambda: None) is None
    assert w.step(2.0, 0, 0, lambda: None) is None


def test_a_cap_below_the_timeout_never_shortens_settle():
    w = SettleWatch(quiet_s=2.0, timeout_s=60.0, cap_s=10.0, started=0.0)
    assert w.step(30.0, 1, 1, lambda: 0) is None
    assert w.step(60.0, 1, 1, lambda: 0) == CAP


# ---- the history tail ----------------------------------------------------------------------
def test_tail_tracks_held_deliveries_and_forgets_them_when_the_connection_goes(tmp_path: Path):
    tail = HistoryTail(tmp_path / "consumer-0.jsonl")
    for ev in ({"kind": "client.start", "heartbeat_window_s": [7, 14]}, {"kind": "deliver", "id": "a"},
               {"kind": "deliver", "id": "b"}, {"kind": "ack", "id": "a"}):
        tail.feed(ev)
    assert tail.unacked == {"b"} and tail.started == {"kind": "client.start", "heartbeat_window_s": [7, 14]}
    tail.feed({"kind": "conn.lost", "error": "x"})
    assert tail.unacked == set()
    tail.feed({"kind": "deliver", "id": "b"})
    tail.feed({"kind": "channel.closed", "reason": "406"})
    assert tail.unacked == set()


def test_tail_reads_only_new_complete_lines(tmp_path: Path):
    path = tmp_path / "consumer-0.jsonl"
    tail = HistoryTail(path)
    assert tail.held() == 0  # no file yet
    with open(path, "w") as fh:
        fh.write(json.dumps({"kind": "deliver", "id": "a", "t": 1.0}) + "\n" + '{"kind": "ack", "i')
    assert tail.held() == 1 and tail.count("deliver") == 1
    with open(path, "a") as fh:
        fh.write('d": "a", "t": 2.0}\n')
    assert tail.held() == 0 and tail.count("ack") == 1


# ---- holds ---------------------------------------------------------------------------------
@dataclass
class Silent(Fault):
    target: str = "all"
    name: ClassVar[str] = "silent"
    default_hold_s: ClassVar[float] = 4.0

    def silences(self) -> bool:
        return True


def test_window_upper_bound():
    assert window_upper([7, 14]) == 14
    assert window_upper([3.0, None]) == 6.0  # no upper bound: twice the lower
    assert window_upper(None) is None and window_upper([None, None]) is None
    assert window_upper([1, float("nan")]) is None and window_upper("7-14") is None


def _start(window: object = None, heartbeat_s: object = None, library: str = "pika") -> dict:
    return {"proc": "consumer-0", "library": library, "heartbeat_s": heartbeat_s, "heartbeat_window_s": window}


def test_a_silent_fault_is_held_for_the_longest_window_plus_a_margin():
    hold = choose_hold(Silent(), None, {"consumer-0": _start([7, 14]), "publisher-0": _start([3.0, None])}, 10.0)
    assert hold.seconds == 19.0  # 14 + max(5, 3.5)
    assert "consumer-0" in hold.reason and "14" in hold.reason
    long = choose_hold(Silent(), None, {"consumer-0": _start([65, 130])}, 10.0)
    assert long.seconds == 162.5  # 130 + 25 %


def test_a_window_predicted_from_the_heartbeat_alone_counts():
    hold = choose_hold(Silent(), None, {"consumer-0": _start(None, heartbeat_s=2, library="pika")}, 10.0)
    assert hold.seconds == 19.0  # pika at heartbeat 2: 7-14 s, + 5


def test_without_a_window_the_hold_is_the_checkers_exercise_bound_plus_a_margin():
    # an unknown library with a heartbeat: two missed heartbeats; heartbeats off: max_block_s
    unknown = choose_hold(Silent(), None, {"consumer-0": _start(None, heartbeat_s=30, library="amqplib")}, 10.0)
    assert unknown.seconds == 75.0  # 60 + 25 %
    off = choose_hold(Silent(), None, {"consumer-0": _start(None, heartbeat_s=0)}, 10.0)
    assert off.seconds == 15.0  # max_block_s 10 + 5: long enough for the checker to call it exercised


def test_a_silent_fault_with_no_client_start_gets_its_default_and_says_so():
    hold = choose_hold(Silent(), None, {"consumer-0": None}, 10.0)
    assert hold.seconds == 4.0 and "no targeted client wrote client.start" in hold.reason


def test_a_user_given_hold_wins_even_when_short():
    hold = choose_hold(Silent(), 2.0, {"consumer-0": _start([65, 130])}, 10.0)
    assert hold.seconds == 2.0 and hold.reason.startswith("user-given")


def test_loud_faults_get_their_class_default():
    assert choose_hold(parse("memory-alarm"), None, {}, 10.0).seconds == 20.0
    assert choose_hold(parse("connection-cut"), None, {"consumer-0": _start([7, 14])}, 10.0).seconds == 4.0


def test_timeline_for_holds_a_bare_fault_for_its_default_or_the_users_time():
    assert timeline_for(RunSpec(client="x", fault="memory-alarm"), 0).spec() == "memory-alarm@0+20"
    tl = timeline_for(RunSpec(client="x", fault="partition", fault_s=2.5), 0)
    assert tl.spec() == "partition@0+2.5" and tl.hold_reason == "user-given: 2.5 s"
    explicit = timeline_for(RunSpec(client="x", fault="partition@1+3", fault_s=60), 0)
    assert explicit.spec() == "partition@1+3" and explicit.hold_reason is None
    assert validate_fault("none").windows == []


def test_targets_role_reads_the_faults_target():
    assert parse("partition:target=consumer").targets_role() == "consumer"
    assert parse("broker-pause").targets_role() == "all"


# ---- deadlines -------------------------------------------------------------------------
def test_deadline_keywords_are_checked():
    from harness.config import check_deadlines, load

    assert check_deadlines({"max_stall_s": 5}) == {"max_stall_s": 5}
    for bad in (0, -1, float("nan"), float("inf"), "5", True):
        with pytest.raises(ChaosError, match="max_block_s"):
            check_deadlines({"max_block_s": bad})
    assert load(None, {"max_block_s": 5, "max_recovery_s": 20}).check_options() == {
        "max_block_s": 5.0, "max_recovery_s": 20.0}
    with pytest.raises(ChaosError, match="max_stall_s"):
        load(None, {"max_stall_s": float("nan")})


def test_fault_for_bounds():
    from harness.config import load

    assert load(None, {}).fault_for is None
    for bad in (0, 1e12, float("nan"), -3):
        with pytest.raises(ChaosError, match="fault_for"):
            load(None, {"fault_for": bad})


# ---- the supervisor announces its signals -----------------------------------------------
def test_stop_writes_proc_signal_before_signalling(tmp_path: Path):
    writer = HistoryWriter(tmp_path / "harness.jsonl", "harness", "harness")
    cfg = ClientConfig(run_id="r", proc="consumer-0", role="consumer", amqp_url="amqp://x/", queue="q",
                       history=str(tmp_path / "c.jsonl"), count=1, rate=1.0)
    # a "client" that records when SIGTERM arrived relative to the harness's history
    script = ("import signal, sys, time, pathlib\n"
              f"h = pathlib.Path({str(tmp_path / 'harness.jsonl')!r})\n"
              "def on_term(*a):\n"
              f"    pathlib.Path({str(tmp_path / 'seen')!r}).write_text(h.read_text())\n"
              "    sys.exit(0)\n"
              "signal.signal(signal.SIGTERM, on_term)\n"
              f"pathlib.Path({str(tmp_path / 'ready')!r}).write_text('1')\n"
              "time.sleep(60)\n")
    proc = ClientProcess(cfg, [sys.executable, "-c", script], tmp_path, writer)
    proc.start()
    while not (tmp_path / "ready").exists():
        proc.exited.wait(0.02)
    code, honoured = proc.stop(5, why="end of the run: drain")
    writer.close()
    assert (code, honoured) == (0, True)
    seen = [json.loads(line) for line in (tmp_path / "seen").read_text().splitlines()]
    assert [(e["kind"], e["target"], e["signal"], e["why"]) for e in seen] == [
        ("proc.signal", "consumer-0", "SIGTERM", "end of the run: drain")]


# ---- effects reach the history through the timeline ----------------------------------------
def test_a_catalogue_fault_through_a_timeline_writes_fault_effect(tmp_path: Path):
    import threading

    from test_faults_catalogue import FakeToxiproxy, ctx

    nemesis = HistoryWriter(tmp_path / "nemesis.jsonl", "nemesis", "nemesis")
    c: FaultContext = ctx(tp=FakeToxiproxy())
    timeline_for(RunSpec(client="x", fault="partition@0+0"), 0).execute(c, nemesis, threading.Event())
    nemesis.close()
    evs = [json.loads(line) for line in (tmp_path / "nemesis.jsonl").read_text().splitlines()]
    assert [(e["kind"], e.get("effect"), e.get("action")) for e in evs] == [
        ("fault.start", None, None), ("fault.effect", "hold applied", "start"),
        ("fault.effect", "hold released", "heal"), ("fault.stop", None, None)]
    assert all(e["window"] == 0 for e in evs) and evs[1]["observed"] is False


# ---- an interrupted run records itself and re-raises ---------------------------------------
class _FakeEnv:
    toxiproxy = None
    broker = NullBackend(capabilities=Capabilities())

    def versions(self) -> dict[str, str]:
        return {}


@pytest.mark.parametrize(("interrupt", "signame"), [(KeyboardInterrupt(), "SIGINT"), (None, "SIGTERM")])
def test_an_interrupted_run_writes_unknown_results_and_re_raises(tmp_path: Path, monkeypatch, interrupt, signame):
    from harness import engine
    from harness.errors import Interrupted
    from harness.run import phases

    def warmup(run: phases.Run) -> None:
        run.phase("warmup")
        raise interrupt if interrupt is not None else Interrupted("SIGTERM")

    monkeypatch.setattr(phases, "setup", lambda run: run.phase("setup"))
    monkeypatch.setattr(phases, "warmup", warmup)
    monkeypatch.setattr(phases.trusted, "drain", lambda *a: (False, -1))
    with pytest.raises(KeyboardInterrupt):
        engine.run_cell(_FakeEnv(), RunSpec(client="pika-recover"), tmp_path)  # type: ignore[arg-type]
    (run_dir,) = [d for d in tmp_path.iterdir() if d.is_dir() and not d.is_symlink()]
    doc = json.loads((run_dir / "results.json").read_text())
    assert doc["verdict"] == "unknown" and doc["interrupted"] is True
    assert f"interrupted by {signame}" in doc["reasons"]
    harness_events = [json.loads(line) for line in (run_dir / "history" / "harness.jsonl").read_text().splitlines()]
    assert [e.get("phase", e["kind"]) for e in harness_events] == ["setup", "warmup", "interrupted"]
    assert harness_events[-1]["signal"] == signame


def test_deadlines_from_toml_reach_check_options(tmp_path: Path):
    from harness.config import load

    (tmp_path / "pyproject.toml").write_text("[tool.rabbit-chaos]\nmax_block_s = 5\nmax_detection_s = 30.5\n")
    assert load(cwd=tmp_path).check_options() == {"max_block_s": 5.0, "max_detection_s": 30.5}
    (tmp_path / "pyproject.toml").write_text("[tool.rabbit-chaos]\nmax_block_s = 0\n")
    with pytest.raises(ChaosError, match="max_block_s"):
        load(cwd=tmp_path)
