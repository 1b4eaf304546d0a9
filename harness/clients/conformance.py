"""``rabbit-chaos check-client``: does a client speak the client protocol?

A chaos verdict is only as good as the history it is judged from, so before a user's client is
put under faults it is run once without any, on a real broker, and its evidence is checked
against docs/client-protocol.md rule by rule. Each violation is one message naming the rule,
where it happened (file and line, or the process) and how to fix it; the rules are pure
functions over per-process histories so they are unit-tested without a broker.

Rules (ids used in messages):
  json        every history line is one JSON object
  schema      ... and a valid event (harness.history.validate_event), written by this process
  bookends    client.start first, client.exit last, each exactly once
  clock       ``t`` never decreases within a process (CLOCK_MONOTONIC)
  notices     the optional fields the checker reads are well-formed where present:
              client.start heartbeat_s / heartbeat_window_s, client.exit ok / error,
              conn.blocked / consume.cancelled / channel.closed reason (and code)
  outcome     every publish.invoke gets exactly one outcome before the next invoke of that id
              and before client.exit; no outcome without an invoke
  ids         the publisher publishes id_prefix+0 .. id_prefix+(count-1), each confirmed ok
  delivered   the consumer delivers (and acks) every published id, and nothing else
  exit        the publisher exits 0 by itself ("done"); the consumer runs until SIGTERM
  sigterm     the consumer honours SIGTERM: client.exit "sigterm", exit 0 within grace_s
  connection  every connection is named "<run_id>/<proc>" (client property connection_name)
  verdict     a fault-free run must pass the checker (what the rules above did not explain)
"""

from __future__ import annotations

import contextlib
import json
import re
import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from harness.history import validate_event

if TYPE_CHECKING:
    from harness.env.backend import Backend

RULES: dict[str, str] = {
    "json": "every history line is a JSON object",
    "schema": "every event is valid for its kind and written by its own process",
    "bookends": "client.start first, client.exit last",
    "clock": "t (CLOCK_MONOTONIC) never decreases within a process",
    "notices": "heartbeat, exit and notice fields are well-formed",
    "outcome": "every publish.invoke gets exactly one outcome before client.exit",
    "ids": "the publisher publishes every id of the config, each confirmed",
    "delivered": "the consumer delivers and acks every published id",
    "exit": "the publisher exits 0 by itself; the consumer runs until stopped",
    "sigterm": "the consumer honours SIGTERM within grace_s",
    "connection": 'connections are named "<run_id>/<proc>"',
    "verdict": "a fault-free run passes the checker",
}

#: how many violations of one rule are listed before "... and N more"
MAX_PER_RULE = 5

Line = tuple[int, dict[str, Any]]  # (1-based line number, event)


@dataclass(frozen=True)
class Violation:
    rule: str
    where: str
    problem: str
    fix: str

    def __str__(self) -> str:
        return f"[{self.rule}] {self.where}: {self.problem}\n    fix: {self.fix}"


def _v(rule: str, where: str, problem: str, fix: str) -> Violation:
    return Violation(rule, where, problem, fix)


# ---- rules over one process's history ---------------------------------------------------------

def parse_history(name: str, text: str, proc: str, role: str) -> tuple[list[Line], list[Violation]]:
    """Rules ``json`` and ``schema``: parse every line; keep the valid events with line numbers."""
    lines: list[Line] = []
    out: list[Violation] = []
    raw = text.split("\n")
    if raw and raw[-1] == "":
        raw.pop()
    elif raw and raw[-1]:
        out.append(_v("json", f"{name}:{len(raw)}", "the last line has no newline (torn or unflushed write)",
                      "end every event with \\n and flush after each line"))
    for n, line in enumerate(raw, 1):
        if not line.strip():
            out.append(_v("json", f"{name}:{n}", "empty line", "write one JSON object per line, no blank lines"))
            continue
        try:
            ev = json.loads(line)
        except json.JSONDecodeError as exc:
            out.append(_v("json", f"{name}:{n}", f"not JSON ({exc.msg}): {line[:80]!r}",
                          "write each event as one line of JSON (e.g. JSON.stringify(event) + '\\n')"))
            continue
        problems = validate_event(ev)
        if problems:
            out.append(_v("schema", f"{name}:{n}", "; ".join(problems) + f" in {line[:100]!r}",
                          "see the event table in docs/client-protocol.md (fields t, wall, pid, proc, role, "
                          "kind, and the kind's own fields)"))
            continue
        if ev["proc"] != proc or ev["role"] != role:
            out.append(_v("schema", f"{name}:{n}", f"proc/role {ev['proc']!r}/{ev['role']!r}, expected "
                          f"{proc!r}/{role!r}", "copy proc and role from the config file into every event"))
            continue
        lines.append((n, ev))
    return lines, out


