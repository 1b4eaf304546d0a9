"""Spawn and supervise client processes, and record how each one ended.

One OS process per publisher/consumer, each in its own session (a Ctrl-C at the terminal
reaches the harness, which then stops clients in order, instead of killing them mid-write).
How a process ends is itself evidence: the harness writes ``proc.exit`` with ``expected``
telling the checker whether the harness asked for it (SIGTERM at the end of a run, or a
publisher finishing its work) or the process died on its own. Before it signals a client the
harness writes ``proc.signal`` (target, signal, why): whatever the client writes after it is its
reaction to being stopped, never its detection of a fault.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from harness.clients import configfile
from harness.clients.protocol import CONFIG_ENV, ClientConfig
from harness.env import procs
from harness.history import HistoryWriter


def strategy_command(strategy: str) -> list[str]:
    """How a built-in strategy's process starts: with the harness's own python, or for
    NAME@VERSION with the python of that library version's cached environment (built on first
    use: harness/clients/versions.py)."""
    if "@" in strategy:
        from harness.clients import versions

        return versions.command(strategy)
    return [sys.executable, "-m", "harness.clients", strategy]


class ClientProcess:
    def __init__(self, cfg: ClientConfig, command: list[str], run_dir: Path, writer: HistoryWriter,
                 record: procs.PidRecord | None = None) -> None:
        self.cfg = cfg
        self.command = command
        #: evidence: the config with passwords as *** (the real one is private_config: configfile.py)
        self.config_path = run_dir / "config" / f"{cfg.proc}.json"
        self.private_config: Path | None = None
        self.log_path = run_dir / "logs" / f"{cfg.proc}.log"
        self.popen: subprocess.Popen[bytes] | None = None
        self.writer = writer
        self.record = record  # so a killed harness's clients are reaped by the next run
        self.terminated_by_us = False
        self.killed_by_us = False
        self.abort_reason: str | None = None
        self.exited = threading.Event()

    @property
    def proc(self) -> str:
        return self.cfg.proc

    def start(self) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        # the real config (credentials) goes to a private dir in the state dir, deleted when the
        # client exits; reports/ gets a copy with the password as *** (harness/clients/configfile.py)
        state = self.record.path.parent if self.record is not None else None
        self.private_config = configfile.write(self.cfg.model_dump(), configfile.private_dir(state, self.cfg.run_id),
                                               self.config_path)
        env = dict(os.environ)
        env[CONFIG_ENV] = str(self.private_config)
        env["PYTHONUNBUFFERED"] = "1"
        log = open(self.log_path, "ab")  # noqa: SIM115
        try:
            self.popen = subprocess.Popen(
                [*self.command, "--config", str(self.private_config)],
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, env=env,
                start_new_session=True, preexec_fn=procs.die_with_parent,
            )
        except BaseException:
            configfile.discard(self.private_config)  # no client will read it
            raise
        finally:
            log.close()
        if self.record is not None:
            self.record.add(self.proc + "@" + self.cfg.run_id, self.popen.pid, str(self.private_config),
                            pgid=self.popen.pid)
        threading.Thread(target=self._watch, name=f"watch-{self.proc}", daemon=True).start()

    def _watch(self) -> None:
        """Record ``proc.exit`` the moment the process ends: its time is evidence (when did the
        consumer give up?). Expected: a publisher that finished (exit 0), or a process that
        honoured the harness's SIGTERM with exit 0. Anything else is the process's own doing."""
        assert self.popen is not None
        code = self.popen.wait()
        if self.abort_reason is not None:
            expected, note = False, self.abort_reason
        elif self.killed_by_us:
            expected, note = False, f"ignored SIGTERM for {self.cfg.grace_s:.0f}s: killed by the harness"
        elif self.terminated_by_us:
            expected, note = code == 0, "stopped by the harness (SIGTERM)"
        else:
            expected = self.cfg.role == "publisher" and code == 0
            note = "finished" if expected else "exited on its own"
        self.writer.write("proc.exit", target=self.proc, code=code, expected=expected, note=note)
        if self.private_config is not None:
            configfile.discard(self.private_config)
        if self.record is not None:
            self.record.remove(self.proc + "@" + self.cfg.run_id)
        self.exited.set()

    def returncode(self) -> int | None:
        return None if self.popen is None else self.popen.poll()

    def running(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def wait(self, timeout: float) -> int | None:
        if self.popen is None:
            return None
        try:
            return self.popen.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return None

    def abort(self, reason: str, grace: float) -> None:
        """Stop a process the run cannot wait for; its end is recorded as not expected."""
        self.abort_reason = reason
        self.stop(grace, why=reason)

    def signal(self, sig: signal.Signals, why: str) -> None:
        """Write ``proc.signal`` first, then signal the process group (already gone is fine)."""
        if self.popen is None:
            return  # never started: nothing to signal
        self.writer.write("proc.signal", target=self.proc, signal=sig.name, why=why)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.popen.pid, sig)

    def stop(self, grace: float, why: str = "end of the run") -> tuple[int | None, bool]:
        """SIGTERM, then SIGKILL after ``grace``; each announced by ``proc.signal`` (with
        ``why``) before it is sent. Returns (exit code, honoured SIGTERM)."""
        if self.popen is None:
            return None, True
        if self.popen.poll() is not None:
            return self.popen.returncode, True
        self.terminated_by_us = True
        self.signal(signal.SIGTERM, why)
        code = self.wait(grace)
        if code is not None:
            self.exited.wait(5)
            return code, True
        self.killed_by_us = True
        self.signal(signal.SIGKILL, f"ignored SIGTERM for {grace:g} s ({why})")
        code = self.wait(5)
        self.exited.wait(5)
        return code, False


#: notices after which a consumer's unacked deliveries are void: the broker requeues what was
#: delivered on a lost connection, closed channel or cancelled consumer, and the client can no
#: longer ack it (the broker redelivers it instead)
RELEASES = frozenset({"conn.lost", "channel.closed", "consume.cancelled"})


class HistoryTail:
    """Incrementally follow one growing JSONL history file (no re-reading).

    The runner awaits events ("the consumer has connected", "no delivery for 2 s") by polling
    this, which costs only the new bytes each time. Beside counts per kind it keeps what the
    phases ask for: the ids the client holds delivered but not acked (``unacked``; cleared by
    a lost connection, closed channel or cancelled consumer, see RELEASES) and the client's
    ``client.start`` event (its declared heartbeat window).
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._pos = 0
        self._partial = b""
        self.counts: dict[str, int] = {}
        self.last_t: dict[str, float] = {}
        self.unacked: set[str] = set()
        self.started: dict[str, object] | None = None

    def poll(self) -> None:
        try:
            with open(self.path, "rb") as fh:
                fh.seek(self._pos)
                data = fh.read()
        except FileNotFoundError:
            return
        self._pos += len(data)
        data = self._partial + data
        *lines, self._partial = data.split(b"\n")
        for line in lines:
            try:
                ev = json.loads(line)
            except ValueError:
                continue
            if not isinstance(ev, dict):
                continue
            self.feed(ev)

    def feed(self, ev: dict[str, object]) -> None:
        """Account one event (``poll`` calls it per line; tests call it directly)."""
        kind = str(ev.get("kind", "?"))
        self.counts[kind] = self.counts.get(kind, 0) + 1
        t = ev.get("t")
        self.last_t[kind] = t if isinstance(t, float | int) else time.monotonic()
        if kind == "deliver":
            self.unacked.add(str(ev.get("id")))
        elif kind == "ack":
            self.unacked.discard(str(ev.get("id")))
        elif kind in RELEASES:
            self.unacked.clear()
        elif kind == "client.start" and self.started is None:
            self.started = ev

    def held(self) -> int:
        """Deliveries the client holds unacknowledged right now (after reading new lines)."""
        self.poll()
        return len(self.unacked)

    def count(self, kind: str) -> int:
        self.poll()
        return self.counts.get(kind, 0)
