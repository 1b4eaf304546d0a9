"""Fault timelines: which fault starts and heals when, relative to the start of the fault phase.

A :class:`Timeline` is a list of windows (a fault, a start time, a heal time), turned into
ordered steps ("at 2 s start X", "at 7 s heal X") and executed by :meth:`Timeline.execute`.
Builders cover a single fault held for a while (what a run did before timelines), explicit
windows (which may overlap), cycles and a seeded random schedule; :meth:`Timeline.parse` reads
the same from one string a user can type on the command line:

    broker-restart@2+5                           start at 2 s, heal 5 s later
    latency:latency_ms=200,jitter_ms=0@1+3       a fault's own parameters, then @START+HOLD
    latency:latency_ms=200@1+3,reset-peer@6+1    several windows, comma separated (may overlap)
    cycle(connection-cut,every=10,for=3,times=4) cut at 0, 10, 20, 30 s, each for 3 s
    cycle(latency,every=5,for=2,times=3,start=1) the same, starting at 1 s
    random(faults=latency|connection-cut,seed=7,duration=30)
                                                 random faults within 30 s: gaps of gap=1..5 s,
                                                 each held for=1..5 s, one at a time
    broker-restart                               only with a default hold (CLI --fault-for): 0 s
                                                 to the hold

Times are seconds (a trailing "s" is allowed). Items mix freely: "cycle(...),latency@4+1".
Why windows and not free-form steps: every start has its heal, so a timeline always ends healed,
and the checker can pair fault.start/fault.stop events into windows.

Two windows of the same fault may not overlap (they would add the same toxic twice, or restore
an alarm the other still needs), nor may two broker-process faults (one process to act on).
"""

from __future__ import annotations

import dataclasses
import math
import random
import re
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from harness.errors import ChaosError
from harness.faults.base import Effect, Fault, FaultContext
from harness.faults.registry import parse as parse_fault

if TYPE_CHECKING:
    from harness.history import HistoryWriter

Action = Literal["start", "heal"]
PROCESS_FAMILY = "broker process"
CYCLE_KEYS = ("every", "for", "times", "start")
RANDOM_KEYS = ("faults", "seed", "duration", "for", "gap", "start")
RANDOM_DEFAULT_FOR = (1.0, 5.0)
RANDOM_DEFAULT_GAP = (1.0, 5.0)
EXAMPLE = "broker-restart@2+5"


def fault_spec(fault: Fault) -> str:
    """The spec a user would type for ``fault``: its name and every non-default parameter."""
    defaults = {f.name: f.default for f in dataclasses.fields(fault)}
    changed = [f"{k}={v}" for k, v in fault.params().items() if v != defaults.get(k)]
    return fault.name + (":" + ",".join(changed) if changed else "")


@dataclass(frozen=True)
class Window:
    """One fault held from ``start`` to ``stop`` seconds (a zero-length window is allowed: an
    instant fault such as force-close, started and healed at once)."""

    fault: Fault
    start: float
    stop: float
    spec: str = ""

    @property
    def hold(self) -> float:
        return self.stop - self.start

    @property
    def label(self) -> str:
        return self.spec or fault_spec(self.fault)


@dataclass(frozen=True)
class Step:
    at: float
    action: Action
    window: int


def effect_writer(nemesis: HistoryWriter) -> Callable[[Effect], None]:
    """The sink that turns a fault's ``ctx.effect(...)`` into a ``fault.effect`` event."""

    def write(eff: Effect) -> None:
        extra = {k: v for k, v in eff.extra.items() if k not in _RESERVED}
        nemesis.write("fault.effect", fault=eff.fault, action=eff.action, effect=eff.effect,
                      window=eff.window, observed=eff.observed, **extra)

    return write


_RESERVED = frozenset({"t", "wall", "pid", "proc", "role", "kind", "fault", "action", "effect", "window",
                       "observed"})


