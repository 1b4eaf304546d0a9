"""The client protocol (docs/client-protocol.md) in ~100 lines of stdlib, shared by the bug clients.

The bug clients run in their own virtualenvs (a pinned kombu, a pinned aio-pika) where the
harness package is not installed, so they cannot use ``harness.clients.protocol``; this module is
the part of it they need: read the config (``--config PATH`` or ``$RABBIT_CHAOS_CONFIG``), write
history events (one JSON line each, flushed at once, ``t`` = CLOCK_MONOTONIC), turn SIGTERM into
a flag, and pace the publisher on an absolute schedule.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
import time
import traceback
from collections.abc import Iterator
from typing import Any


def config_path(argv: list[str]) -> str:
    """The config file: ``--config PATH`` (appended by the harness) or ``$RABBIT_CHAOS_CONFIG``."""
    if "--config" in argv:
        return argv[argv.index("--config") + 1]
    path = os.environ.get("RABBIT_CHAOS_CONFIG")
    if not path:
        sys.exit("no client config: pass --config PATH or set RABBIT_CHAOS_CONFIG")
    return path


class Client:
    """One client process: its config, its history file, and its stop flag.

    ``event`` is thread-safe (the pika threaded consumer writes ``ack`` from the connection's
    thread and ``deliver`` from the same; kept safe anyway) and flushes every line, so a process
    killed mid-run leaves a history complete up to its last action.
    """

    def __init__(self, argv: list[str] | None = None) -> None:
        with open(config_path(sys.argv if argv is None else argv), encoding="utf-8") as f:
            self.cfg: dict[str, Any] = json.load(f)
        self.params: dict[str, Any] = dict(self.cfg.get("params") or {})
        # ``--param KEY=VALUE`` on the client's own command line overrides the run's params, so
        # one matrix can hold several variants of a client (each --client-cmd with its knobs)
        args = sys.argv if argv is None else argv
        for i, arg in enumerate(args[:-1]):
            if arg == "--param" and "=" in args[i + 1]:
                key, value = args[i + 1].split("=", 1)
                self.params[key] = value
        self.role: str = self.cfg["role"]
        self.proc: str = self.cfg["proc"]
        self.connection_name = f"{self.cfg['run_id']}/{self.proc}"
        self._history = open(self.cfg["history"], "a", encoding="utf-8")  # noqa: SIM115 (process-long)
        self._lock = threading.Lock()
        self.stopping = threading.Event()
        signal.signal(signal.SIGTERM, self._on_signal)
        signal.signal(signal.SIGINT, self._on_signal)

    def _on_signal(self, _signum: int, _frame: object) -> None:
        self.stopping.set()

    def param(self, key: str, default: Any) -> Any:
        """A ``--param KEY=VALUE`` knob converted to the default's type (values may come as text)."""
        value = self.params.get(key, default)
        if value is None or default is None or isinstance(value, type(default)):
            return value
        if isinstance(default, bool):
            return str(value).lower() in ("1", "true", "yes", "on")
        return type(default)(value)

    def opt_float(self, key: str) -> float | None:
        """A knob that is off unless given (``None``, ``""``, ``0`` and ``none`` mean off)."""
        value = self.params.get(key)
        if value in (None, "", "none", "None", "off"):
            return None
        number = float(value)
        return number if number > 0 else None

    def event(self, kind: str, **fields: Any) -> None:
        """Append one history event (common fields first) and flush it to the OS."""
        ev = {"t": time.monotonic(), "wall": time.time(), "pid": os.getpid(), "proc": self.proc,
              "role": self.role, "kind": kind, **fields}
        line = json.dumps(ev) + "\n"
        with self._lock:
            self._history.write(line)
            self._history.flush()

    def ids(self) -> list[str]:
        """The publisher's ids: ``id_prefix + seq`` for seq in 0 .. count-1."""
        return [f"{self.cfg['id_prefix']}{seq}" for seq in range(int(self.cfg["count"]))]

    def paced(self, ids: list[str]) -> Iterator[str]:
        """Yield ids at ``rate`` on an absolute schedule; after falling behind by more than one
        interval (an outage, a blocked publish) restart the schedule from now: no burst."""
        rate = float(self.cfg.get("rate") or 0)
        interval = 1.0 / rate if rate > 0 else 0.0
        due = time.monotonic()
        for mid in ids:
            if self.stopping.is_set():
                return
            if interval:
                now = time.monotonic()
                if due > now:
                    if self.stopping.wait(due - now):
                        return
                elif now - due > interval:
                    due = now
                due += interval
            yield mid

    def close(self) -> None:
        with self._lock:
            self._history.close()


def describe(exc: BaseException) -> str:
    """``ExceptionType: message`` (or just the type when the message is empty)."""
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def run(client: Client, library: str, version: str, role_funcs: dict[str, Any], **start_fields: Any) -> int:
    """The protocol's bookends around the role function: ``client.start`` first, ``client.exit``
    last (``done`` / ``sigterm``, or the error with ``ok: false`` and exit code 1 = gave up)."""
    client.event("client.start", library=library, version=version,
                 language=f"python {sys.version.split()[0]}", **start_fields)
    try:
        role_funcs[client.role](client)
    except Exception as exc:  # the client's policy gave up: a finding, recorded as such
        traceback.print_exc()
        client.event("client.exit", reason=describe(exc), ok=False, error=describe(exc))
        client.close()
        raise SystemExit(1) from exc
    client.event("client.exit", reason="sigterm" if client.stopping.is_set() else "done", ok=True)
    client.close()
    return 0