def check_bookends(name: str, lines: Sequence[Line]) -> list[Violation]:
    """Rule ``bookends``: the harness reads a missing client.exit as "died without a word"."""
    if not lines:
        return [_v("bookends", name, "no valid events at all",
                   "write client.start as soon as the process starts (see the log for why it did not)")]
    out: list[Violation] = []
    starts = [n for n, e in lines if e["kind"] == "client.start"]
    exits = [n for n, e in lines if e["kind"] == "client.exit"]
    first_n, first = lines[0]
    last_n, last = lines[-1]
    if first["kind"] != "client.start":
        out.append(_v("bookends", f"{name}:{first_n}", f"first event is {first['kind']!r}, not client.start",
                      "write client.start (with library and version) before anything else"))
    if len(starts) > 1:
        out.append(_v("bookends", f"{name}:{starts[1]}", "client.start written more than once",
                      "write client.start once per process, not per connection (use conn.open for those)"))
    if not exits:
        out.append(_v("bookends", f"{name}:{last_n}", f"no client.exit (last event: {last['kind']!r})",
                      'write client.exit with reason "done" / "sigterm" / the error, and flush, before exiting'))
    elif last["kind"] != "client.exit":
        out.append(_v("bookends", f"{name}:{last_n}", f"{last['kind']!r} written after client.exit "
                      f"(line {exits[0]})", "client.exit must be the last event: stop all work before writing it"))
    elif len(exits) > 1:
        out.append(_v("bookends", f"{name}:{exits[1]}", "client.exit written more than once",
                      "write client.exit exactly once, at the very end"))
    return out


def check_clock(name: str, lines: Sequence[Line]) -> list[Violation]:
    """Rule ``clock``: a ``t`` that goes back is a wall clock, not CLOCK_MONOTONIC; the checker
    compares ``t`` across processes, so it must be the shared monotonic clock."""
    out: list[Violation] = []
    prev: float | None = None
    for n, ev in lines:
        t = float(ev["t"])
        if prev is not None and t < prev:
            out.append(_v("clock", f"{name}:{n}", f"t={t:.6f} is earlier than the previous event's t={prev:.6f}",
                          "take t from CLOCK_MONOTONIC in seconds (Python time.monotonic(), Node "
                          "Number(process.hrtime.bigint()) / 1e9, Go/Java: the OS monotonic clock) and write "
                          "events in the order they happen"))
        prev = t if prev is None else max(prev, t)
    return out


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _notice_problem(ev: dict[str, Any]) -> tuple[str, str] | None:
    """(problem, fix) for one event whose optional fields would mislead the checker, else None.
    The schema (harness.history) only requires the mandatory fields; these are the ones the
    checker reads for detection windows, give-ups and notices (docs/client-protocol.md)."""
    kind = ev["kind"]
    if kind == "client.start":
        hb, window = ev.get("heartbeat_s"), ev.get("heartbeat_window_s")
        if hb is not None and not (_number(hb) and hb >= 0):
            return (f"heartbeat_s {hb!r} is not a number of seconds",
                    "write the heartbeat your connection negotiated, in seconds (0 = off), or leave it out")
        if window is not None and not (
                isinstance(window, list) and len(window) == 2 and _number(window[0])
                and (window[1] is None or (_number(window[1]) and window[1] >= window[0]))):
            return (f"heartbeat_window_s {window!r} is not [earliest, latest or null]",
                    "write [lo, hi] seconds after a silent fault at which your library closes the connection "
                    "(hi null when it has no bound), or leave it out")
    elif kind == "client.exit":
        ok = ev.get("ok")
        if ok is not None and not isinstance(ok, bool):
            return f"ok {ok!r} is not true/false", "write ok: true on done/sigterm, false when the client gave up"
        if ok is False and not (isinstance(ev.get("error"), str) and ev["error"]):
            return ("client.exit ok: false without an error text",
                    "name the error that made the client give up in \"error\" (the checker quotes it)")
        if ok is False and ev.get("reason") in ("done", "sigterm"):
            return (f"client.exit reason {ev['reason']!r} with ok: false",
                    "ok: false means the client gave up; \"done\"/\"sigterm\" exits are ok: true")
    elif kind in ("conn.blocked", "consume.cancelled", "channel.closed"):
        reason = ev.get("reason")
        if reason is not None and not isinstance(reason, str):
            return f"{kind} reason {reason!r} is not text", "write the library's reason as a string"
        code = ev.get("code")
        if kind == "channel.closed" and code is not None and not (isinstance(code, int) and not isinstance(
                code, bool)):
            return (f"channel.closed code {code!r} is not an integer",
                    "write the AMQP reply code (404, 406, ...) as a number, or leave it out")
    return None