class Timeline:
    """Ordered fault windows, executed relative to the moment :meth:`execute` is called."""

    def __init__(self, windows: Iterable[Window], seed: int | None = None, source: str = "") -> None:
        self.windows: list[Window] = sorted(windows, key=lambda w: (w.start, w.stop))
        self.seed = seed
        self.source = source
        #: True when the user named one fault with no time (``--fault partition``): its hold is
        #: the run's choice (a user-given --fault-for, else the fault's default; see harness.run)
        self.bare = False
        #: why the bare fault's hold is what it is (recorded in results.json), e.g. "user-given"
        self.hold_reason: str | None = None
        _validate(self.windows)

    # ---- builders ----------------------------------------------------------------------
    @classmethod
    def single(cls, fault: Fault, hold_s: float, at: float = 0.0) -> Timeline:
        """One fault from ``at`` for ``hold_s`` seconds: what a run did before timelines."""
        return cls([Window(fault, at, at + hold_s, fault_spec(fault))])

    @classmethod
    def of(cls, *windows: tuple[Fault, float, float]) -> Timeline:
        """Explicit windows ``(fault, start_s, stop_s)``; they may overlap (different faults)."""
        return cls([Window(f, start, stop, fault_spec(f)) for f, start, stop in windows])

    @classmethod
    def from_steps(cls, steps: Sequence[tuple[float, Action, Fault]]) -> Timeline:
        """"At 2 s start X, at 7 s heal X": each heal closes the earliest open start of the same
        fault object. A start never healed is an error (every timeline ends healed)."""
        open_: list[tuple[Fault, float]] = []
        windows: list[Window] = []
        for at, action, fault in sorted(steps, key=lambda s: (s[0], s[1] == "start")):
            if action == "start":
                open_.append((fault, at))
                continue
            match = next((i for i, (f, _) in enumerate(open_) if f is fault), None)
            if match is None:
                raise ChaosError(f"timeline heals {fault.name!r} at {at:g} s but it was not started before",
                                 "give every heal a start before it")
            f, start = open_.pop(match)
            windows.append(Window(f, start, at, fault_spec(f)))
        if open_:
            f, start = open_[0]
            raise ChaosError(f"timeline starts {f.name!r} at {start:g} s but never heals it",
                             "give every start a heal after it: a timeline always ends healed")
        return cls(windows)

    @classmethod
    def cycle(cls, fault: Fault | str, every: float, hold: float, times: int, start: float = 0.0) -> Timeline:
        """``times`` windows of ``hold`` seconds, one every ``every`` seconds from ``start``."""
        return cls(_cycle_windows(fault, every, hold, times, start))

    @classmethod
    def random(cls, faults: Sequence[str], seed: int, duration: float,
               hold: tuple[float, float] = RANDOM_DEFAULT_FOR, gap: tuple[float, float] = RANDOM_DEFAULT_GAP,
               start: float = 0.0) -> Timeline:
        """A seeded random schedule (same seed, same schedule): see :func:`random_windows`."""
        return cls(random_windows(faults, seed, duration, hold, gap, start), seed=seed)

    @classmethod
    def combine(cls, *timelines: Timeline) -> Timeline:
        """Overlay timelines (their windows may overlap, as long as no fault overlaps itself)."""
        seeds = [t.seed for t in timelines if t.seed is not None]
        return cls([w for t in timelines for w in t.windows], seed=seeds[0] if seeds else None,
                   source=",".join(t.source for t in timelines if t.source))

    @classmethod
    def parse(cls, text: str, hold_s: float | None = None, seed: int | None = None) -> Timeline:
        """Read the string form (module docstring). ``hold_s`` lets a bare fault spec mean
        "from 0 for hold_s"; ``seed`` seeds random() items that do not name their own seed
        (when neither does, one is drawn and kept in ``.seed`` so the run can be repeated)."""
        return _parse(text, hold_s, seed)

    def held_for(self, hold_s: float, reason: str) -> Timeline:
        """This bare timeline with its one fault held ``hold_s`` seconds instead, and why
        (``hold_reason``, recorded in results.json). The fault object is kept."""
        if not self.bare:
            raise ChaosError("only a bare fault (no @START+HOLD) takes the run's hold",
                             "give explicit timelines their own times")
        w = self.windows[0]
        out = Timeline([dataclasses.replace(w, stop=w.start + hold_s)], seed=self.seed, source=self.source)
        out.bare, out.hold_reason = True, reason
        return out

    # ---- views -------------------------------------------------------------------------
    @property
    def steps(self) -> list[Step]:
        """Start and heal steps in time order. At equal times heals come first (a cycle with
        for == every heals then restarts), except a zero-length window's own heal, which
        follows its start."""
        out: list[tuple[tuple[float, int, int], Step]] = []
        for i, w in enumerate(self.windows):
            out.append(((w.start, 1, i), Step(w.start, "start", i)))
            out.append(((w.stop, 2 if w.stop == w.start else 0, i), Step(w.stop, "heal", i)))
        return [s for _, s in sorted(out, key=lambda p: p[0])]

    @property
    def length_s(self) -> float:
        return max((w.stop for w in self.windows), default=0.0)

    def describe(self) -> str:
        """One line for the report, e.g. "latency:latency_ms=200 1→4 s; reset-peer 6→7 s (seed 7)"."""
        if not self.windows:
            return "no fault"
        text = "; ".join(f"{w.label} {_s(w.start)}→{_s(w.stop)} s" for w in self.windows)
        return text + (f" (seed {self.seed})" if self.seed is not None else "")

    def spec(self) -> str:
        """The explicit string form (cycles and random schedules expanded): parses back to the
        same timeline, so results can record exactly what ran."""
        return ",".join(f"{w.label}@{_s(w.start)}+{_s(w.hold)}" for w in self.windows)

    def as_dict(self) -> dict[str, Any]:
        return {"source": self.source, "spec": self.spec(), "seed": self.seed, "length_s": self.length_s,
                **({"hold_reason": self.hold_reason} if self.hold_reason is not None else {}),
                "windows": [{"fault": w.fault.name, "params": w.fault.params(), "spec": w.label,
                             "start_s": w.start, "stop_s": w.stop} for w in self.windows]}

    def __repr__(self) -> str:
        return f"Timeline({self.spec()!r}, seed={self.seed})"

    # ---- execution ---------------------------------------------------------------------
    def execute(self, ctx: FaultContext, nemesis: HistoryWriter, stop_event: threading.Event) -> None:
        """Run the steps relative to now; return after the last heal. Always ends healed.

        Waits with ``stop_event.wait`` (setting it ends the timeline early, healing what is
        active). Every start writes ``fault.start`` *before* acting (a start that fails half-way
        still had effects) and every heal writes ``fault.stop`` after it; in between, the fault
        writes ``fault.effect`` (through ``ctx.effect``, bound here to the window and action)
        when its effect is there. Whatever ends the run
        (the last step, stop_event, a failing start, KeyboardInterrupt), the ``finally`` heals
        every fault still active, newest first, each attempted even if another fails; such
        ``fault.stop`` events carry ``early: true``. An exception from a start or heal is
        re-raised after that; heal errors during that cleanup are attached as notes.
        """
        active: dict[int, int] = {}  # window -> step index of its start
        t0 = time.monotonic()
        failure: BaseException | None = None
        previous_sink = ctx.on_effect
        ctx.on_effect = effect_writer(nemesis)
        try:
            for n, step in enumerate(self.steps):
                if stop_event.wait(max(0.0, t0 + step.at - time.monotonic())):
                    break
                w = self.windows[step.window]
                if step.action == "start":
                    nemesis.write("fault.start", fault=w.fault.name, params=w.fault.params(), step=n,
                                  window=step.window, planned_s=step.at, spec=w.label,
                                  silent=w.fault.silences())
                    active[step.window] = n
                    with ctx.acting(w.fault, "start", step.window):
                        w.fault.start(ctx)
                else:
                    with ctx.acting(w.fault, "heal", step.window):
                        w.fault.heal(ctx)
                    del active[step.window]
                    nemesis.write("fault.stop", fault=w.fault.name, step=n, window=step.window, planned_s=step.at)
        except BaseException as exc:
            failure = exc
            raise
        finally:
            try:
                errors = self._heal_active(ctx, nemesis, active)
            finally:
                ctx.on_effect = previous_sink
            if errors and failure is not None:
                for e in errors:
                    failure.add_note(f"and healing after it failed too: {type(e).__name__}: {e}")
            elif errors:
                raise errors[0]

    def _heal_active(self, ctx: FaultContext, nemesis: HistoryWriter, active: dict[int, int]) -> list[BaseException]:
        errors: list[BaseException] = []
        for window in sorted(active, key=lambda i: active[i], reverse=True):
            w = self.windows[window]
            try:
                with ctx.acting(w.fault, "heal", window):
                    w.fault.heal(ctx)
            except BaseException as exc:  # noqa: BLE001 - every other fault must still be healed
                errors.append(exc)
                nemesis.write("fault.stop", fault=w.fault.name, window=window, early=True, healed=False,
                              error=f"{type(exc).__name__}: {exc}")
                continue
            nemesis.write("fault.stop", fault=w.fault.name, window=window, early=True)
        return errors


