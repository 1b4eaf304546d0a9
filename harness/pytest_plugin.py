"""pytest plugin (entry point ``pytest11: rabbit_chaos``): fixtures that boot one broker + fault
proxy per session (per xdist worker) and run client × fault cells.

    def test_survives_restart(chaos_run):
        chaos_run("pika-recover", "broker-restart").assert_pass()

Nothing boots unless a test asks for ``chaos_env`` (directly or through ``chaos_run``), so the
plugin costs nothing in suites that do not use it.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from harness.outcome import RunOutcome


def pytest_addoption(parser: pytest.Parser) -> None:
    g = parser.getgroup("rabbit-chaos")
    g.addoption("--chaos-reports", default="reports", help="results store for runs made by tests")
    g.addoption("--chaos-state-dir", default=None, help="broker state dir [default: .rabbit-chaos/state]")
    g.addoption("--chaos-base-port", type=int, default=None, help="first local port used [default: 35672]")
    g.addoption("--chaos-backend", default=os.environ.get("RABBIT_CHAOS_BACKEND", "local"),
                choices=["local", "external", "compose"], help="broker backend [default: local]")
    g.addoption("--chaos-amqp-url", default=None, help="external backend AMQP URL [default: $RABBIT_CHAOS_AMQP_URL]")
    g.addoption("--chaos-management-url", default=None, help="external backend management URL")


def _worker_index() -> int:
    wid = os.environ.get("PYTEST_XDIST_WORKER", "")
    return int(wid[2:]) + 1 if wid.startswith("gw") else 0


@pytest.fixture(scope="session")
def chaos_env(pytestconfig: pytest.Config) -> Iterator[Any]:
    """One broker node + proxy server for the session. Under xdist each worker gets its own node
    (own ports and state dir): a broker-restart in one worker must not hit another's runs."""
    from harness.env.environment import Environment, default_base_port, default_state_dir

    idx = _worker_index()
    base = pytestconfig.getoption("--chaos-base-port") or default_base_port()
    state = Path(pytestconfig.getoption("--chaos-state-dir") or default_state_dir())
    env = Environment(state / f"w{idx}" if idx else state, base + 10 * idx,
                      backend=pytestconfig.getoption("--chaos-backend"),
                      amqp_url=pytestconfig.getoption("--chaos-amqp-url"),
                      management_url=pytestconfig.getoption("--chaos-management-url"))
    env.start()
    try:
        yield env
    finally:
        env.stop()


@pytest.fixture
def chaos_run(chaos_env: Any, pytestconfig: pytest.Config) -> Callable[..., RunOutcome]:
    """Run ``client`` under ``fault`` and return a :class:`RunOutcome` with assertion helpers."""
    from harness.engine import RunSpec, run_cell

    reports = Path(pytestconfig.getoption("--chaos-reports"))
    reports.mkdir(parents=True, exist_ok=True)

    def run(client: str, fault: str = "none", **spec: Any) -> RunOutcome:
        from harness.errors import FaultUnavailable

        try:
            doc = run_cell(chaos_env, RunSpec(client=client, fault=fault, **spec), reports)
        except FaultUnavailable as exc:
            pytest.skip(exc.problem)
        return RunOutcome(doc, reports)

    return run
