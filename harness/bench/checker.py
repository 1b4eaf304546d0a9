"""Checker throughput: ``python -m harness.bench.checker [n_events]`` (or ``rabbit-chaos bench checker``).

:func:`synthetic` makes a realistic history (2 publishers, 2 consumers, confirmed publishes,
deliver + ack, queue samples every 0.5 s, a connection fault in the middle with publish.info,
re-sends, redeliveries and reconnects, a drain that finds a few stranded messages). :func:`bench`
writes it as a history file of n and one of 2n events and times :func:`harness.checker.check` on
each in fresh processes; goal: >= 1 M events/s and a 2n/n time ratio <= 2.1 (linear). It also
reports the read, since ``check_file`` users pay both.

Why fresh processes, in pairs, alternating. On this shared 2-core box one process's check time
moves by +-30 % with the neighbours' load, and timing n and 2n in one process (the first method)
made the 2n history's layout depend on the n one's leftovers (2n/n 2.4-2.7 in-process against
~2.1 in fresh ones). So every round measures both sizes, each in a new interpreter that reads the
file as ``check_file`` does, back to back (order alternating between rounds). Load only ever adds
time, so ``events_per_s`` comes from the least n-time (what ``timeit`` recommends). The ratio is
the median of the rounds' own ratios: the two halves of a round ran under the same load, while
the least n-time and the least 2n-time may come from different moments (the ratio of those is
reported too, ``ratio_2n_n_least``, with every sample, so a reader can see the spread).

Fail closed on a loud box. Load only adds time, and it rarely slows both halves of a round
alike: a loaded round's ratio swung 1.35-2.95 in runs where the quiet rounds all gave 2.09-2.18,
and a run whose n processes happened to be the slowed ones "met" the goal. So only *quiet* rounds
count for the ratio: both of its times within ``QUIET_TOLERANCE`` (10 %) of the least time of
their size (:func:`judge_ratio`). The bench adds rounds, up to ``max_rounds``, until it has
``MIN_QUIET_ROUNDS`` quiet ones; with fewer, the ratio goal is ``unknown`` with the reason, never
met. A control run in the same processes checks the quiet rounds themselves: a bare loop over the
same events is linear, so its 2n/n there must lie in ``FLOOR_BAND``; outside it one size's
processes all ran on a more loaded box (their least time is a loaded one too), and the ratio goal
is ``unknown`` as well. ``goal_verdict`` is then ``pass`` (both goals met), ``fail`` or ``unknown``.
"""

from __future__ import annotations

import gc
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from harness.checker import check
from harness.history import Event, read_events, write_history

#: the goals of the checker's issue, checked in every bench result
GOAL_EVENTS_PER_S = 1_000_000
GOAL_RATIO_2N_N = 2.1
#: a round is quiet when both its times are within this fraction of their size's least time
QUIET_TOLERANCE = 0.10
#: quiet rounds needed before the ratio is judged (fewer: ``unknown``)
MIN_QUIET_ROUNDS = 3
#: the control's 2n/n (a bare loop over the same events, :func:`_floor`) must fall in this band
#: over the quiet rounds: it measured 1.93-1.98 on a quiet box; outside, the two sizes' processes
#: ran on a differently loaded box (the 2n ones slower above it, the n ones below)
FLOOR_BAND = (1.85, 2.05)


