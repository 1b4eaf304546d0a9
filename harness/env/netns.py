"""Network namespaces for kernel-level faults (packet loss, blackhole, one-way loss, RST).

Topology, all loopback: the client processes run inside a namespace we create; a relay
(:mod:`harness.env.nsrelay`) running in the root namespace opens its listening sockets *inside*
that namespace (setns), so a client connects to 127.0.0.1:<port> of its own namespace and the
relay forwards to the run's Toxiproxy proxy on the root namespace's 127.0.0.1. The kernel faults
are iptables rules on the namespace's loopback, matching the relay's ports: real packet drops
that TCP retransmits (unlike a proxy, which can only delay or discard bytes).

No address outside 127.0.0.0/8 is ever used, no rule is ever added to the root namespace, and
deleting the namespace removes every rule in it. Namespaces are recorded in the state dir and
deleted by the next run if a run was killed.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import subprocess
from functools import cache
from pathlib import Path

from harness.env import procs
from harness.errors import HarnessFailure

PREFIX = "rabbit-chaos-"


def _run(args: list[str], check: bool = True) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(args, capture_output=True, text=True, timeout=30)
    if check and proc.returncode != 0:
        raise HarnessFailure(f"{' '.join(args)} failed: {(proc.stderr or proc.stdout).strip()[:300]}")
    return proc


@cache
def kernel_support() -> str | None:
    """None when kernel faults can run here, else the reason they cannot (shown as a skip)."""
    if os.geteuid() != 0:
        return "kernel faults need root (network namespaces and iptables); run as root to enable them"
    for tool, pkg in (("ip", "iproute2"), ("iptables", "iptables")):
        if shutil.which(tool) is None:
            return f"`{tool}` is not installed (apt-get install {pkg}, or bash scripts/bootstrap.sh install)"
    name = f"{PREFIX}probe-{os.getpid()}"
    try:
        made = _run(["ip", "netns", "add", name], check=False)
        if made.returncode != 0:
            return f"cannot create a network namespace here: {made.stderr.strip()[:200]}"
        rule = _run(["ip", "netns", "exec", name, "iptables", "-w", "-A", "INPUT", "-p", "tcp", "-m", "statistic",
                     "--mode", "random", "--probability", "0.5", "-j", "DROP"], check=False)
        if rule.returncode != 0:
            return f"iptables does not work inside a namespace here: {rule.stderr.strip()[:200]}"
    finally:
        _run(["ip", "netns", "del", name], check=False)
    return None


def netem_available() -> bool:
    """This kernel family often lacks sch_netem; detect, never assume (latency comes from the proxy)."""
    if kernel_support() is not None:
        return False
    name = f"{PREFIX}netem-{os.getpid()}"
    try:
        _run(["ip", "netns", "add", name], check=False)
        r = _run(["ip", "netns", "exec", name, "tc", "qdisc", "add", "dev", "lo", "root", "netem", "delay", "1ms"],
                 check=False)
        return r.returncode == 0
    finally:
        _run(["ip", "netns", "del", name], check=False)


class NetnsRecord:
    """Which namespaces we created, by owner pid, so a killed run's are deleted by the next."""

    def __init__(self, state_dir: Path) -> None:
        self.path = state_dir / "netns.json"

    def _load(self) -> dict[str, int]:
        try:
            return json.loads(self.path.read_text())
        except (OSError, ValueError):
            return {}

    def _save(self, data: dict[str, int]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.path.write_text(json.dumps(data))

    def add(self, name: str) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with procs.file_lock(self.path.with_name(self.path.name + ".lock")):  # concurrent cells
            data = self._load()
            data[name] = os.getpid()
            self._save(data)

    def remove(self, name: str) -> None:
        if not self.path.parent.is_dir():
            return
        with procs.file_lock(self.path.with_name(self.path.name + ".lock")):
            data = self._load()
            data.pop(name, None)
            self._save(data)

    def reap(self) -> list[str]:
        """Delete recorded namespaces whose owner process is gone."""
        data = self._load()
        gone = [n for n, owner in data.items() if not procs.alive(owner) or owner == os.getpid()]
        for name in gone:
            _run(["ip", "netns", "del", name], check=False)
            data.pop(name, None)
        self._save(data)
        return gone


class ClientNetns:
    """One namespace for one run's clients. ``delete()`` removes it and every rule in it."""

    def __init__(self, state_dir: Path, tag: str) -> None:
        self.name = f"{PREFIX}{tag}-{secrets.token_hex(3)}"[:48]
        self.record = NetnsRecord(state_dir)

    def create(self) -> ClientNetns:
        self.record.reap()
        _run(["ip", "netns", "add", self.name])
        self.record.add(self.name)
        _run(["ip", "-n", self.name, "link", "set", "lo", "up"])
        return self

    def delete(self) -> None:
        with contextlib.suppress(HarnessFailure):
            _run(["ip", "netns", "del", self.name], check=False)
        self.record.remove(self.name)

    def exec_prefix(self) -> list[str]:
        return ["ip", "netns", "exec", self.name]

    def iptables(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return _run([*self.exec_prefix(), "iptables", "-w", *args], check=check)

    def rules(self) -> str:
        return self.iptables("-S").stdout

    @property
    def path(self) -> str:
        return f"/var/run/netns/{self.name}"


def existing() -> list[str]:
    out = _run(["ip", "netns", "list"], check=False).stdout
    return [line.split()[0] for line in out.splitlines() if line.startswith(PREFIX)]