def _s(seconds: float) -> str:
    """Seconds as users write them: no float noise (4.8999999 -> 4.9), no exponent, ms precision."""
    return f"{round(seconds, 3):.15g}"


# ---- validation ------------------------------------------------------------------------
def _validate(windows: Sequence[Window]) -> None:
    for w in windows:
        if not (math.isfinite(w.start) and math.isfinite(w.stop)) or w.start < 0 or w.stop < w.start:
            raise ChaosError(f"timeline window {w.label} {w.start:g}→{w.stop:g} s is not a valid time range",
                             "start at 0 s or later and heal no earlier than the start")
    for i, a in enumerate(windows):
        for b in windows[i + 1:]:
            if b.start >= a.stop:
                continue  # sorted by start: b begins after a ended (touching is fine)
            if a.fault.name == b.fault.name:
                raise ChaosError(f"fault {a.fault.name!r} overlaps itself in the timeline "
                                 f"({a.start:g}→{a.stop:g} s and {b.start:g}→{b.stop:g} s)",
                                 "let one window heal before the next starts")
            if a.fault.family == b.fault.family == PROCESS_FAMILY:
                raise ChaosError(f"broker process faults overlap: {a.fault.name} {a.start:g}→{a.stop:g} s and "
                                 f"{b.fault.name} {b.start:g}→{b.stop:g} s act on the same process",
                                 "let one heal before the other starts")