def check_notices(name: str, lines: Sequence[Line]) -> list[Violation]:
    """Rule ``notices``: detection is measured from conn.blocked / channel.closed /
    consume.cancelled, the heartbeat window from client.start, a give-up's reason from
    client.exit; a malformed optional field there silently changes what the checker says."""
    out: list[Violation] = []
    for n, ev in lines:
        found = _notice_problem(ev)
        if found is not None:
            out.append(_v("notices", f"{name}:{n}", found[0], found[1]))
    return out


_OUTCOMES = ("publish.ok", "publish.fail", "publish.info")


def check_outcomes(name: str, lines: Sequence[Line]) -> list[Violation]:
    """Rule ``outcome``: invoke → exactly one outcome. A re-send is a new invoke *after* the
    previous attempt's outcome (publish.info when the connection died before the confirm)."""
    out: list[Violation] = []
    pending: dict[str, int] = {}  # id -> line of its unanswered invoke
    for n, ev in lines:
        kind = ev["kind"]
        if kind == "publish.invoke":
            if ev["id"] in pending:
                out.append(_v("outcome", f"{name}:{n}", f"{ev['id']!r} invoked again before the outcome of its "
                              f"invoke at line {pending[ev['id']]}",
                              "before re-sending, write publish.info (outcome unknown) for the previous attempt"))
            pending[ev["id"]] = n
        elif kind in _OUTCOMES:
            if pending.pop(ev["id"], None) is None:
                out.append(_v("outcome", f"{name}:{n}", f"{kind} for {ev['id']!r} with no unanswered "
                              "publish.invoke", "write publish.invoke before each publish call, and one outcome "
                              "per invoke (a second confirm for the same attempt is a bug in the tag → id map)"))
        elif kind == "client.exit":
            break
    for mid, n in sorted(pending.items(), key=lambda kv: kv[1]):
        out.append(_v("outcome", f"{name}:{n}",
                      f"publish.invoke of {mid!r} has no outcome by client.exit (or the end of the history)",
                      "on exit (done or SIGTERM) write publish.info for every message still awaiting its confirm"))
    return out


def _ids(lines: Iterable[Line], kind: str, **match: Any) -> dict[str, int]:
    """id -> first line of ``kind`` events (optionally matching fields)."""
    found: dict[str, int] = {}
    for n, ev in lines:
        if ev["kind"] == kind and all(ev.get(k) == v for k, v in match.items()):
            found.setdefault(ev["id"], n)
    return found