def synthetic(n_events: int, seed: int = 0, rate: float = 20_000.0) -> list[Event]:
    """About ``n_events`` events of a realistic faulty run, sorted by t. O(n log n) to build."""
    rnd = random.Random(seed)
    t0 = 1000.0
    wall = 1_700_000_000.0
    pubs = ["publisher-0", "publisher-1"]
    cons = ["consumer-0", "consumer-1"]
    pids = {p: 2000 + k for k, p in enumerate([*pubs, *cons, "nemesis", "drain", "harness"])}
    roles = {**{p: "publisher" for p in pubs}, **{c: "consumer" for c in cons},
             "nemesis": "nemesis", "drain": "drain", "harness": "harness"}
    evs: list[Event] = []

    def ev(t: float, proc: str, kind: str, **f: Any) -> None:
        evs.append({"t": t, "wall": t + wall, "pid": pids[proc], "proc": proc, "role": roles[proc],
                    "kind": kind, **f})

    n_msgs = max(10, n_events // 4)
    dt = 1.0 / rate
    duration = n_msgs * dt
    f_start, f_stop = t0 + 1.0 + 0.4 * duration, t0 + 1.0 + 0.5 * duration
    ev(t0, "harness", "run.phase", phase="warmup")
    for c in cons:
        ev(t0 + 0.01, c, "client.start", library="pika", version="1.3.2", strategy="bench")
        ev(t0 + 0.02, c, "conn.open")
    for p in pubs:
        ev(t0 + 0.03, p, "client.start", library="pika", version="1.3.2", strategy="bench")
        ev(t0 + 0.04, p, "conn.open")
    ev(f_start, "nemesis", "fault.start", fault="proxy_down")
    ev(f_stop, "nemesis", "fault.stop", fault="proxy_down")
    for proc in [*pubs, *cons]:
        ev(f_start + 0.05, proc, "conn.lost", error="ConnectionResetError")
        ev(f_stop + 0.3, proc, "conn.open")
    resend: list[tuple[str, str]] = []
    seqs = dict.fromkeys(pubs, 0)
    for k in range(n_msgs):
        t = t0 + 1.0 + k * dt
        p = pubs[k % 2]
        i = f"p{k % 2}-{seqs[p]}"
        seqs[p] += 1
        c = cons[k % 2]
        if f_start <= t < f_stop:
            ev(t, p, "publish.invoke", id=i)
            ev(t + 0.5 * dt, p, "publish.info", id=i, error="ConnectionResetError")
            resend.append((p, i))
            continue
        ev(t, p, "publish.invoke", id=i)
        ev(t + 0.002, p, "publish.ok", id=i, confirmed=True)
        ev(t + 0.003, c, "deliver", id=i, redelivered=False)
        if f_start - 0.003 <= t < f_start:
            ev(f_stop + 0.31 + rnd.random() * 0.01, c, "deliver", id=i, redelivered=True)  # redelivery
        else:
            ev(t + 0.0035, c, "ack", id=i)
    t = f_stop + 0.35
    for p, i in resend:
        ev(t, p, "publish.invoke", id=i)
        ev(t + 0.002, p, "publish.ok", id=i, confirmed=True)
        ev(t + 0.003, cons[0], "deliver", id=i, redelivered=False)
        ev(t + 0.0035, cons[0], "ack", id=i)
        t += dt
    end = max(t, t0 + 1.0 + duration) + 0.5
    s = t0
    while s < end:
        ev(s, "harness", "queue.sample", messages_ready=rnd.randint(0, 3), messages_unacked=rnd.randint(0, 10),
           consumers=2)
        s += 0.5
    ev(end, "harness", "run.phase", phase="settle")
    for proc in [*pubs, *cons]:
        ev(end + 0.1, proc, "client.exit", reason="sigterm" if proc in cons else "done", ok=True)
        ev(end + 0.2, "harness", "proc.exit", target=proc, code=0, expected=True)
    ev(end + 0.3, "harness", "run.phase", phase="drain")
    ev(end + 0.4, "drain", "drain.done", complete=True, remaining=0)
    ev(end + 0.5, "harness", "run.phase", phase="done")
    ev(end + 0.6, "harness", "run.end")
    evs.sort(key=lambda e: e["t"])
    return evs


def measure(path: str | os.PathLike[str], repeat: int = 3) -> dict[str, Any]:
    """Read one history file and time :func:`check` on it, in this process: the read (one
    sample: CPU time), the best of ``repeat`` checks with the cyclic GC paused, and one check with
    it running (as in a user's process). Meant to run in a fresh process (:func:`bench`)."""
    gc.collect()
    start = time.process_time()
    events, problems = read_events(path)
    read_s = time.process_time() - start
    if problems:
        raise ValueError(f"the bench history {path} has problems: {problems[:3]}")
    best = float("inf")
    for _ in range(repeat):
        gc.collect()
        gc.disable()
        try:
            start = time.process_time()
            result = check(events)
            best = min(best, time.process_time() - start)
        finally:
            gc.enable()
    gc.collect()
    start = time.process_time()
    check(events)
    with_gc = time.process_time() - start
    return {"events": len(events), "read_s": read_s, "check_s": best, "check_gc_s": with_gc,
            "floor_s": _floor(events, repeat), "verdict": result.verdict}


def _floor(events: list[Event], repeat: int) -> float:
    """Best of ``repeat`` timings of the least any checker must do: visit every event and read
    its time, kind and id. Its 2n/n ratio is the machine's own scaling on the same data (caches,
    memory): what the checker's ratio exceeds it by is the checker's."""
    best = float("inf")
    for _ in range(repeat):
        gc.disable()
        try:
            start = time.process_time()
            for ev in events:
                ev["t"], ev["kind"], ev.get("id")  # the reads are the point
            best = min(best, time.process_time() - start)
        finally:
            gc.enable()
    return best


def _measure_fresh(path: Path, repeat: int) -> dict[str, Any]:
    """:func:`measure` in a new interpreter (``python -m harness.bench.checker --measure``)."""
    cmd = [sys.executable, "-m", "harness.bench.checker", "--measure", str(path), "--repeat", str(repeat)]
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"checker bench child failed ({done.returncode}): {done.stderr.strip()[-2000:]}")
    sample: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return sample


