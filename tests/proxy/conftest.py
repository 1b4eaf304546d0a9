"""Fixtures for the proxy conformance suite: each test runs against our embedded server and,
when one is given (TOXIPROXY_SERVER=/path/to/toxiproxy-server or TOXIPROXY_URL), a real one.
"""

from __future__ import annotations

import itertools
import os
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))  # proxy_testkit, whatever the import mode

from proxy_testkit import Upstream, close_handler, echo_handler

from harness.env.toxiproxy import (
    ToxiproxyClient,
    ToxiproxyServer,
    find_or_start_server,
)

NAME_PREFIX = "rc_conformance_"
_names = itertools.count()


@pytest.fixture(scope="session", params=["embedded", "real"])
def toxiproxy_server(request: pytest.FixtureRequest,
                     tmp_path_factory: pytest.TempPathFactory) -> Iterator[ToxiproxyServer]:
    state = tmp_path_factory.mktemp(f"toxiproxy-{request.param}")
    if request.param == "embedded":
        mp = pytest.MonkeyPatch()
        mp.delenv("TOXIPROXY_URL", raising=False)
        try:
            server = find_or_start_server(state, prefer="embedded")
        finally:
            mp.undo()
    else:
        if not (os.environ.get("TOXIPROXY_URL") or os.environ.get("TOXIPROXY_SERVER")):
            pytest.skip("no real Toxiproxy: set TOXIPROXY_SERVER=/path/to/toxiproxy-server "
                        "or TOXIPROXY_URL=http://host:port to run the suite against one")
        server = find_or_start_server(state, prefer="real")
    with server:
        yield server
        proc_pid = server.proc.pid if server.proc is not None else None
    if proc_pid is not None:  # what we started is gone
        assert not Path(f"/proc/{proc_pid}").exists() or "Z" in Path(f"/proc/{proc_pid}/stat").read_text()


@pytest.fixture(scope="session")
def server_kind(toxiproxy_server: ToxiproxyServer) -> str:
    return toxiproxy_server.kind


@pytest.fixture()
def api(toxiproxy_server: ToxiproxyServer) -> Iterator[ToxiproxyClient]:
    """A client; every proxy a test made (by our name prefix) is deleted afterwards."""
    client = toxiproxy_server.client(timeout=10)
    yield client
    for name in list(client.proxies()):
        if name.startswith(NAME_PREFIX):
            client.delete_proxy(name, missing_ok=True)
    client.close()


@pytest.fixture(scope="session")
def echo() -> Iterator[Upstream]:
    server = Upstream(echo_handler)
    yield server
    server.close()


@pytest.fixture(scope="session")
def closer() -> Iterator[Upstream]:
    server = Upstream(close_handler)
    yield server
    server.close()


@pytest.fixture()
def make_proxy(api: ToxiproxyClient, echo: Upstream) -> Callable[..., tuple[str, int]]:
    """make_proxy(upstream=echo.addr) -> (name, port): a fresh proxy on 127.0.0.1:<free>."""

    def make(upstream: str | None = None) -> tuple[str, int]:
        name = f"{NAME_PREFIX}{os.getpid()}_{next(_names)}"
        created = api.create_proxy(name, "127.0.0.1:0", upstream or echo.addr)
        return name, int(created["listen"].rsplit(":", 1)[1])

    return make


@pytest.fixture()
def embedded_only(server_kind: str) -> None:
    if server_kind != "embedded":
        pytest.skip("`hold` is our toxic, not Toxiproxy's")