def check_ids(name: str, lines: Sequence[Line], id_prefix: str, count: int) -> list[Violation]:
    """Rule ``ids``: the publisher publishes exactly the config's ids, each confirmed. Ids are
    how the checker joins publishes to deliveries, so any other spelling reads as loss."""
    expected = [f"{id_prefix}{i}" for i in range(count)]
    invoked = _ids(lines, "publish.invoke")
    ok = _ids(lines, "publish.ok", confirmed=True)
    out: list[Violation] = []
    alien = [m for m in invoked if m not in set(expected)]
    if alien:
        out.append(_v("ids", f"{name}:{invoked[alien[0]]}", f"{len(alien)} published id(s) not in the config's "
                      f"range, e.g. {alien[0]!r} (expected {expected[0]!r} .. {expected[-1]!r})" if expected else
                      f"published {alien[0]!r} but count is 0",
                      "make ids id_prefix + seq with seq from 0 to count-1 (decimal, no padding)"))
    missing = [m for m in expected if m not in invoked]
    if missing:
        out.append(_v("ids", name, f"{len(missing)} of {count} ids never published, e.g. {missing[0]!r}",
                      "publish count messages before exiting with reason \"done\""))
    unconfirmed = [m for m in expected if m in invoked and m not in ok]
    if unconfirmed:
        out.append(_v("ids", f"{name}:{invoked[unconfirmed[0]]}", f"{len(unconfirmed)} id(s) never got "
                      f"publish.ok with confirmed: true, e.g. {unconfirmed[0]!r}",
                      "use publisher confirms and write publish.ok confirmed=true on the broker's ack (without "
                      "confirms, confirmed=false is honest but this check wants the recommended setup)"))
    return out


def check_delivered(pub_lines: Sequence[Line], con_name: str, con_lines: Sequence[Line]) -> list[Violation]:
    """Rule ``delivered``: fault-free, every published id reaches the consumer and is acked,
    and the consumer sees nothing else (a wrong body convention shows up as unknown ids)."""
    published = _ids(pub_lines, "publish.invoke")
    delivered = _ids(con_lines, "deliver")
    acked = _ids(con_lines, "ack")
    out: list[Violation] = []
    missing = [m for m in published if m not in delivered]
    if missing:
        out.append(_v("delivered", con_name, f"{len(missing)} of {len(published)} published ids never delivered, "
                      f"e.g. {missing[0]!r}", "consume the queue from the config until SIGTERM and write deliver "
                      "(with redelivered) for every message; the id is the UTF-8 body"))
    unknown = [m for m in delivered if m not in published]
    if unknown:
        out.append(_v("delivered", f"{con_name}:{delivered[unknown[0]]}", f"{len(unknown)} delivered id(s) were "
                      f"never published, e.g. {unknown[0]!r}",
                      "the id is the message body decoded as UTF-8, exactly (no JSON, no quotes, no headers)"))
    unacked = [m for m in delivered if m not in acked]
    if unacked:
        out.append(_v("delivered", f"{con_name}:{delivered[unacked[0]]}", f"{len(unacked)} delivered id(s) have no "
                      f"ack event, e.g. {unacked[0]!r}", "ack each message manually (after work_s) and write ack "
                      "once the basic.ack is sent"))
    return out