# ---- schedules -------------------------------------------------------------------------
def _fresh(fault: Fault | str) -> tuple[Fault, str]:
    """A new fault instance per window (faults may keep state between start and heal)."""
    if isinstance(fault, str):
        return parse_fault(fault), fault.strip()
    return dataclasses.replace(fault), fault_spec(fault)


def _cycle_windows(fault: Fault | str, every: float, hold: float, times: int, start: float) -> list[Window]:
    name = fault if isinstance(fault, str) else fault.name
    if not (math.isfinite(every) and every > 0):
        raise ChaosError(f"cycle({name}): every={every:g} must be > 0", f"e.g. cycle({name},every=10,for=3,times=4)")
    if not 0 <= hold <= every:
        raise ChaosError(f"cycle({name}): for={hold:g} must be between 0 and every={every:g}",
                         "a fault must heal before its next cycle starts")
    if times < 1:
        raise ChaosError(f"cycle({name}): times={times} must be at least 1",
                         f"e.g. cycle({name},every=10,for=3,times=4)")
    out = []
    for i in range(times):
        f, spec = _fresh(fault)
        at = start + i * every
        out.append(Window(f, at, at + hold, spec))
    return out


def random_windows(faults: Sequence[str], seed: int, duration: float,
                   hold: tuple[float, float] = RANDOM_DEFAULT_FOR, gap: tuple[float, float] = RANDOM_DEFAULT_GAP,
                   start: float = 0.0) -> list[Window]:
    """One fault at a time within [start, start + duration]: wait a gap drawn from ``gap``, start a
    fault drawn from ``faults``, hold it for a time drawn from ``hold`` (cut at the end), repeat.
    Times are rounded to 0.1 s so the schedule reads well in reports. All draws come from
    ``random.Random(seed)`` in a fixed order: the same arguments give the same schedule."""
    if not faults:
        raise ChaosError("random(): no faults to choose from", "e.g. random(faults=latency|connection-cut,seed=7)")
    if not (math.isfinite(duration) and duration > 0):
        raise ChaosError(f"random(): duration={duration:g} must be > 0", "e.g. random(...,duration=30)")
    for key, (lo, hi) in (("for", hold), ("gap", gap)):
        if not (0 <= lo <= hi and math.isfinite(hi)):
            raise ChaosError(f"random(): {key}={lo:g}..{hi:g} is not a range of seconds", f"e.g. {key}=1..5")
    specs = [s.strip() for s in faults]
    for s in specs:
        parse_fault(s)  # one clear error for a bad spec before anything is drawn
    rng = random.Random(seed)
    end = start + duration
    t = start
    out: list[Window] = []
    while True:
        t = round(t + rng.uniform(*gap), 1)
        if t >= end:
            return out
        spec = rng.choice(specs)
        stop = min(round(t + rng.uniform(*hold), 1), end)
        out.append(Window(parse_fault(spec), t, stop, spec))
        t = stop


