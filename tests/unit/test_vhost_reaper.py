"""Vhosts we create carry their owner; the next start deletes those whose owner is provably gone
(same host, pid dead or recycled), and never a vhost we did not create or one still in use."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from typing import Any

import httpx

from harness.env.management import Management, Owner, proc_start

HOST = socket.gethostname()


def dead_pid() -> int:
    return int(subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                              text=True, check=True).stdout)


def mgmt(vhosts: list[dict[str, Any]]) -> tuple[Management, list[tuple[str, str, Any]]]:
    calls: list[tuple[str, str, Any]] = []

    def handler(req: httpx.Request) -> httpx.Response:
        body = json.loads(req.content) if req.content else None
        calls.append((req.method, req.url.raw_path.decode(), body))
        if req.method == "GET" and req.url.path == "/api/vhosts":
            return httpx.Response(200, json=vhosts)
        return httpx.Response(204)

    m = Management("http://mgmt.test", "u", "p")
    m._http = httpx.Client(base_url="http://mgmt.test", transport=httpx.MockTransport(handler))
    return m, calls


def label(host: str, pid: int, start: int | None) -> str:
    return f"rabbit-chaos owner={host}:{pid} proc_start={start} started=2026-12-06T07:00:00+00:00"


def test_create_vhost_labels_it_with_this_process() -> None:
    m, calls = mgmt([])
    m.create_vhost("rc-run1", "guest")
    method, path, body = calls[0]
    assert (method, path) == ("PUT", "/api/vhosts/rc-run1")
    owner = Owner.parse(body["description"])
    assert owner == Owner(HOST, os.getpid(), proc_start(os.getpid()) or 0)
    assert body["tags"] == "rabbit-chaos"
    assert not owner.gone()


def test_only_our_labelled_vhosts_with_a_gone_owner_are_reaped() -> None:
    me, start = os.getpid(), proc_start(os.getpid())
    dead = dead_pid()
    vhosts = [
        {"name": "/", "description": "Default virtual host"},
        {"name": "rc-killed", "description": label(HOST, dead, 12345)},  # owner dead: reap
        {"name": "rc-recycled", "description": label(HOST, me, (start or 0) + 1)},  # pid reused: reap
        {"name": "rc-live", "description": label(HOST, me, start)},  # a run in progress: keep
        {"name": "rc-elsewhere", "description": label("another-host", dead, 1)},  # cannot tell: keep
        {"name": "rc-unlabelled", "description": ""},  # not ours as far as we can prove: keep
        {"name": "users-vhost", "description": label(HOST, dead, 1)},  # not our name: keep
        {"name": "rc-no-description"},
    ]
    m, calls = mgmt(vhosts)
    assert m.reap_orphan_vhosts() == ["rc-killed", "rc-recycled"]
    assert [p for meth, p, _ in calls if meth == "DELETE"] == ["/api/vhosts/rc-killed", "/api/vhosts/rc-recycled"]