def check_exits(harness_events: Sequence[dict[str, Any]], pub: str, con: str, grace_s: float,
                pub_lines: Sequence[Line], con_lines: Sequence[Line]) -> list[Violation]:
    """Rules ``exit`` and ``sigterm``, from the harness's ``proc.exit`` records and the
    clients' own ``client.exit``."""
    exits = {e.get("target"): e for e in harness_events if e.get("kind") == "proc.exit"}
    out: list[Violation] = []
    p = exits.get(pub)
    if p is None:
        out.append(_v("exit", pub, "the harness recorded no exit for the publisher",
                      "see the run's logs; the publisher may not have started"))
    elif not p.get("expected"):
        out.append(_v("exit", pub, f"exit code {p.get('code')}: {p.get('note')}",
                      "publish count messages, wait for their confirms, write client.exit \"done\" and exit 0 "
                      "by yourself (the harness waits for it)"))
    pub_exit = next((e for _, e in reversed(pub_lines) if e["kind"] == "client.exit"), None)
    if pub_exit is not None and pub_exit.get("reason") != "done":
        out.append(_v("exit", pub, f"client.exit reason {pub_exit.get('reason')!r}, expected \"done\"",
                      "a publisher that finished its work exits with reason \"done\""))
    c = exits.get(con)
    if c is None:
        out.append(_v("sigterm", con, "the harness recorded no exit for the consumer",
                      "see the run's logs; the consumer may not have started"))
    elif "killed by the harness" in str(c.get("note")):
        out.append(_v("sigterm", con, f"ignored SIGTERM: still running {grace_s:g}s later, killed",
                      "on SIGTERM stop consuming, flush, write client.exit \"sigterm\" and exit 0 within grace_s"))
    elif "exited on its own" in str(c.get("note")):
        out.append(_v("exit", con, f"exited on its own (code {c.get('code')}) before the harness stopped it",
                      "a consumer runs until SIGTERM; it exits by itself only when it gives up"))
    elif not c.get("expected"):
        out.append(_v("sigterm", con, f"exit code {c.get('code')} after SIGTERM ({c.get('note')})",
                      "exit 0 after a SIGTERM you handled"))
    con_exit = next((e for _, e in reversed(con_lines) if e["kind"] == "client.exit"), None)
    if con_exit is not None and con_exit.get("reason") != "sigterm":
        out.append(_v("sigterm", con, f"client.exit reason {con_exit.get('reason')!r}, expected \"sigterm\"",
                      "write client.exit with reason \"sigterm\" when stopping because of SIGTERM"))
    return out


def check_connection_names(conns: Sequence[dict[str, Any]], run_id: str, procs: Sequence[str]) -> list[Violation]:
    """Rule ``connection``: ``conns`` are the management API's connection records seen in the
    run's vhost. The harness's own connections are named "<run_id>/<purpose>" too."""
    names = {_conn_name(c) for c in conns}
    out: list[Violation] = []
    wrong = sorted({n or "(no connection_name)" for n in names if not (n or "").startswith(f"{run_id}/")})
    for proc in procs:
        want = f"{run_id}/{proc}"
        if want not in names:
            seen = f"; unrecognised: {', '.join(wrong[:3])}" if wrong else ""
            out.append(_v("connection", proc, f"no connection named {want!r} was seen{seen}",
                          "set the client property connection_name to \"<run_id>/<proc>\" from the config "
                          "(amqplib: connect(url, {clientProperties: {connection_name}}); pika: "
                          "params.client_properties)"))
    return out


def _conn_name(conn: dict[str, Any]) -> str | None:
    props = conn.get("client_properties") or {}
    return props.get("connection_name") or conn.get("user_provided_name")


def check_verdict(doc: dict[str, Any], already: Sequence[Violation]) -> list[Violation]:
    """Rule ``verdict``: anything the checker objects to in a fault-free run (only when no other
    rule fired: the reasons are then usually consequences of those)."""
    if doc.get("verdict") == "pass" or already:
        return []
    return [_v("verdict", "run", f"{doc.get('verdict')}: {r}",
               "see the run's history.jsonl and logs/ in the evidence directory") for r in doc.get("reasons", [])]


# ---- all rules over one run directory ---------------------------------------------------------

def read_harness(path: Path) -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = []
    if path.exists():
        for line in path.read_text(errors="replace").splitlines():
            with contextlib.suppress(ValueError):
                events.append(json.loads(line))
    return events


def log_hint(run_dir: Path, proc: str) -> str:
    """Where a process's output is, with its last line: usually the error that stopped it."""
    log = run_dir / "logs" / f"{proc}.log"
    lines = [ln.strip() for ln in log.read_text(errors="replace").splitlines() if ln.strip()] if log.exists() else []
    last = f", last line: {lines[-1][:160]!r}" if lines else ""
    return f" (output: {log}{last})"


