"""The history: the event record every run is judged from.

Every process of a run (each client, the nemesis, the harness's drain reader, the runner that
supervises clients) appends JSON lines to its own file; :func:`merge` sorts them into one
``history.jsonl`` per run. The history is the truth: results and reports are derived from it.

Event fields (all events):
    t      float  CLOCK_MONOTONIC seconds (``time.monotonic()``), shared by all local processes
    wall   float  Unix time, for humans and for joining broker logs
    pid    int    OS process id of the writer
    proc   str    logical process name, e.g. "publisher-0", "consumer-0", "nemesis", "drain"
                  (``conn.node``: the client it is about, though the harness writes it)
    role   str    "publisher" | "consumer" | "nemesis" | "drain" | "harness"
    kind   str    one of KINDS below
    id     str    message id (message events only)
Kind-specific fields are listed in KINDS. Unknown extra fields are allowed and kept.

Message ids are opaque strings, unique within a run; a publisher makes them from the
``id_prefix`` it is given ("p0-" + sequence number) and sends the id as the UTF-8 message body,
so a consumer in any language can recover it without parsing headers.
"""

from __future__ import annotations

import gc
import json
import os
import threading
import time
from collections import deque
from collections.abc import Iterable, Iterator, Sequence
from itertools import compress, islice, repeat
from operator import is_not, itemgetter, setitem
from pathlib import Path
from sys import intern
from typing import Any, Literal, TextIO, Union, cast

import msgspec

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
    "consume.cancelled": (frozenset({"consumer"}), ()),  # optional: reason (the broker's basic.cancel cause)
    # connection (any client role)
    "conn.open": (frozenset({"publisher", "consumer"}), ()),  # optional: port (int, the port it reached)
    "conn.lost": (frozenset({"publisher", "consumer"}), ("error",)),
    "conn.blocked": (frozenset({"publisher", "consumer"}), ()),
    "conn.unblocked": (frozenset({"publisher", "consumer"}), ()),
    # a channel the broker (or the library) closed under the client: reason text, optional code
    "channel.closed": (frozenset({"publisher", "consumer"}), ("reason",)),
    # nemesis
    "fault.start": (frozenset({"nemesis"}), ("fault",)),
    "fault.stop": (frozenset({"nemesis"}), ("fault",)),
    # when a fault's effect was observed (broker down, alarm visible, toxic added, ...), beside the
    # fault.start/fault.stop the nemesis writes when it begins acting; action: "start" | "heal"
    "fault.effect": (frozenset({"nemesis"}), ("fault", "action", "effect")),
    # the harness's trusted drain reader: what was left in the queue after the run
    "drain": (frozenset({"drain"}), ("id", "redelivered")),
    "drain.done": (frozenset({"drain"}), ("complete", "remaining")),
    # the harness: phases and supervision of client processes
    "run.phase": (frozenset({"harness"}), ("phase",)),
    "proc.exit": (frozenset({"harness"}), ("target", "code", "expected")),
    # written *before* the harness signals a client: what the client does after it is not a
    # reaction to the fault (detection ignores it)
    "proc.signal": (frozenset({"harness"}), ("target", "signal")),
    # why the settle phase ended: "quiet" | "cap" | "consumer-exited" (+ held_unacked, waited_s)
    "settle.end": (frozenset({"harness"}), ("reason",)),
    "run.end": (frozenset({"harness"}), ()),
    # the harness samples the queue through the management API during the run (liveness)
    "queue.sample": (frozenset({"harness"}), ("messages_ready", "messages_unacked", "consumers")),
    # the harness saw (management API) a client's connection on another broker node than before:
    # ``proc`` is the *client* (e.g. "consumer-0"), not the writer; node = the Erlang node name,
    # or null when that client has no connection any more. A cluster run's per-node timeline.
    "conn.node": (frozenset({"harness"}), ("node",)),
}

