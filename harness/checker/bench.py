"""Checker throughput: ``python -m harness.checker.bench [n_events]``.

:func:`synthetic` makes a realistic history (2 publishers, 2 consumers, confirmed publishes,
deliver + ack, queue samples every 0.5 s, a connection fault in the middle with publish.info,
re-sends, redeliveries and reconnects, a drain that finds a few stranded messages). :func:`bench`
times :func:`harness.checker.check` on n and 2n events read back from a history file; goal: >= 1 M
events/s and a 2n/n time ratio <= 2.1 (linear). It also reports the read, since ``check_file``
users pay both.
"""

from __future__ import annotations

import gc
import json
import random
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from harness.checker import check
from harness.history import Event, read_events


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


def _time(events: list[Event], repeat: int, gc_off: bool = True) -> float:
    """Best CPU time of ``repeat`` checks (``gc_off``: with the cyclic GC paused, as the bench
    always did; a user's check runs with it on, which ``bench`` reports too)."""
    best = float("inf")
    for _ in range(repeat):
        gc.collect()
        if gc_off:
            gc.disable()
        try:
            start = time.process_time()
            check(events)
            best = min(best, time.process_time() - start)
        finally:
            gc.enable()
    return best


def _read(events: list[Event]) -> tuple[list[Event], float]:
    """Write ``events`` as a history file (what ``merge`` writes) and read it back with
    :func:`harness.history.read_events`, as ``check_file`` and the engine do. Returns the events
    as read (each owns its strings, interned as the reader interns them) and the CPU time the
    read took (one sample: a read of 1 M lines takes seconds)."""
    with tempfile.TemporaryDirectory(prefix="rc-bench-") as tmp:
        path = Path(tmp) / "history.jsonl"
        with open(path, "w", encoding="utf-8") as fh:
            for ev in events:
                fh.write(json.dumps(ev, separators=(",", ":")) + "\n")
        gc.collect()
        start = time.process_time()
        read, problems = read_events(path)
        took = time.process_time() - start
    assert not problems, problems[:3]
    return read, took


def bench(n_events: int = 1_000_000, repeat: int = 3, from_json: bool = True) -> dict[str, Any]:
    """Time check() on ~n and ~2n synthetic events (best of ``repeat``, CPU time of this process).

    ``from_json`` (default): the events are written to a history file and read back with
    ``read_events``, so their strings and memory layout are what a real check gets. Then the
    result also says what a user pays for ``check_file`` (read + check): ``read_s``,
    ``read_events_per_s`` and ``end_to_end_events_per_s`` (one read, the best check). Without it,
    the synthetic dicts are checked as built (shared constant strings: faster than real).

    ``events_per_s`` and ``ratio_2n_n`` are the checker's own goal (>= 1 M/s, <= 2.1): check
    only, GC paused; ``events_per_s_gc`` is the same check with the GC running, as in a user's
    process.
    """
    small = synthetic(n_events)
    large = synthetic(2 * n_events)
    read_n = read_2n = None
    if from_json:
        small, read_n = _read(small)
        large, read_2n = _read(large)
    t_n = _time(small, repeat)
    t_2n = _time(large, repeat)
    t_gc = _time(small, repeat, gc_off=False)
    out: dict[str, Any] = {
        "n_events": len(small),
        "seconds_n": round(t_n, 4),
        "seconds_2n": round(t_2n, 4),
        "events_per_s": round(len(small) / t_n),
        "events_per_s_2n": round(len(large) / t_2n),
        "ratio_2n_n": round(t_2n / t_n, 3),
        "events_per_s_gc": round(len(small) / t_gc),
        "from_json": from_json,
        "verdict": check(small).verdict,
    }
    if read_n is not None and read_2n is not None:
        out.update({
            "read_s": round(read_n, 4),
            "read_s_2n": round(read_2n, 4),
            "read_events_per_s": round(len(small) / read_n),
            "end_to_end_events_per_s": round(len(small) / (read_n + t_n)),
            "end_to_end_ratio_2n_n": round((read_2n + t_2n) / (read_n + t_n), 3),
        })
    return out


if __name__ == "__main__":
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000
    print(json.dumps(bench(n, from_json="--shared-strings" not in sys.argv), indent=2))