def check_aborted(harness_events: Sequence[dict[str, Any]], run_dir: Path) -> list[Violation]:
    """A cell the harness had to abort (e.g. the consumer never wrote conn.open) says why."""
    return [_v("exit", "run", f"the harness aborted the run: {e.get('error')}",
               "the consumer must connect and write conn.open within 15 s; see the process output in "
               f"{run_dir / 'logs'}")
            for e in harness_events if e.get("kind") == "run.phase" and e.get("phase") == "aborted"]


def check_run_dir(run_dir: Path, doc: dict[str, Any], conns: Sequence[dict[str, Any]] | None,
                  grace_s: float) -> list[Violation]:
    """Every rule over a finished cell's evidence (reports/<run_id>/)."""
    hist = run_dir / "history"
    per: dict[str, list[Line]] = {}
    harness_events = read_harness(hist / "harness.jsonl")
    out: list[Violation] = check_aborted(harness_events, run_dir)
    configs = {p.stem: json.loads(p.read_text()) for p in sorted((run_dir / "config").glob("*.json"))}
    for proc, cfg in configs.items():
        name = f"{proc}.jsonl"
        path = hist / name
        if not path.exists():
            out.append(_v("bookends", proc, f"no history file {name}",
                          "append events to the path in the config's \"history\" field"))
            per[proc] = []
            continue
        lines, bad = parse_history(name, path.read_text(errors="replace"), proc, cfg["role"])
        out += bad
        ends = check_bookends(name, lines)
        if ends and (not lines or lines[-1][1]["kind"] != "client.exit"):
            ends = [Violation(v.rule, v.where, v.problem + log_hint(run_dir, proc), v.fix) for v in ends]
        out += ends
        out += check_clock(name, lines)
        out += check_notices(name, lines)
        if cfg["role"] == "publisher":
            out += check_outcomes(name, lines)
            out += check_ids(name, lines, cfg["id_prefix"], cfg["count"])
        per[proc] = lines
    pubs = [p for p, c in configs.items() if c["role"] == "publisher"]
    cons = [p for p, c in configs.items() if c["role"] == "consumer"]
    if pubs and cons:
        pub, con = pubs[0], cons[0]
        out += check_delivered(per[pub], f"{con}.jsonl", per[con])
        out += check_exits(harness_events, pub, con, grace_s, per[pub], per[con])
    if conns is not None:
        out += check_connection_names(conns, doc["run_id"], sorted(configs))
    out += check_verdict(doc, out)
    return out


# ---- the live part: run one fault-free cell and watch its connections --------------------------

@dataclass
class Conformance:
    """The result of ``check``: the cell's results document, where its evidence is, the violations."""

    doc: dict[str, Any]
    run_dir: Path
    violations: list[Violation] = field(default_factory=list)
    wall_s: float = 0.0

    @property
    def ok(self) -> bool:
        return not self.violations

    def render(self) -> str:
        """The report check-client prints: one line per rule, then each violation with its fix."""
        by_rule: dict[str, list[Violation]] = {}
        for v in self.violations:
            by_rule.setdefault(v.rule, []).append(v)
        lines = [f"run {self.doc['run_id']}: verdict {self.doc['verdict']} in {self.wall_s:.1f}s "
                 f"(evidence: {self.run_dir})"]
        for rule, what in RULES.items():
            n = len(by_rule.get(rule, []))
            if rule == "verdict" and not n and self.doc.get("verdict") != "pass":
                lines.append(f"  --   {rule:<11} {what} (verdict {self.doc.get('verdict')}: explained above)")
                continue
            lines.append(f"  {'ok  ' if not n else 'FAIL'} {rule:<11} {what}" + (f" ({n})" if n else ""))
        for rule, vs in by_rule.items():
            for v in vs[:MAX_PER_RULE]:
                lines.append(str(v))
            if len(vs) > MAX_PER_RULE:
                lines.append(f"[{rule}] ... and {len(vs) - MAX_PER_RULE} more")
        lines.append("conformant: the client speaks the protocol" if self.ok else
                     f"not conformant: {len(self.violations)} violation(s)")
        return "\n".join(lines)


