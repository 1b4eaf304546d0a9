"""Process bookkeeping shared by everything the harness starts: pid files, liveness, reaping.

Every long-lived process we start (broker, epmd, embedded proxy) is recorded in a pid file
under the state directory together with a fragment of its command line. A later run reaps
what a killed run left behind, but only after checking /proc/<pid>/cmdline still matches:
pids are recycled, and we must never kill a stranger.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import signal
import socket
import time
from collections.abc import Iterator
from pathlib import Path

from harness.errors import ChaosError


def die_with_parent() -> None:
    """``preexec_fn`` for processes we spawn: the kernel SIGKILLs them if the harness dies, even by
    SIGKILL (PR_SET_PDEATHSIG survives exec). Only for direct children that exec the real program;
    the broker's wrapper forks beam, so the broker relies on pid-record reaping instead."""
    import ctypes

    pr_set_pdeathsig = 1
    ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, signal.SIGKILL, 0, 0, 0)


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie is "alive" to kill(0) but gone for our purposes. Only the whole thread group
    # counts: after SIGKILL the leader thread of a multithreaded process (beam.smp runs dozens
    # of threads) turns Z while other threads still tear down and hold its sockets open, so a
    # port is free only once every task of the group is gone.
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return False
    return any(_task_running(pid, t) for t in tasks)