# ---- the string form -------------------------------------------------------------------
def _split_top(text: str) -> list[str]:
    """Split on commas outside parentheses; one clear error for unbalanced ones."""
    parts: list[str] = []
    cur: list[str] = []
    depth = 0
    for ch in text:
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
            if depth < 0:
                raise ChaosError(f"timeline {text!r} has a ')' without its '('", "e.g. cycle(connection-cut,every=10,"
                                 "for=3,times=4)")
        if ch == "," and depth == 0:
            parts.append("".join(cur).strip())
            cur = []
        else:
            cur.append(ch)
    if depth:
        raise ChaosError(f"timeline {text!r} has a '(' without its ')'", "close it: cycle(...) or random(...)")
    parts.append("".join(cur).strip())
    if any(not p for p in parts):
        raise ChaosError(f"timeline {text!r} has an empty item (two commas in a row, or a trailing comma)",
                         f"separate items with single commas, e.g. {EXAMPLE},latency@8+2")
    return parts


_NUM = re.compile(r"^\s*([0-9]+(?:\.[0-9]*)?|\.[0-9]+)\s*s?\s*$")


def _seconds(raw: str, what: str, fix: str) -> float:
    m = _NUM.match(raw)
    if not m:
        raise ChaosError(f"{what}: {raw!r} is not a number of seconds", fix)
    return float(m.group(1))


def _count(raw: str, what: str, fix: str) -> int:
    if not raw.strip().isdigit():
        raise ChaosError(f"{what}: {raw!r} is not a whole number", fix)
    return int(raw)


def _range(raw: str, what: str) -> tuple[float, float]:
    fix = f"write {what} as MIN..MAX seconds, e.g. {what}=1..5"
    lo, sep, hi = raw.partition("..")
    if not sep:
        value = _seconds(raw, f"random(): {what}", fix)
        return value, value
    a, b = _seconds(lo, f"random(): {what}", fix), _seconds(hi, f"random(): {what}", fix)
    if a > b:
        raise ChaosError(f"random(): {what}={raw} has MIN above MAX", fix)
    return a, b


def _args(call: str, inner: str, keys: Sequence[str], continues: str | None) -> tuple[dict[str, str], list[str]]:
    """Split ``inner`` into known ``key=value`` arguments and the rest. Tokens that are not one
    of ``keys`` belong to the fault spec (cycle) or continue the ``continues`` argument
    (random's faults=, whose specs may hold commas)."""
    args: dict[str, str] = {}
    rest: list[str] = []
    last: str | None = None
    for tok in _split_top(inner) if inner.strip() else []:
        key, eq, value = tok.partition("=")
        key = key.strip()
        if eq and key in keys:
            if key in args:
                raise ChaosError(f"{call}(): {key}= given twice", f"give {key}= once")
            args[key], last = value.strip(), key
        elif continues is not None and last == continues and ":" in args[continues].split("|")[-1]:
            args[continues] += "," + tok  # another parameter of the last fault choice
        elif continues is not None:
            raise ChaosError(f"{call}(): unknown argument {tok!r}", f"its arguments: {', '.join(keys)}")
        else:
            rest.append(tok)
    return args, rest