class ConnectionWatcher(threading.Thread):
    """Collects the connections the broker saw during the run, from two sources:

    * the management API, polled (any backend). Its connection list is built from statistics
      (on RabbitMQ 3.10 a connection appears ~5 s after it opens), so it misses connections that
      live only a few seconds, such as a quick publisher's;
    * the broker's own log, where the local backend keeps it: every accepted connection is one
      line naming its vhost and client-provided name, exactly, however short-lived (the very
      join between broker logs and the history that connection naming exists for).
    """

    LOG_LINE = re.compile(r"connection <[^>]+> \((?P<peer>[^)]*?)(?: - (?P<name>[^)]*))?\): user '[^']*' "
                          r"authenticated and granted access to vhost '(?P<vhost>[^']*)'")

    def __init__(self, broker: Backend, interval: float = 0.2) -> None:
        super().__init__(daemon=True, name="conformance-connections")
        self.mgmt, self.interval = broker.mgmt, interval
        self.halt = threading.Event()
        self.seen: dict[str, dict[str, Any]] = {}
        self.logs: dict[Path, int] = {}  # the backend's own log files (none: external, compose)
        for p in broker.log_files():
            if not p.name.endswith(("_upgrade.log", "stdout.log")):
                with contextlib.suppress(OSError):
                    self.logs[p] = p.stat().st_size

    def run(self) -> None:
        while not self.halt.is_set():
            with contextlib.suppress(Exception):
                for c in self.mgmt.connections():
                    self.seen.setdefault(str(c.get("name")), c)
            self.halt.wait(self.interval)

    def from_logs(self) -> list[dict[str, Any]]:
        """Connection records (as the management API spells them) from the log lines written
        since the watcher was created."""
        found: list[dict[str, Any]] = []
        for path, offset in self.logs.items():
            with contextlib.suppress(OSError), open(path, encoding="utf-8", errors="replace") as fh:
                fh.seek(offset)
                for line in fh:
                    m = self.LOG_LINE.search(line)
                    if m:
                        found.append({"name": m["peer"], "vhost": m["vhost"],
                                      "client_properties": {"connection_name": m["name"]} if m["name"] else {}})
        return found

    def in_vhost(self, vhost: str) -> list[dict[str, Any]]:
        return [c for c in [*self.seen.values(), *self.from_logs()] if c.get("vhost") == vhost]


def spec_for(client: str, grace_s: float = 5.0) -> Any:
    """The short fault-free cell: enough messages to see pacing, confirms and acks, a publisher
    that lives ~2 s so its connection is seen by the watcher, and a quick settle."""
    from harness.engine import RunSpec

    return RunSpec(client=client, fault="none", count=100, rate=50.0, warmup_s=1.0, fault_s=0.5, settle_s=1.0,
                   settle_timeout_s=30.0, connect_timeout_s=15.0, grace_s=grace_s, work_s=0.0)


def check(env: Any, client: str, reports_dir: Path, command: list[str] | None = None,
          grace_s: float = 5.0) -> Conformance:
    """Run ``client`` (a strategy name, package.module:attr, or the label of ``command``) through
    one fault-free cell on ``env`` and check its evidence against every rule."""
    from harness.engine import run_cell

    spec = spec_for(client, grace_s)
    watcher = ConnectionWatcher(env.broker)
    watcher.start()
    t0 = time.monotonic()
    try:
        doc = run_cell(env, spec, reports_dir, command=command)
    finally:
        watcher.halt.set()
        watcher.join(5)
    run_dir = reports_dir / doc["run_id"]
    conns = watcher.in_vhost(f"rc-{doc['run_id']}")
    found = check_run_dir(run_dir, doc, conns, grace_s)
    return Conformance(doc=doc, run_dir=run_dir, violations=found, wall_s=time.monotonic() - t0)