def judge_ratio(n_times: list[float], n2_times: list[float], floors: tuple[list[float], list[float]] | None = None,
                goal: float = GOAL_RATIO_2N_N, tolerance: float = QUIET_TOLERANCE,
                min_quiet: int = MIN_QUIET_ROUNDS, floor_band: tuple[float, float] = FLOOR_BAND) -> dict[str, Any]:
    """Judge the 2n/n goal from paired round times (round k: ``n_times[k]``, ``n2_times[k]``), and
    the control's times in the same processes (``floors``: n and 2n, per round), when given.

    A round is quiet when its n-time is within ``tolerance`` of the least n-time and its 2n-time
    within ``tolerance`` of the least 2n-time: load only ever adds time, so a round well above the
    least ran under load, and a loaded round's ratio says more about the neighbours than about the
    checker. The ratio is the median of the quiet rounds' own ratios; with fewer than ``min_quiet``
    quiet rounds it is None and ``met`` is None (unknown), with the reason.

    "Within the least" cannot see a run in which every process of one size ran loaded: its least
    is a loaded time too (a run here: least 2n-time 1.296 s against 1.159 s in a quiet run, and a
    "fail" at 2.351). The control catches that: a bare loop over the same events is linear, so its
    2n/n over the quiet rounds (``floor_ratio``) must lie in ``floor_band``; outside it the two
    sizes did not run on the same box, and ``met`` is None. O(r log r)."""
    if len(n_times) != len(n2_times) or not n_times or (floors is not None and not (
            len(floors[0]) == len(floors[1]) == len(n_times))):
        raise ValueError("judge_ratio needs one n-time and one 2n-time per round (and one control time of each), "
                         "and at least one round")
    least_n, least_2n = min(n_times), min(n2_times)
    quiet = [k for k, (a, b) in enumerate(zip(n_times, n2_times, strict=True))
             if a <= least_n * (1 + tolerance) and b <= least_2n * (1 + tolerance)]
    floor_ratio = None
    if floors is not None:
        floor_ratio = round(statistics.median(floors[1][k] / floors[0][k] for k in (quiet or range(len(n_times)))), 3)
    if len(quiet) < min_quiet:
        return {"quiet_rounds": quiet, "ratio": None, "met": None, "floor_ratio": floor_ratio,
                "reason": f"only {len(quiet)} of {len(n_times)} rounds were quiet (both times within "
                          f"{tolerance:.0%} of their least; {min_quiet} needed): n-times "
                          f"{least_n:.3f}-{max(n_times):.3f} s, 2n-times {least_2n:.3f}-{max(n2_times):.3f} s; "
                          "the box was too loud to judge the ratio, run the bench again when it is quiet"}
    ratio = round(statistics.median(n2_times[k] / n_times[k] for k in quiet), 3)
    if floor_ratio is not None and not floor_band[0] <= floor_ratio <= floor_band[1]:
        return {"quiet_rounds": quiet, "ratio": ratio, "met": None, "floor_ratio": floor_ratio,
                "reason": f"the control (a bare loop over the same events, linear) scaled {floor_ratio} over the "
                          f"{len(quiet)} quiet rounds, outside {floor_band[0]}-{floor_band[1]}: the "
                          f"{'2n' if floor_ratio > floor_band[1] else 'n'} processes ran on a more loaded box, so "
                          f"their ratio of {ratio} cannot be judged; run the bench again when it is quiet"}
    return {"quiet_rounds": quiet, "ratio": ratio, "met": ratio <= goal, "floor_ratio": floor_ratio,
            "reason": f"median of {len(quiet)} quiet rounds: {ratio} {'<=' if ratio <= goal else '>'} {goal}"}