def _task_running(pid: int, tid: str) -> bool:
    try:
        with open(f"/proc/{pid}/task/{tid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except OSError:
        return False


def cmdline(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as fh:
            return fh.read().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def environ(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/environ", "rb") as fh:
            return fh.read().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def matches(pid: int, fragment: str) -> bool:
    """Is ``pid`` alive and ours? ``fragment`` is looked for in its command line, then in its
    environment (beam.smp gets its node name from RABBITMQ_NODENAME, not from argv)."""
    return alive(pid) and (fragment in cmdline(pid) or fragment in environ(pid))


def wait_gone(pid: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not alive(pid):
            return True
        time.sleep(0.05)
    return not alive(pid)


def terminate(pid: int, fragment: str, grace: float = 10.0, sig: int = signal.SIGTERM) -> None:
    """Send ``sig`` to pid if it still is what we started, then SIGKILL after ``grace`` s."""
    if not matches(pid, fragment):
        return
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, sig)
    if not wait_gone(pid, grace):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        wait_gone(pid, 5)


def kill_group(pgid: int, fragment: str) -> None:
    """SIGKILL a whole process group we created, if its leader (or any member) is still ours."""
    members = [p for p in _pids() if _pgid(p) == pgid]
    if not any(matches(p, fragment) for p in members):
        return
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)
    for p in members:
        wait_gone(p, 5)


def _pids() -> list[int]:
    return [int(d) for d in os.listdir("/proc") if d.isdigit()]


def _pgid(pid: int) -> int | None:
    try:
        return os.getpgid(pid)
    except OSError:
        return None


#: environment variable naming the process that owns the records a process writes (a matrix's
#: cell children record their clients under the matrix process, which outlives them)
RECORD_OWNER = "RABBIT_CHAOS_RECORD_OWNER"


def record_owner() -> int:
    """The pid a record names as its owner: ours, or the one :data:`RECORD_OWNER` names."""
    try:
        return int(os.environ[RECORD_OWNER])
    except (KeyError, ValueError):
        return os.getpid()


@contextlib.contextmanager
def file_lock(path: Path) -> Iterator[None]:
    """Hold an exclusive ``flock`` on ``path`` (created if missing). A matrix runs cells side by
    side, in threads and child processes that share one state dir: a record's read-modify-write
    must not interleave (a lost entry leaks a process; two writers of one temp file crash one).
    flock locks an open file description, so it excludes threads of one process as well."""
    with open(path, "a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


class PidRecord:
    """A JSON record of what we started: {name: {pid, pgid, match}} plus the owner's pid.
    Changes hold :func:`file_lock` on ``<path>.lock`` (concurrent cells share the record)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def _locked(self) -> contextlib.AbstractContextManager[None]:
        return file_lock(self.path.with_name(self.path.name + ".lock"))

    def load(self) -> dict:
        try:
            return json.loads(self.path.read_text())
        except (OSError, ValueError):
            return {}

    def save(self, data: dict) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(data, indent=1))
        tmp.replace(self.path)

    def add(self, name: str, pid: int, match: str, pgid: int | None = None) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self._locked():
            data = self.load()
            data.setdefault("owner", record_owner())
            data.setdefault("procs", {})[name] = {"pid": pid, "pgid": pgid, "match": match}
            self.save(data)

    def remove(self, name: str) -> None:
        if not self.path.parent.is_dir():  # never was: nothing to remove
            return
        with self._locked():
            data = self.load()
            data.get("procs", {}).pop(name, None)
            if data.get("procs"):
                self.save(data)
            else:
                with contextlib.suppress(FileNotFoundError, NotADirectoryError):  # never was: nothing to remove
                    self.path.unlink()

    def reap(self) -> list[str]:
        """Kill every recorded process whose owner is gone. Returns what was reaped."""
        data = self.load()
        owner = data.get("owner")
        if owner and owner != os.getpid() and alive(owner):
            raise ChaosError(
                f"the state directory {self.path.parent} is in use by a running harness (pid {owner})",
                "wait for it to finish, stop it, or give this run its own --state-dir and --base-port",
            )
        reaped = []
        for name, rec in data.get("procs", {}).items():
            if matches(rec["pid"], rec["match"]):
                reaped.append(f"{name} (pid {rec['pid']})")
                terminate(rec["pid"], rec["match"], grace=2, sig=signal.SIGKILL)
            if rec.get("pgid"):
                kill_group(rec["pgid"], rec["match"])
        with contextlib.suppress(FileNotFoundError, NotADirectoryError):
            self.path.unlink()
        return reaped


def port_free(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


def _listening_inodes(port: int) -> list[int]:
    """Socket inodes bound to local ``port`` (any address, IPv4 or IPv6), from /proc/net/tcp*."""
    inodes: list[int] = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(table) as fh:
                rows = fh.read().splitlines()[1:]
        except OSError:
            continue
        for row in rows:
            cols = row.split()
            if len(cols) > 9 and int(cols[1].rpartition(":")[2], 16) == port and cols[9] != "0":
                inodes.append(int(cols[9]))
    return inodes


def port_holder(port: int) -> int | None:
    """The pid of a process holding a socket on local ``port``, if we can see one (same user or
    root: /proc/<pid>/fd of others is unreadable, and then None)."""
    wanted = {f"socket:[{i}]" for i in _listening_inodes(port)}
    if not wanted:
        return None
    for pid in _pids():
        try:
            fds = os.listdir(f"/proc/{pid}/fd")
        except OSError:
            continue
        for fd in fds:
            with contextlib.suppress(OSError):
                if os.readlink(f"/proc/{pid}/fd/{fd}") in wanted:
                    return pid
    return None


def _environ_dict(pid: int) -> dict[str, str]:
    try:
        with open(f"/proc/{pid}/environ", "rb") as fh:
            raw = fh.read()
    except OSError:
        return {}
    out: dict[str, str] = {}
    for item in raw.split(b"\0"):
        key, eq, value = item.decode(errors="replace").partition("=")
        if eq:
            out[key] = value
    return out


def ours_state_dir(pid: int) -> Path | None:
    """The state directory of a rabbit-chaos process (broker, epmd, embedded proxy), or None when
    ``pid`` is not one of ours. The broker and epmd carry it in their environment
    (RABBITMQ_LOG_BASE = <state>/broker/log); our proxy writes its output to <state>/proxy/toxiproxy.log."""
    env = _environ_dict(pid)
    if env.get("RABBITMQ_NODENAME", "").startswith("rabbit_chaos_") and env.get("RABBITMQ_LOG_BASE"):
        broker_dir = Path(env["RABBITMQ_LOG_BASE"]).parent
        # <state>/broker/log in an Environment's layout; <state>/cluster/<letter>/log for a node of
        # a local cluster (harness.env.cluster); <state>/log for a LocalBroker of its own
        if broker_dir.parent.name == "cluster":
            return broker_dir.parent.parent
        return broker_dir.parent if broker_dir.name == "broker" else broker_dir
    if "harness.proxy" in cmdline(pid):
        with contextlib.suppress(OSError):
            log = Path(os.readlink(f"/proc/{pid}/fd/1"))
            if log.name == "toxiproxy.log":
                return log.parent.parent
        return Path("?")
    return None


def describe_holder(port: int) -> tuple[str, str | None]:
    """Who holds ``port``, in words a user can act on, and the fix when it is a leftover of ours
    (see :func:`ensure_ports_free`)."""
    pid = port_holder(port)
    if pid is None:
        return "by another process", None
    name = cmdline(pid).split(" ", 1)[0].rsplit("/", 1)[-1] or "?"
    state = ours_state_dir(pid)
    if state is None:
        return f"by {name} (pid {pid})", None
    if str(state) == "?":
        return f"by a rabbit-chaos proxy (pid {pid}) of another run", None
    records = [state / "broker" / "pids.json", *sorted((state / "cluster").glob("*/pids.json"))]
    record = next((r for r in records if r.exists()), state / "pids.json")
    owner = PidRecord(record).load().get("owner")
    if isinstance(owner, int) and owner != os.getpid() and alive(owner):
        return (f"by a rabbit-chaos {name} (pid {pid}) of a run still going (harness pid {owner}) "
                f"under state dir {state}"), None
    return (f"by a broker left by a run killed under state dir {state} ({name}, pid {pid})",
            f"run with --state-dir {state} to reap it")


def ensure_ports_free(ports: dict[str, int], settle_s: float = 0.0) -> None:
    """One clear error naming every port in use, who holds it, and how to pick others.

    ``settle_s``: after we have just killed a process that held these ports, the kernel may
    still be releasing its sockets for a moment; wait up to that long before calling a port
    taken. All ports are checked before anything starts, so a busy fifth port (the proxy API)
    is reported before a broker boot, not after it."""
    deadline = time.monotonic() + settle_s
    by_holder: dict[str, list[str]] = {}  # one clause per holder: a leftover beam holds three ports
    fixes: list[str] = []
    for what, port in ports.items():
        while not port_free(port) and time.monotonic() < deadline:
            time.sleep(0.05)
        if not port_free(port):
            who, fix = describe_holder(port)
            by_holder.setdefault(who, []).append(f"{port} ({what})")
            if fix and fix not in fixes:
                fixes.append(fix)
    busy = [f"port {held[0]} on 127.0.0.1 is already in use {who}" if len(held) == 1
            else f"ports {', '.join(held)} on 127.0.0.1 are already in use {who}" for who, held in by_holder.items()]
    if busy:
        other = "choose other ports with --base-port N (RABBIT_CHAOS_BASE_PORT; we use N to N+6)"
        fix = "; ".join(fixes) + f", or {other}" if fixes else f"stop that process, or {other}"
        raise ChaosError("; ".join(busy), fix)
