"""The local broker: Debian's rabbitmq-server run as our own node.

Own node name, AMQP/dist/management ports, data and log dirs under a state directory, our own
epmd on a private loopback port; everything bound to 127.0.0.1. Traps we hit (DESIGN.md,
"Facts measured"): the /usr/sbin wrappers switch user and lose the cookie, so we run
/usr/lib/rabbitmq/bin/rabbitmq-server with our own HOME; the first node would start a system
epmd on all interfaces that outlives everything, so we run epmd ourselves (ERL_EPMD_PORT,
-address 127.0.0.1) and stop it by pid; the distribution port binds 0.0.0.0 unless told
(inet_dist_use_interface). Readiness is an AMQP handshake (``rabbitmq-diagnostics ping``
answers seconds before AMQP does). The pid file holds beam.smp's pid: that is what we signal.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.env import procs
from harness.env.backend import Capabilities, NodeInfo, NodeState, pid_state
from harness.env.management import Management
from harness.errors import ChaosError, HarnessFailure

RABBIT_BIN = Path(os.environ.get("RABBIT_CHAOS_RABBITMQ_BIN", "/usr/lib/rabbitmq/bin"))
#: Below Linux's ephemeral range (32768-60999): a listening port inside it can be taken as the
#: source port of any outgoing connection while the broker is down (seen: eaddrinuse at restart).
DEFAULT_BASE_PORT = 21672
USER = "guest"
PASSWORD = "guest"  # the node's default user; guest may only log in from loopback, which is all we use


def find_epmd() -> str:
    found = shutil.which("epmd")
    if found:
        return found
    for cand in sorted(Path("/usr/lib/erlang").glob("erts-*/bin/epmd")):
        return str(cand)
    raise ChaosError("epmd (Erlang) not found",
                     "install RabbitMQ: `bash scripts/bootstrap.sh install` or apt-get install rabbitmq-server")


def start_epmd(port: int, record: procs.PidRecord, env: dict[str, str]) -> subprocess.Popen[bytes]:
    """Our own epmd on 127.0.0.1:``port`` (never the system one on all interfaces, which would
    outlive us), recorded as "epmd" in ``record`` so a killed run's is reaped; returns once it
    listens. It dies with us too (PR_SET_PDEATHSIG)."""
    epmd = subprocess.Popen(
        [find_epmd(), "-port", str(port), "-address", "127.0.0.1"],
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        start_new_session=True, env=env, preexec_fn=procs.die_with_parent,
    )
    record.add("epmd", epmd.pid, f"-port {port}", pgid=epmd.pid)
    deadline = time.monotonic() + 10
    while procs.port_free(port):
        if epmd.poll() is not None or time.monotonic() > deadline:
            raise HarnessFailure(f"epmd did not start on 127.0.0.1:{port}")
        time.sleep(0.02)
    return epmd


def stop_epmd(epmd: subprocess.Popen[bytes] | None, record: procs.PidRecord) -> None:
    """Stop an epmd :func:`start_epmd` started (None: nothing to stop) and drop its record."""
    if epmd is not None:
        procs.terminate(epmd.pid, "epmd", grace=5)
        with contextlib.suppress(Exception):
            epmd.wait(timeout=5)
    record.remove("epmd")


@dataclass(frozen=True)
class Ports:
    amqp: int
    dist: int
    management: int
    epmd: int

    @classmethod
    def from_base(cls, base: int) -> Ports:
        return cls(amqp=base, dist=base + 1, management=base + 2, epmd=base + 3)

    def as_dict(self) -> dict[str, int]:
        return {"AMQP": self.amqp, "Erlang distribution": self.dist,
                "management": self.management, "epmd": self.epmd}


class LocalBroker:
    """One RabbitMQ node with its own epmd. ``start()`` boots it fresh; ``stop()`` leaves nothing.

    Process faults use :meth:`stop_node`/:meth:`start_node` (graceful restart), :meth:`kill_node`
    (SIGKILL of beam.smp) and :meth:`pause`/:meth:`resume` (SIGSTOP/SIGCONT). The node keeps its
    data dir across those, so durable queues and persistent messages survive as in production.
    """

    kind = "local"
    capabilities = Capabilities(process=True, ctl=True, nodes=1)
    toxiproxy_url: str | None = None  # no Toxiproxy of its own: the harness finds or starts one
    host = "127.0.0.1"

    def __init__(self, state_dir: Path, base_port: int = DEFAULT_BASE_PORT, node: str | None = None,
                 boot_timeout: float = 120.0, *, ports: Ports | None = None, own_epmd: bool = True,
                 extra_conf: str = "", cookie: str | None = None) -> None:
        """``ports``/``own_epmd``/``extra_conf``/``cookie`` let :class:`harness.env.cluster.LocalCluster`
        run several of these as one cluster: each node its own ports and dirs, one epmd (the
        cluster's, not ours: ``own_epmd=False``), clustering settings, and one shared cookie."""
        self.state_dir = Path(state_dir).resolve()
        self.ports = ports or Ports.from_base(base_port)
        self.node = node or f"rabbit_chaos_{base_port}@localhost"
        self.boot_timeout = boot_timeout
        self.own_epmd = own_epmd
        self.extra_conf = extra_conf
        self.cookie = cookie
        self.user, self.password = USER, PASSWORD
        self.record = procs.PidRecord(self.state_dir / "pids.json")
        self._wrapper: subprocess.Popen[bytes] | None = None
        self._epmd: subprocess.Popen[bytes] | None = None
        self.mgmt = Management(f"http://127.0.0.1:{self.ports.management}", self.user, self.password)
        self.boot_s: float | None = None
        self._log_marks: dict[Path, int] = {}
        #: set to abandon a boot in progress (a cluster booting its nodes in threads is interrupted:
        #: each thread must stop waiting, so that stop() finds every process it started)
        self.cancel = threading.Event()

    # ---- paths and environment -------------------------------------------------------
    @property
    def amqp_port(self) -> int:
        return self.ports.amqp

    @property
    def proxy_upstream(self) -> str:
        return f"127.0.0.1:{self.ports.amqp}"

    @property
    def pid_file(self) -> Path:
        return self.state_dir / "rabbit.pid"

    @property
    def log_dir(self) -> Path:
        return self.state_dir / "log"

    def env(self) -> dict[str, str]:
        sd = self.state_dir
        env = {k: v for k, v in os.environ.items() if not k.startswith(("RABBITMQ_", "ERL_"))}
        env.update({
            "HOME": str(sd / "home"),
            "RABBITMQ_NODENAME": self.node,
            "RABBITMQ_NODE_IP_ADDRESS": "127.0.0.1",
            "RABBITMQ_NODE_PORT": str(self.ports.amqp),
            "RABBITMQ_DIST_PORT": str(self.ports.dist),
            "RABBITMQ_MNESIA_BASE": str(sd / "mnesia"),
            "RABBITMQ_LOG_BASE": str(self.log_dir),
            "RABBITMQ_CONFIG_FILE": str(sd / "rabbitmq.conf"),
            "RABBITMQ_ADVANCED_CONFIG_FILE": str(sd / "advanced.config"),
            "RABBITMQ_ENABLED_PLUGINS_FILE": str(sd / "enabled_plugins"),
            "RABBITMQ_CONF_ENV_FILE": str(sd / "rabbitmq-env.conf"),
            "RABBITMQ_PID_FILE": str(self.pid_file),
            "ERL_EPMD_PORT": str(self.ports.epmd),
            "ERL_EPMD_ADDRESS": "127.0.0.1",
            "RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS": "-kernel inet_dist_use_interface {127,0,0,1}",
            "RABBITMQ_CTL_ERL_ARGS": "-kernel inet_dist_use_interface {127,0,0,1}",
        })
        return env

    def _write_config(self) -> None:
        sd = self.state_dir
        for d in ("home", "mnesia", "log"):
            (sd / d).mkdir(parents=True, exist_ok=True)
        if self.cookie is not None:  # a cluster's nodes (and their rabbitmqctl) share one cookie
            cookie = sd / "home" / ".erlang.cookie"
            with contextlib.suppress(FileNotFoundError):
                cookie.chmod(0o600)
            cookie.write_text(self.cookie)
            cookie.chmod(0o400)  # Erlang refuses a cookie file others can read
        (sd / "rabbitmq.conf").write_text(
            f"listeners.tcp.default = 127.0.0.1:{self.ports.amqp}\n"
            f"management.tcp.ip = 127.0.0.1\n"
            f"management.tcp.port = {self.ports.management}\n"
            # the management API's stats must be fresh enough for the liveness checker
            "collect_statistics_interval = 1000\n"
            "log.console = false\n"
            "log.file.level = info\n" + self.extra_conf
        )
        (sd / "advanced.config").write_text("[].\n")
        (sd / "enabled_plugins").write_text("[rabbitmq_management].\n")
        (sd / "rabbitmq-env.conf").write_text("")  # isolates the node from /etc/rabbitmq

    # ---- lifecycle -----------------------------------------------------------------
    def preflight(self, extra_ports: dict[str, int] | None = None) -> None:
        """Every check that can fail before a boot, so a user error costs no boot: the binary is
        there and executable, the state dir is ours (a killed earlier run's leftovers reaped), and
        every port -- ours and ``extra_ports`` (the proxy API) -- is free. Idempotent."""
        server = RABBIT_BIN / "rabbitmq-server"
        if not server.exists():
            raise ChaosError(
                f"RabbitMQ is not installed ({server} missing)",
                "run `bash scripts/bootstrap.sh` (installs Debian's rabbitmq-server), or use --backend external",
            )
        if not server.is_file() or not os.access(server, os.X_OK):
            raise ChaosError(f"the broker binary {server} is not executable",
                             f"make it executable (chmod +x {server}), or point RABBIT_CHAOS_RABBITMQ_BIN "
                             "at RabbitMQ's bin directory")
        self.state_dir.mkdir(parents=True, exist_ok=True)
        reaped = self.record.reap()
        ours = self.ports.as_dict()
        if not self.own_epmd:  # the cluster's epmd: checked (and started) by the cluster
            ours.pop("epmd")
        procs.ensure_ports_free({**ours, **(extra_ports or {})}, settle_s=10.0 if reaped else 0.0)

    def prepare(self) -> None:
        """A blank node: its data dir emptied, its config files written (no process started)."""
        shutil.rmtree(self.state_dir / "mnesia", ignore_errors=True)
        self._write_config()

    def start(self) -> LocalBroker:
        """Reap a killed earlier run's leftovers, then boot a fresh node and wait for AMQP.

        A node that does not boot is a ChaosError (exit 2 in the CLI) carrying the log lines of
        *this* boot: the log files are appended to across boots, so older lines would mislead."""
        self.preflight()
        self.prepare()
        t0 = time.monotonic()
        try:
            if self.own_epmd:
                self._start_epmd()
            self.start_node()
        except HarnessFailure as exc:
            self.stop()
            raise ChaosError(f"the broker did not boot: {exc}",
                             f"fix what its log says (full logs: {self.log_dir}), or use --backend external"
                             ) from None
        self.boot_s = time.monotonic() - t0
        return self

    def _start_epmd(self) -> None:
        self._epmd = start_epmd(self.ports.epmd, self.record, self.env())

    def _check_node(self, node: str | None) -> None:
        """A single node answers to its own name or to None (the Backend contract's "first
        node"); any other name is a caller's bug, refused rather than silently acting on us."""
        if node is not None and node != self.node:
            raise HarnessFailure(f"this backend runs one node ({self.node}), not {node!r}")

    def start_node(self, node: str | None = None, timeout: float | None = None) -> float:
        """Start beam (data dir kept) and wait for an AMQP handshake. Returns seconds taken.

        A boot already under way (one interrupted before it answered, e.g. Ctrl-C during a
        heal, after which the teardown heals again) is waited for, never doubled: a second
        wrapper would replace the first in our record and leave its beam behind."""
        self._check_node(node)
        t0 = time.monotonic()
        if self.cancel.is_set():
            raise HarnessFailure(f"the boot of {self.node} was cancelled")
        if self._wrapper is None or self._wrapper.poll() is not None:
            self._spawn()
        self.wait_ready(timeout or self.boot_timeout)
        beam = self.beam_pid()
        if beam:
            self.record.add("beam", beam, f"RABBITMQ_NODENAME={self.node}")
        return time.monotonic() - t0

    def _spawn(self) -> None:
        """Start the rabbitmq-server wrapper (its own session: our signals are not its), record it."""
        with contextlib.suppress(FileNotFoundError):
            self.pid_file.unlink()
        self._log_marks = self._log_sizes()  # log_tail shows this boot's lines only
        out = open(self.log_dir / "stdout.log", "ab")  # noqa: SIM115
        try:
            self._wrapper = subprocess.Popen(
                [str(RABBIT_BIN / "rabbitmq-server")], stdin=subprocess.DEVNULL, stdout=out, stderr=out,
                start_new_session=True, env=self.env(), cwd=self.state_dir,
            )
        except OSError as exc:
            raise HarnessFailure(f"cannot start {RABBIT_BIN / 'rabbitmq-server'}: {exc}") from exc
        finally:
            out.close()
        self.record.add("broker", self._wrapper.pid, f"RABBITMQ_NODENAME={self.node}", pgid=self._wrapper.pid)

    def wait_ready(self, timeout: float) -> None:
        """Readiness is an AMQP handshake, never an open port or a log line."""
        import pika

        params = pika.ConnectionParameters(
            host="127.0.0.1", port=self.ports.amqp,
            credentials=pika.PlainCredentials(self.user, self.password),
            connection_attempts=1, socket_timeout=2, blocked_connection_timeout=2,
            client_properties={"connection_name": "rabbit-chaos/readiness"},
        )
        deadline = time.monotonic() + timeout
        last: Exception | None = None
        while time.monotonic() < deadline:
            if self.cancel.is_set():
                raise HarnessFailure(f"the boot of {self.node} was cancelled")
            if self._wrapper is not None and self._wrapper.poll() is not None:
                raise HarnessFailure(f"rabbitmq-server exited with code {self._wrapper.returncode} "
                                     f"while booting; last log lines:\n{self.log_tail()}")
            try:
                pika.BlockingConnection(params).close()
                return
            except Exception as exc:  # noqa: BLE001 - any failure means "not ready yet"
                last = exc
                time.sleep(0.25)
        raise HarnessFailure(f"broker did not answer an AMQP handshake within {timeout:.0f}s "
                             f"({type(last).__name__}); last log lines:\n{self.log_tail()}")

    def beam_pid(self) -> int | None:
        with contextlib.suppress(OSError, ValueError):
            pid = int(self.pid_file.read_text().strip())
            if procs.alive(pid):
                return pid
        return None

    def stop_node(self, node: str | None = None, timeout: float = 60.0) -> float:
        """Graceful stop: SIGTERM to beam.smp (RabbitMQ shuts down cleanly). Returns seconds."""
        self._check_node(node)
        t0 = time.monotonic()
        beam = self.beam_pid()
        if beam:
            procs.terminate(beam, "beam", grace=timeout)
        self._reap_wrapper()
        self.record.remove("beam")
        return time.monotonic() - t0

    def kill_node(self, node: str | None = None) -> None:
        """Crash: SIGKILL beam.smp. No shutdown, no flush: what was not on disk is gone."""
        self._check_node(node)
        beam = self.beam_pid()
        if beam:
            with contextlib.suppress(ProcessLookupError):
                os.kill(beam, signal.SIGKILL)
            procs.wait_gone(beam, 10)
        self._reap_wrapper()
        self.record.remove("beam")

    def pause(self, node: str | None = None) -> None:
        """SIGSTOP beam.smp: the node stays connected at TCP level and answers nothing."""
        self._check_node(node)
        beam = self.beam_pid()
        if beam is None:
            raise HarnessFailure("cannot pause: broker is not running")
        os.kill(beam, signal.SIGSTOP)

    def resume(self, node: str | None = None) -> None:
        """SIGCONT beam.smp (harmless when it runs or is gone: heal is idempotent)."""
        self._check_node(node)
        beam = self.beam_pid()
        if beam is not None:
            os.kill(beam, signal.SIGCONT)

    def _reap_wrapper(self) -> None:
        if self._wrapper is not None:
            try:
                self._wrapper.wait(timeout=15)
            except subprocess.TimeoutExpired:
                procs.kill_group(self._wrapper.pid, "rabbitmq")
                self._wrapper.wait(timeout=5)
            self._wrapper = None
        self.record.remove("broker")

    def stop(self) -> None:
        """Stop everything we started. Idempotent; safe after a partial start."""
        with contextlib.suppress(Exception):
            self.resume()  # a paused beam cannot shut down gracefully
        try:
            self.stop_node(timeout=30)
        finally:
            stop_epmd(self._epmd, self.record)
            self._epmd = None
            self.record.reap()
            self.mgmt.close()

    def __enter__(self) -> LocalBroker:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def ctl(self, *args: str, node: str | None = None, timeout: float = 30.0) -> str:
        """Run ``rabbitmqctl`` against our node (~1 s a call: prefer the management API where it
        has the operation). Raises HarnessFailure with its output on a non-zero exit."""
        self._check_node(node)
        proc = subprocess.run(
            [str(RABBIT_BIN / "rabbitmqctl"), "-n", self.node, *args], env=self.env(),
            capture_output=True, text=True, timeout=timeout, cwd=self.state_dir,
        )
        if proc.returncode != 0:
            raise HarnessFailure(f"rabbitmqctl {args[0] if args else ''} failed ({proc.returncode}): "
                                 f"{(proc.stderr or proc.stdout).strip()[:300]}")
        return proc.stdout

    # ---- information -----------------------------------------------------------------
    def _log_sizes(self) -> dict[Path, int]:
        sizes: dict[Path, int] = {}
        for f in self.log_dir.glob("*.log"):
            with contextlib.suppress(OSError):
                sizes[f] = f.stat().st_size
        return sizes

    def log_tail(self, n: int = 15) -> str:
        """The last ``n`` lines the node logged since the latest :meth:`start_node` (files that
        existed before it are read from where they ended then), or a note that it logged nothing."""
        lines: list[str] = []
        marks = self._log_marks
        for f in sorted(self.log_dir.glob("*.log")):
            with contextlib.suppress(OSError), open(f, "rb") as fh:
                fh.seek(marks.get(f, 0))
                lines += fh.read().decode(errors="replace").splitlines()[-n:]
        return "\n".join(lines[-n:]) or "(nothing logged by this boot)"

    def versions(self) -> dict[str, Any]:
        return self.mgmt.versions()

    def node_state(self, node: str | None = None) -> NodeState:
        """The kernel's view of beam.smp: down (no live pid), paused (SIGSTOP) or running."""
        self._check_node(node)
        return pid_state(self.beam_pid())

    def log_files(self) -> list[Path]:
        """The node's log files (appended to across boots): for joining its log with the history."""
        return sorted(self.log_dir.glob("*.log"))

    def nodes(self) -> list[NodeInfo]:
        """One node: its Erlang name and the AMQP address a proxy forwards to."""
        return [NodeInfo(self.node, self.proxy_upstream)]

    def create_vhost(self, vhost: str) -> None:
        """A run's isolation: a fresh vhost labelled with its owner (reaped if we are killed),
        with all rights for our user. Through the management API (~20 ms, not ~1 s of CLI)."""
        self.mgmt.create_vhost(vhost, self.user)

    def delete_vhost(self, vhost: str) -> None:
        """Remove a run's vhost with its queues and messages (absent is fine: idempotent)."""
        self.mgmt.delete_vhost(vhost)

    def amqp_url(self, vhost: str, host: str | None = None, port: int | None = None) -> str:
        from urllib.parse import quote

        return (f"amqp://{self.user}:{self.password}@{host or self.host}:{port or self.ports.amqp}/"
                f"{quote(vhost, safe='')}")
