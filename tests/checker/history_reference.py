"""FROZEN REFERENCE: harness/history.py as it was before the msgspec reader (commit 5918f62).

Do not edit: tests/checker/test_read_equivalence.py asserts that the reader returns exactly what
this one returned (events and problem messages). The original docstring follows.

The history: the event record every run is judged from.

Every process of a run (each client, the nemesis, the harness's drain reader, the runner that
supervises clients) appends JSON lines to its own file; :func:`merge` sorts them into one
``history.jsonl`` per run. The history is the truth: results and reports are derived from it.

Event fields (all events):
    t      float  CLOCK_MONOTONIC seconds (``time.monotonic()``), shared by all local processes
    wall   float  Unix time, for humans and for joining broker logs
    pid    int    OS process id of the writer
    proc   str    logical process name, e.g. "publisher-0", "consumer-0", "nemesis", "drain"
    role   str    "publisher" | "consumer" | "nemesis" | "drain" | "harness"
    kind   str    one of KINDS below
    id     str    message id (message events only)
Kind-specific fields are listed in KINDS. Unknown extra fields are allowed and kept.

Message ids are opaque strings, unique within a run; a publisher makes them from the
``id_prefix`` it is given ("p0-" + sequence number) and sends the id as the UTF-8 message body,
so a consumer in any language can recover it without parsing headers.
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, TextIO

Event = dict[str, Any]

#: kind -> (roles allowed to write it, required kind-specific fields)
KINDS: dict[str, tuple[frozenset[str], tuple[str, ...]]] = {
    # client lifecycle (written by the client itself)
    "client.start": (frozenset({"publisher", "consumer"}), ("library", "version")),
    "client.exit": (frozenset({"publisher", "consumer"}), ("reason",)),
    # publisher: invoke, then exactly one of ok / fail / info (or nothing if the process died)
    "publish.invoke": (frozenset({"publisher"}), ("id",)),
    "publish.ok": (frozenset({"publisher"}), ("id", "confirmed")),
    "publish.fail": (frozenset({"publisher"}), ("id", "error")),
    "publish.info": (frozenset({"publisher"}), ("id", "error")),
    # consumer
    "deliver": (frozenset({"consumer"}), ("id", "redelivered")),
    "ack": (frozenset({"consumer"}), ("id",)),
    "consume.cancelled": (frozenset({"consumer"}), ()),
    # connection (any client role)
    "conn.open": (frozenset({"publisher", "consumer"}), ()),
    "conn.lost": (frozenset({"publisher", "consumer"}), ("error",)),
    "conn.blocked": (frozenset({"publisher", "consumer"}), ()),
    "conn.unblocked": (frozenset({"publisher", "consumer"}), ()),
    # nemesis
    "fault.start": (frozenset({"nemesis"}), ("fault",)),
    "fault.stop": (frozenset({"nemesis"}), ("fault",)),
    # the harness's trusted drain reader: what was left in the queue after the run
    "drain": (frozenset({"drain"}), ("id", "redelivered")),
    "drain.done": (frozenset({"drain"}), ("complete", "remaining")),
    # the harness: phases and supervision of client processes
    "run.phase": (frozenset({"harness"}), ("phase",)),
    "proc.exit": (frozenset({"harness"}), ("target", "code", "expected")),
    "run.end": (frozenset({"harness"}), ()),
    # the harness samples the queue through the management API during the run (liveness)
    "queue.sample": (frozenset({"harness"}), ("messages_ready", "messages_unacked", "consumers")),
}

BASE_FIELDS = ("t", "wall", "pid", "proc", "role", "kind")


def validate_event(event: Any) -> list[str]:
    """Return the problems with one event (empty list when valid). Used by check-client and merge."""
    if not isinstance(event, dict):
        return [f"event is not a JSON object: {event!r:.80}"]
    problems = [f"missing field {f!r}" for f in BASE_FIELDS if f not in event]
    if problems:
        return problems
    kind = event["kind"]
    # adjusted after the freeze, following a deliberate change (issue 16 hardening, d42958a): a
    # non-string kind or role is a problem with the line, no longer a TypeError out of the reader
    for key in ("kind", "role"):
        if not isinstance(event[key], str):
            return [f"{key} must be a string, not {event[key]!r:.60}"]
    if kind not in KINDS:
        return [f"unknown kind {kind!r}"]
    roles, required = KINDS[kind]
    if event["role"] not in roles:
        problems.append(f"kind {kind!r} cannot be written by role {event['role']!r}")
    problems += [f"{kind} event missing field {f!r}" for f in required if f not in event]
    if not isinstance(event["t"], (int, float)) or not isinstance(event["wall"], (int, float)):
        problems.append("t and wall must be numbers (seconds)")
    if "id" in event and not isinstance(event["id"], str):
        problems.append("id must be a string")
    return problems


class HistoryWriter:
    """Append-only JSON-lines writer for one process; thread-safe; every line flushed.

    Flushing per line costs a syscall per event, but a killed process then leaves a history
    that is complete up to its last action, which is what makes a crash judgeable.
    """

    def __init__(self, path: str | os.PathLike[str], proc: str, role: str) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.proc = proc
        self.role = role
        self._pid = os.getpid()
        self._lock = threading.Lock()
        self._fh: TextIO | None = open(self.path, "a", encoding="utf-8")  # noqa: SIM115

    def write(self, kind: str, **fields: Any) -> Event:
        event: Event = {
            "t": time.monotonic(),
            "wall": time.time(),
            "pid": self._pid,
            "proc": self.proc,
            "role": self.role,
            "kind": kind,
            **fields,
        }
        line = json.dumps(event, separators=(",", ":"), default=str) + "\n"
        with self._lock:
            if self._fh is None:
                return event
            self._fh.write(line)
            self._fh.flush()
        return event

    def close(self) -> None:
        with self._lock:
            if self._fh is not None:
                self._fh.close()
                self._fh = None

    def __enter__(self) -> HistoryWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class HistoryError(ValueError):
    """A history file that cannot be trusted (unparseable line other than a torn last line)."""


def read_events(path: str | os.PathLike[str]) -> tuple[list[Event], list[str]]:
    """Read one JSON-lines file. Returns (events, problems).

    A torn *last* line (the writer was killed mid-write) is reported as a problem, not raised:
    the checker decides what it means. Any other unparseable line is also a problem.

    The strings the checker compares and hashes per event (``kind``, ``proc``, ``role``, the
    message ``id``) are interned: ``json.loads`` makes a fresh string per value with no cached
    hash, so otherwise every ``kind == "deliver"`` compares bytes, every id is hashed again in the
    checker's loop, and a publisher's ``"p0-7"`` and a consumer's ``"p0-7"`` are compared byte by
    byte in every set operation. Interned, equal strings are one object (across files too, which
    is what ``merge`` needs): equality is a pointer test and the hash is computed once, here,
    while the line is still in the cache. Values are unchanged (equal strings, same dicts).
    """
    from sys import intern

    events: list[Event] = []
    problems: list[str] = []
    p = Path(path)
    with open(p, encoding="utf-8", errors="replace") as fh:
        lines = fh.read().split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            ev = json.loads(line)
        except json.JSONDecodeError:
            problems.append(f"{p.name}:{n}: unparseable line {line[:60]!r}")
            continue
        bad = validate_event(ev)
        if bad:
            problems.append(f"{p.name}:{n}: " + "; ".join(bad))
            continue
        ev["kind"] = intern(ev["kind"])  # validated: a str, one of KINDS
        v = ev["proc"]
        if type(v) is str:
            ev["proc"] = intern(v)
        v = ev["role"]
        if type(v) is str:
            ev["role"] = intern(v)
        v = ev.get("id")
        if type(v) is str:
            ev["id"] = intern(v)
        events.append(ev)
    return events, problems


def merge(paths: Iterable[str | os.PathLike[str]], out: str | os.PathLike[str]) -> tuple[list[Event], list[str]]:
    """Merge per-process files into one time-ordered history file. Returns (events, problems).

    Sort is stable on (t, file order), so events one process wrote keep their order.
    """
    events: list[Event] = []
    problems: list[str] = []
    for path in paths:
        evs, probs = read_events(path)
        events.extend(evs)
        problems.extend(probs)
    events.sort(key=lambda e: e["t"])
    with open(out, "w", encoding="utf-8") as fh:
        for ev in events:
            fh.write(json.dumps(ev, separators=(",", ":")) + "\n")
    return events, problems


def iter_history(path: str | os.PathLike[str]) -> Iterator[Event]:
    """Stream a merged history (already validated by merge). Strings interned as in
    :func:`read_events`."""
    from sys import intern

    with open(path, encoding="utf-8") as fh:
        for line in fh:
            if line.strip():
                ev = json.loads(line)
                if isinstance(ev, dict):
                    for key in ("kind", "proc", "role", "id"):
                        v = ev.get(key)
                        if type(v) is str:
                            ev[key] = intern(v)
                yield ev