#: fields whose type is fixed, per kind, checked when present (required or optional):
#: field -> (the types allowed, what the problem says). ``bool`` is no ``int`` here (JSON tells
#: them apart; a port of ``true`` is a bug in the writer).
TYPED: dict[str, dict[str, tuple[tuple[type, ...], str]]] = {
    "conn.open": {"port": ((int,), "an integer")},
    "conn.node": {"proc": ((str,), "a string (the client's proc)"),
                  "node": ((str, type(None)), "a string (an Erlang node name) or null")},
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
    for key in ("kind", "role"):  # a list here is a problem, not a TypeError (unhashable)
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
    for name, (types, what) in TYPED.get(kind, {}).items():
        if name in event and type(event[name]) not in types:
            problems.append(f"{kind} {name} must be {what}, not {event[name]!r:.60}")
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
    the checker decides what it means. Any other unparseable line is also a problem, and so is
    every event :func:`validate_event` rejects (``"<file>:<line>: <what>"``, line numbers from 1).

    The strings the checker compares and hashes per event (``kind``, ``proc``, the message
    ``id``) are interned: a decoder makes a fresh string per value with no cached hash, so
    otherwise every id is hashed again in the checker's loop and a publisher's ``"p0-7"`` and a
    consumer's ``"p0-7"`` are compared byte by byte in every set operation (interned ids make the
    check ~10 % faster); ``proc`` feeds the checker's last-process caches, which test identity.
    Interned, equal strings are one object (across files too, which is what ``merge`` needs):
    equality is a pointer test and the hash is computed once, here. Values are unchanged (equal
    strings, same dicts). ``role`` is not: the check never reads it per event, so interning it
    cost the read ~5 % for nothing.

    Fast because nothing runs per line in Python when the file is sound: msgspec decodes each
    line (several times faster than ``json.loads``), and validation and interning are C-level
    passes over blocks of events (:func:`_accept`). A line msgspec refuses is read again exactly
    as before (``json.loads`` of the text, so ``NaN`` or a lone surrogate still decode and a bad
    line gets the same message); a block with any invalid event is validated event by event.
    The cyclic garbage collector is paused meanwhile: a file of a million lines allocates
    millions of objects, and the collections that triggers walk the growing lists of lines and
    events again and again to find nothing (decoded JSON holds no reference cycles). O(n) for n
    lines.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        return _read(Path(path))
    finally:
        if enabled:
            gc.enable()


def _read(p: Path) -> tuple[list[Event], list[str]]:
    """:func:`read_events`, with the collector paused."""
    with open(p, "rb") as fh:
        buf = fh.read()
    if b"\r" in buf:  # what text mode's universal newlines made of it
        buf = buf.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
    lines = buf.split(b"\n")
    del buf
    if lines and lines[-1] == b"":
        lines.pop()
    problems: list[tuple[int, str]] = []
    objs, numbers = _decode(lines, p.name, problems)
    del lines
    events: list[Event] = []
    for a in range(0, len(objs), _BLOCK):
        block = objs[a:a + _BLOCK]
        if _accept(block):
            events += block
            continue
        for k, ev in enumerate(block, a):  # the exact check, event by event, for this block only
            n = k + 1 if numbers is None else numbers[k]
            bad = validate_event(ev)
            if bad:
                problems.append((n, f"{p.name}:{n}: " + "; ".join(bad)))
            else:
                _intern_one(ev)
                events.append(ev)
    problems.sort(key=itemgetter(0))  # stable: one message per line
    return events, [m for _, m in problems]


#: events validated (and interned) per block: one invalid event sends only its block through
#: the per-event :func:`validate_event`
_BLOCK = 4096
_decode_json = msgspec.json.Decoder().decode
_SKIP = object()  # a blank line: no event, no problem
_ABSENT = object()  # dict.get's default where absent and null must differ


def _valid_type() -> Any:
    """What :func:`validate_event` accepts, as a msgspec type (a list of events, one struct per
    kind, told apart by ``kind``): ``msgspec.convert`` then checks a block of decoded events in
    one C pass -- each known kind; a role it allows; every base and kind field present; ``t``,
    ``wall`` numbers; ``id`` a string where present; the :data:`TYPED` fields of their types
    where present. It is a little stricter (``true`` is no
    number to it), never laxer: what it refuses goes to :func:`validate_event`, which has the
    last word."""
    number = int | float
    structs: list[type] = []
    for kind, (roles, required) in KINDS.items():
        typed = {f: cast(Any, Union)[types] for f, (types, _) in TYPED.get(kind, {}).items()}
        fields: list[Any] = [("t", number), ("wall", number), ("pid", Any), ("proc", typed.pop("proc", Any)),
                             ("role", cast(Any, Literal)[tuple(sorted(roles))])]
        fields += [(f, str if f == "id" else typed.pop(f, Any)) for f in required]
        if "id" not in required:
            fields.append(("id", str | msgspec.UnsetType, msgspec.UNSET))
        fields += [(f, tp | msgspec.UnsetType, msgspec.UNSET) for f, tp in typed.items()]
        structs.append(msgspec.defstruct(f"_Valid{len(structs)}", fields, tag=kind, tag_field="kind", gc=False))
    return cast(Any, list)[cast(Any, Union)[tuple(structs)]]