def _parse_cycle(tok: str) -> list[Window]:
    usage = "e.g. cycle(connection-cut,every=10,for=3,times=4)"
    args, rest = _args("cycle", tok[len("cycle("):-1], CYCLE_KEYS, None)
    if not rest:
        raise ChaosError(f"{tok!r} names no fault", usage)
    missing = [k for k in ("every", "for", "times") if k not in args]
    if missing:
        raise ChaosError(f"{tok!r} is missing {', '.join(k + '=' for k in missing)}", usage)
    spec = ",".join(rest)
    what = f"cycle({spec})"
    return _cycle_windows(spec, _seconds(args["every"], f"{what} every", usage),
                          _seconds(args["for"], f"{what} for", usage),
                          _count(args["times"], f"{what} times", usage),
                          _seconds(args.get("start", "0"), f"{what} start", usage))


def _parse_random(tok: str, seed: int) -> tuple[list[Window], int]:
    usage = "e.g. random(faults=latency|connection-cut,seed=7,duration=30)"
    args, _ = _args("random", tok[len("random("):-1], RANDOM_KEYS, "faults")
    for key in ("faults", "duration"):
        if key not in args:
            raise ChaosError(f"{tok!r} is missing {key}=", usage)
    if "seed" in args:
        seed = _count(args["seed"], "random(): seed", usage)
    faults = [s.strip() for s in args["faults"].split("|")]
    if not all(faults):
        raise ChaosError(f"random(): faults={args['faults']!r} has an empty choice", "separate faults with single |")
    windows = random_windows(faults, seed, _seconds(args["duration"], "random(): duration", usage),
                             _range(args.get("for", "1..5"), "for"), _range(args.get("gap", "1..5"), "gap"),
                             _seconds(args.get("start", "0"), "random(): start", usage))
    return windows, seed


def _parse_timed(item: str) -> Window:
    spec, _, when = item.rpartition("@")
    spec = spec.strip()
    fix = f"write it as FAULT@START+HOLD (seconds), e.g. {spec or 'broker-restart'}@2+5"
    start_raw, plus, hold_raw = when.partition("+")
    if not spec or not plus:
        raise ChaosError(f"timeline item {item!r}: cannot read its time {('@' + when)!r}", fix)
    start = _seconds(start_raw, f"timeline item {item!r}: start", fix)
    hold = _seconds(hold_raw, f"timeline item {item!r}: hold", fix)
    return Window(parse_fault(spec), start, start + hold, spec)


def _parse(text: str, hold_s: float | None, seed: int | None) -> Timeline:
    source = text.strip()
    if not source:
        raise ChaosError("empty timeline", f"name at least one fault, e.g. {EXAMPLE}")
    windows: list[Window] = []
    randoms = 0
    base_seed = seed if seed is not None else random.SystemRandom().randrange(2**31)
    used_seed: int | None = seed
    pending: list[str] = []  # tokens of a fault spec whose @time has not come yet

    def untimed(tokens: list[str]) -> ChaosError:
        spec = ",".join(tokens)
        return ChaosError(f"timeline item {spec!r} has no time",
                          f"write it as FAULT@START+HOLD (seconds), e.g. {spec}@0+5")

    tokens = _split_top(source)
    for tok in tokens:
        low = tok.lower()
        if low.startswith(("cycle(", "random(")):
            if pending:
                raise untimed(pending)
            if not tok.endswith(")"):
                raise ChaosError(f"timeline item {tok!r}: text after the closing ')'", "separate items with commas")
            if low.startswith("cycle("):
                windows += _parse_cycle(tok)
            else:
                got, s = _parse_random(tok, base_seed + randoms)
                windows += got
                used_seed = s if used_seed is None else used_seed
                randoms += 1
            continue
        head = tok.split("@", 1)[0]
        if pending and "=" not in head:
            raise untimed(pending)  # a new fault name while the previous one still lacks @START+HOLD
        if pending and ":" not in pending[0]:
            raise ChaosError(f"timeline item {','.join([*pending, tok])!r}: a fault's parameters follow ':'",
                             f"e.g. {pending[0]}:{','.join([*pending[1:], tok])}")
        pending.append(tok)
        if "@" in tok:
            windows.append(_parse_timed(",".join(pending)))
            pending = []
    if pending:
        if windows or hold_s is None:
            raise untimed(pending)
        spec = ",".join(pending)
        bare = Timeline([Window(parse_fault(spec), 0.0, hold_s, spec)], seed=used_seed, source=source)
        bare.bare = True
        return bare
    return Timeline(windows, seed=used_seed, source=source)