def bench(n_events: int = 1_000_000, rounds: int = 5, repeat: int = 5, max_rounds: int | None = None) -> dict[str, Any]:
    """Time check() on ~n and ~2n synthetic events: at least ``rounds`` rounds, each measuring both
    sizes in a fresh process (order alternating between rounds, so a drift in the box's load hits
    both alike), each process taking the best of ``repeat`` checks (CPU time, GC paused); more
    rounds, up to ``max_rounds`` (default ``3 * rounds``), while fewer than ``MIN_QUIET_ROUNDS``
    (or ``rounds``, if smaller) are quiet (:func:`judge_ratio`).

    Headline: ``events_per_s`` = n / least n-time, ``ratio_2n_n`` = median of the quiet rounds'
    2n/n ratios, None when too few were quiet (see the module docstring for why). Beside it:
    ``quiet_rounds``, ``ratio_2n_n_all_rounds`` (the median over every round, for comparison),
    ``ratio_2n_n_least`` (least 2n-time / least n-time) and every sample; ``floor_ratio_2n_n``
    (the same ratio for a bare loop over the same events, :func:`_floor`: the machine's share,
    over the same quiet rounds); ``events_per_s_gc`` (GC running); what ``check_file`` costs a
    user: ``read_s``, ``read_events_per_s``, ``end_to_end_events_per_s``; ``check_verdict`` (what
    the checker said of the synthetic run: ``pass``); and ``goals_met`` / ``goal_verdict`` /
    ``goal_reasons``. O(rounds * n) time; the parent holds no history while the children run.
    """
    max_rounds = 3 * rounds if max_rounds is None else max_rounds
    bad = [what for what, ok in ((f"--rounds {rounds}: give 1 or more", rounds >= 1),
                                 (f"--repeat {repeat}: give 1 or more", repeat >= 1),
                                 (f"--events {n_events}: give 10 or more", n_events >= 10),
                                 (f"--max-rounds {max_rounds}: give at least --rounds ({rounds})",
                                  max_rounds >= rounds)) if not ok]
    if bad:
        raise ValueError("bench checker: " + "; ".join(bad))
    min_quiet = min(MIN_QUIET_ROUNDS, rounds)
    with tempfile.TemporaryDirectory(prefix="rc-bench-") as tmp:
        paths = {"n": Path(tmp) / "history-n.jsonl", "2n": Path(tmp) / "history-2n.jsonl"}
        sizes = {"n": write_history(synthetic(n_events), paths["n"]),
                 "2n": write_history(synthetic(2 * n_events), paths["2n"])}
        gc.collect()
        samples: dict[str, list[dict[str, Any]]] = {"n": [], "2n": []}

        def times(size: str, key: str = "check_s") -> list[float]:
            return [s[key] for s in samples[size]]

        def judged() -> dict[str, Any]:
            return judge_ratio(times("n"), times("2n"), (times("n", "floor_s"), times("2n", "floor_s")),
                               min_quiet=min_quiet)

        def judged_yet() -> bool:
            return judged()["met"] is not None

        r = 0
        while r < rounds or (r < max_rounds and not judged_yet()):
            for size in ("n", "2n") if r % 2 == 0 else ("2n", "n"):
                samples[size].append(_measure_fresh(paths[size], repeat))
            r += 1
    n, n2 = sizes["n"], sizes["2n"]

    def least(size: str, key: str) -> float:
        return min(s[key] for s in samples[size])

    t_n, t_2n = least("n", "check_s"), least("2n", "check_s")
    read_n, read_2n = least("n", "read_s"), least("2n", "read_s")
    judgement = judged()
    per_round = [b / a for a, b in zip(times("n"), times("2n"), strict=True)]
    speed_met = n / t_n >= GOAL_EVENTS_PER_S
    reasons = [f"events/s {n / t_n:,.0f} {'>=' if speed_met else '<'} {GOAL_EVENTS_PER_S:,}",
               f"2n/n: {judgement['reason']}"]
    if not speed_met or judgement["met"] is False:
        goal_verdict = "fail"
    elif judgement["met"] is None:
        goal_verdict = "unknown"
    else:
        goal_verdict = "pass"
    out: dict[str, Any] = {
        "n_events": n,
        "n_events_2n": n2,
        "method": f"{r} rounds x 2 sizes, each a fresh process, best of {repeat} checks (CPU time, GC "
                  "paused); events/s from the least n-time, ratio = median of the quiet rounds' ratios "
                  f"(both times within {QUIET_TOLERANCE:.0%} of their least)",
        "seconds_n": round(t_n, 4),
        "seconds_2n": round(t_2n, 4),
        "events_per_s": round(n / t_n),
        "events_per_s_2n": round(n2 / t_2n),
        "ratio_2n_n": judgement["ratio"],
        "quiet_rounds": judgement["quiet_rounds"],
        "ratio_2n_n_all_rounds": round(statistics.median(per_round), 3),
        "ratio_2n_n_least": round(t_2n / t_n, 3),
        "ratio_2n_n_rounds": [round(x, 3) for x in per_round],
        "seconds_n_rounds": [round(x, 4) for x in times("n")],
        "seconds_2n_rounds": [round(x, 4) for x in times("2n")],
        "floor_ratio_2n_n": judgement["floor_ratio"],
        "events_per_s_gc": round(n / least("n", "check_gc_s")),
        "read_s": round(read_n, 4),
        "read_s_2n": round(read_2n, 4),
        "read_events_per_s": round(n / read_n),
        "end_to_end_events_per_s": round(n / (read_n + t_n)),
        "end_to_end_ratio_2n_n": round((read_2n + t_2n) / (read_n + t_n), 3),
        "check_verdict": samples["n"][0]["verdict"],
        "goals": {"events_per_s": GOAL_EVENTS_PER_S, "ratio_2n_n": GOAL_RATIO_2N_N},
        "goals_met": {"events_per_s": speed_met, "ratio_2n_n": judgement["met"]},
        "goal_verdict": goal_verdict,
        "goal_reasons": reasons,
    }
    return out


def main(argv: list[str]) -> None:
    """``[n_events] [--rounds R] [--max-rounds M] [--repeat K]``, or (a bench child) ``--measure FILE --repeat K``."""
    args = list(argv)

    def opt(name: str, default: int) -> int:
        if name in args:
            k = args.index(name)
            value = int(args[k + 1])
            del args[k:k + 2]
            return value
        return default

    repeat = opt("--repeat", 5)
    if "--measure" in args:
        print(json.dumps(measure(args[args.index("--measure") + 1], repeat)), flush=True)
        return
    rounds = opt("--rounds", 5)
    max_rounds = opt("--max-rounds", 3 * rounds)
    n = int(args[0]) if args else 1_000_000
    print(json.dumps(bench(n, rounds=rounds, repeat=repeat, max_rounds=max_rounds), indent=2))


if __name__ == "__main__":
    main(sys.argv[1:])