_VALID = _valid_type()


def _decode(lines: list[bytes], name: str, problems: list[tuple[int, str]]) -> tuple[list[Any], list[int] | None]:
    """Every line decoded: (values, their 1-based line numbers, or None when value k is line
    k + 1). All lines but the last in one C-level pass; the last (the one a killed writer tears)
    on its own; a file with any other bad line line by line."""
    head = len(lines) - 1
    try:
        objs = list(map(_decode_json, islice(lines, head)))
    except (msgspec.DecodeError, ValueError):
        objs, numbers = [], []
        for n, line in enumerate(lines, 1):
            v = _decode_line(line, n, name, problems)
            if v is not _SKIP:
                objs.append(v)
                numbers.append(n)
        return objs, numbers
    if lines:
        v = _decode_line(lines[-1], head + 1, name, problems)
        if v is not _SKIP:
            objs.append(v)
    return objs, None


def _decode_line(line: bytes, n: int, name: str, problems: list[tuple[int, str]]) -> Any:
    """One line, as the line reader read it: msgspec first; what it refuses (a torn line, but
    also ``NaN``, a lone surrogate, invalid UTF-8, a blank line) as text with ``json.loads``."""
    try:
        return _decode_json(line)
    except (msgspec.DecodeError, ValueError):
        pass
    text = line.decode("utf-8", errors="replace")
    if not text.strip():
        return _SKIP
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        problems.append((n, f"{name}:{n}: unparseable line {text[:60]!r}"))
        return _SKIP


def _accept(block: list[Any]) -> bool:
    """Validate a block of decoded lines (:func:`_valid_type`) and, if every event in it is
    valid, intern its strings in place (see :func:`read_events`), all C-level: the kinds and
    procs have a handful of values, each interned once. False means "check them one by one":
    the block is untouched."""
    try:
        msgspec.convert(block, _VALID)
    except msgspec.ValidationError:
        return False
    for key in ("kind", "proc"):
        vals = list(map(dict.__getitem__, block, repeat(key)))
        if set(map(type, vals)) != {str}:  # a proc need not be a string
            for ev in block:
                v = ev[key]
                if type(v) is str:
                    ev[key] = intern(v)
            continue
        canon = {v: intern(v) for v in set(vals)}
        deque(map(setitem, block, repeat(key), map(canon.__getitem__, vals)), 0)
    ids = list(map(dict.get, block, repeat("id"), repeat(_ABSENT)))
    has = list(map(is_not, ids, repeat(_ABSENT)))
    deque(map(setitem, compress(block, has), repeat("id"), map(intern, compress(ids, has))), 0)
    return True


def _intern_one(ev: Event) -> None:
    """The same for one valid event."""
    ev["kind"] = intern(ev["kind"])  # validated: a str, one of KINDS
    for key in ("proc", "id"):
        v = ev.get(key)
        if type(v) is str:
            ev[key] = intern(v)


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
    write_history(events, out)
    return events, problems


def write_history(events: Sequence[Event], path: str | os.PathLike[str]) -> int:
    """Write events as a history file, one compact JSON object per line (what :func:`merge`
    writes and :func:`read_events` reads). Returns how many. O(n)."""
    with open(path, "w", encoding="utf-8") as fh:
        for ev in events:
            fh.write(json.dumps(ev, separators=(",", ":")) + "\n")
    return len(events)


def iter_history(path: str | os.PathLike[str]) -> Iterator[Event]:
    """Stream a merged history (already validated by merge), a line at a time with msgspec.
    Strings interned as in :func:`read_events` (``role`` too, as it always was: streaming, the
    saving does not matter). A line that does not parse raises ``json.JSONDecodeError``."""
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            if line.strip():
                try:
                    ev = _decode_json(line)
                except (msgspec.DecodeError, ValueError):
                    ev = json.loads(line)  # what msgspec refuses: NaN, lone surrogates; or the error
                if isinstance(ev, dict):
                    for key in ("kind", "proc", "role", "id"):
                        v = ev.get(key)
                        if type(v) is str:
                            ev[key] = intern(v)
                yield ev
