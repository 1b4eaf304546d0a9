"""pytest plugin (entry point ``pytest11: rabbit_chaos``): fixtures that boot one broker + fault
proxy per session (per xdist worker) and run client × fault cells, and one HTML report for the
whole session.

    def test_survives_restart(chaos_run, chaos_client):
        chaos_run(chaos_client, "broker-restart").assert_pass().assert_no_loss()

* ``chaos_env`` (session): the environment. Under pytest-xdist each worker boots its own node on
  its own ports and state dir: a broker restart in one worker must never hit another's runs.
* ``chaos_run(client, fault="none", **spec)``: runs one cell, returns a RunOutcome with
  ``assert_pass``, ``assert_no_loss``, ``assert_recovered_within``, ``assert_no_stall``. A fault
  this environment cannot inject (kernel faults without root, process faults on an external
  broker) skips the test with the reason.
* ``chaos_client``: parametrised over ``--chaos-clients`` (default: pika-best; the shipped
  scenarios expect a best-practice strategy, docs/matrix.md).
* ``toxiproxy``: a toxiproxy-python client (``toxiproxy.Toxiproxy``) bound to the session's
  Toxiproxy server, real or our embedded one, for scenarios that shape traffic themselves
  (``toxiproxy.create(upstream=..., name=...)``, ``proxy.add_toxic(type="latency", ...)``).
  Proxies the test creates are deleted after it.
* markers: ``kernel`` (skipped with the reason where kernel faults cannot run), ``slow``.
* ``--chaos-shard K/N``: only shard K of N of the collected tests, so N CI jobs share a scenario
  suite (``pytest scenarios/ --chaos-clients pika-best --chaos-shard 1/2``). The split is
  :mod:`harness.shard`'s, the same rule as ``rabbit-chaos matrix --shard``: by node id (hashed,
  then dealt round robin), never by collection position, so ``--chaos-clients a,b`` and
  ``b,a`` (or ``-k``-free reorderings of files) give each job the same tests, and each shard
  gets floor or ceil of total / N.
* ``--chaos-report PATH``: the HTML report written at session end from every run the session
  made (all xdist workers merged) [default: <chaos-reports>/<session>/report.html].

Nothing boots unless a test asks for ``chaos_env`` (directly or through ``chaos_run``), so the
plugin costs nothing in suites that do not use it.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from harness.outcome import RunOutcome

SESSION_ENV = "RABBIT_CHAOS_PYTEST_SESSION_DIR"
#: loggers of the harness's own broker polling in this process (readiness handshakes while the
#: broker boots, the trusted reader and the management API while a fault holds the broker down):
#: every refused connection there is expected, and pytest would print each one's traceback
#: (hundreds of lines) under a failing scenario, burying its assertion message. The clients
#: under test run in their own processes and log to reports/<run>/logs/, untouched by this.
HARNESS_LOGGERS = ("pika", "httpx", "httpcore")


@contextlib.contextmanager
def quiet_harness_logs() -> Iterator[None]:
    """Silence :data:`HARNESS_LOGGERS` while the harness polls; their levels are restored after."""
    saved = {name: logging.getLogger(name).level for name in HARNESS_LOGGERS}
    for name in HARNESS_LOGGERS:
        logging.getLogger(name).setLevel(logging.CRITICAL + 1)
    try:
        yield
    finally:
        for name, level in saved.items():
            logging.getLogger(name).setLevel(level)


def pytest_addoption(parser: pytest.Parser) -> None:
    g = parser.getgroup("rabbit-chaos")
    g.addoption("--chaos-reports", default="reports", help="results store for runs made by tests [default: reports]")
    g.addoption("--chaos-report", default=None, help="HTML report written at session end "
                                                     "[default: <chaos-reports>/pytest-<time>/report.html]")
    g.addoption("--chaos-clients", default="pika-best",
                help="comma-separated clients the chaos_client fixture is parametrised over [default: "
                     "pika-best: the scenarios expect a best-practice client]")
    g.addoption("--chaos-shard", default=None, metavar="K/N",
                help="run only shard K of N of the collected tests (1 <= K <= N; split by test id, not "
                     "collection order, the same rule as `rabbit-chaos matrix --shard`): N CI jobs run "
                     "K=1..N")
    g.addoption("--chaos-queue-type", default="classic", type=_queue_type_option, metavar="TYPE",
                help="the run queue's type for chaos_run: classic | quorum (x-queue-type) [default: classic]; "
                     "a test may pass queue_type= itself")
    g.addoption("--chaos-nodes", type=int, default=1, choices=range(1, 8), metavar="N",
                help="broker nodes: 1, or a local cluster of N of our own nodes (cluster faults need it; "
                     "docs/cluster.md) [default: 1]")
    g.addoption("--chaos-state-dir", default=None, help="broker state dir [default: .rabbit-chaos/state]")
    g.addoption("--chaos-base-port", type=int, default=None, help="first local port used [default: 21672]")
    g.addoption("--chaos-backend", default=os.environ.get("RABBIT_CHAOS_BACKEND", "local"),
                choices=["local", "external", "compose"], help="broker backend [default: local]")
    g.addoption("--chaos-amqp-url", default=None, help="external backend AMQP URL [default: $RABBIT_CHAOS_AMQP_URL]")
    g.addoption("--chaos-management-url", default=None, help="external backend management URL")


def _queue_type_option(value: str) -> str:
    """``--chaos-queue-type``: one known, supported queue type, refused as a usage error before any
    broker boots (the same rules and words as the CLI's ``--queue-type``)."""
    import argparse

    from harness.config import check_queue_types, queue_types
    from harness.errors import ChaosError

    try:
        types = queue_types(value)
        if len(types) != 1:
            raise ChaosError(f"one queue type, not {','.join(types)}", "pass --chaos-queue-type classic or quorum")
        check_queue_types(types, [])
    except ChaosError as exc:
        raise argparse.ArgumentTypeError(f"{exc.problem} (fix: {exc.fix})") from None
    return types[0]


def _is_worker(config: pytest.Config) -> bool:
    return hasattr(config, "workerinput")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "kernel: needs root, iptables and network namespaces (skipped elsewhere)")
    config.addinivalue_line("markers", "slow: long-running; excluded from CI with -m 'not slow'")
    if not _is_worker(config):
        # one directory for every run of this session; xdist workers (spawned after this) inherit it
        # through the environment. A controller always makes its own, even inside another pytest.
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
        session = Path(config.getoption("--chaos-reports")).resolve() / f"pytest-{stamp}-{os.getpid()}"
        os.environ[SESSION_ENV] = str(session)
        config._chaos_session_owner = True  # type: ignore[attr-defined]


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "chaos_client" in metafunc.fixturenames:
        clients = [c.strip() for c in metafunc.config.getoption("--chaos-clients").split(",") if c.strip()]
        metafunc.parametrize("chaos_client", clients)


def parse_shard(text: str) -> tuple[int, int]:
    """``K/N`` -> (K, N), 1 <= K <= N (harness.shard.parse_shard); a UsageError naming the fix
    otherwise, which pytest prints as a usage error before collecting anything."""
    from harness.errors import ChaosError
    from harness.shard import parse_shard as parse

    try:
        part = parse(text, "--chaos-shard")
    except ChaosError as exc:
        raise pytest.UsageError(f"{exc.problem}; {exc.fix}") from None
    return part.index, part.total


def _test_id(item: Any) -> str:
    """A test's identity for sharding: its node id (a plain value in unit tests: its text)."""
    return item.nodeid if isinstance(item, pytest.Item) else str(item)


def shard_items(items: list[Any], shard: int, total: int) -> tuple[list[Any], list[Any]]:
    """(kept, deselected), both in collection order: the items of shard ``shard`` by
    harness.shard's rule over node ids. Independent of the collection order, so every xdist
    worker of a shard, and every CI job whatever the order of its ``--chaos-clients``, agrees."""
    from harness.shard import assign

    where = assign(items, total, _test_id)
    kept = [it for it, s in zip(items, where, strict=True) if s == shard]
    dropped = [it for it, s in zip(items, where, strict=True) if s != shard]
    return kept, dropped


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    spec = config.getoption("--chaos-shard")
    if spec:
        kept, dropped = shard_items(items, *parse_shard(spec))
        if dropped:
            config.hook.pytest_deselected(items=dropped)
            items[:] = kept
    if not any(item.get_closest_marker("kernel") for item in items):
        return
    from harness.env.netns import kernel_support

    reason = kernel_support()
    if reason:
        skip = pytest.mark.skip(reason=reason)
        for item in items:
            if item.get_closest_marker("kernel"):
                item.add_marker(skip)


def session_dir() -> Path:
    return Path(os.environ[SESSION_ENV])


def _worker_index() -> int:
    wid = os.environ.get("PYTEST_XDIST_WORKER", "")
    return int(wid[2:]) + 1 if wid.startswith("gw") else 0


@pytest.fixture(scope="session")
def chaos_env(pytestconfig: pytest.Config) -> Iterator[Any]:
    """One broker node + proxy server for the session (one per xdist worker, own ports and dirs)."""
    from harness.env.environment import Environment, default_base_port, default_state_dir

    idx = _worker_index()
    base = pytestconfig.getoption("--chaos-base-port") or default_base_port()
    state = Path(pytestconfig.getoption("--chaos-state-dir") or default_state_dir())
    nodes = pytestconfig.getoption("--chaos-nodes")
    # a worker's ports: 10 apart for one node; a cluster spans base .. base + 400 (harness.env.cluster)
    stride = 10 if nodes == 1 else 500
    env = Environment(state / f"w{idx}" if idx else state, base + stride * idx,
                      backend=pytestconfig.getoption("--chaos-backend"),
                      amqp_url=pytestconfig.getoption("--chaos-amqp-url"),
                      management_url=pytestconfig.getoption("--chaos-management-url"), nodes=nodes)
    with quiet_harness_logs():
        env.start()
    try:
        yield env
    finally:
        with quiet_harness_logs():
            env.stop()


@pytest.fixture
def chaos_run(chaos_env: Any, pytestconfig: pytest.Config) -> Callable[..., RunOutcome]:
    """Run ``client`` under ``fault`` (a fault or a timeline) and return a RunOutcome."""
    from harness.engine import RunSpec, run_cell
    from harness.errors import FaultUnavailable

    reports = session_dir()
    reports.mkdir(parents=True, exist_ok=True)

    def run(client: str, fault: str = "none", **spec: Any) -> RunOutcome:
        """``spec``: RunSpec fields, plus the scenario's deadlines as keywords (max_stall_s,
        max_busy_s, max_block_s, max_detection_s, max_recovery_s, max_failover_s) into its check_options.
        ``queue_type``: the test's own, else ``--chaos-queue-type``."""
        from harness.config import DEADLINES, check_deadlines, check_queue_types, queue_types

        spec["queue_type"] = queue_types(spec.get("queue_type") or pytestconfig.getoption("--chaos-queue-type"))[0]
        check_queue_types([spec["queue_type"]], [client])

        deadlines = check_deadlines({k: spec.pop(k) for k in DEADLINES if k in spec})
        if deadlines:
            spec["check_options"] = {**spec.get("check_options", {}), **deadlines}
        try:
            with quiet_harness_logs():
                doc = run_cell(chaos_env, RunSpec(client=client, fault=fault, **spec), reports)
        except FaultUnavailable as exc:
            pytest.skip(exc.problem)
        return RunOutcome(doc, reports)

    return run


@pytest.fixture
def toxiproxy(chaos_env: Any) -> Iterator[Any]:
    """A ``toxiproxy.Toxiproxy`` (toxiproxy-python) talking to the session's Toxiproxy server.

    That library keeps the server's host and port as class attributes of ``APIConsumer``, shared
    by the whole process: they are pointed at our server for the test and restored after it.
    Every proxy that appeared during the test (the test's own; runs delete theirs) is deleted
    after it, so one test's proxies never leak into the next."""
    from toxiproxy import Toxiproxy
    from toxiproxy.api import APIConsumer

    from harness.env.toxiproxy import url_host_port

    host, port = url_host_port(chaos_env.proxy_server.url)
    saved = APIConsumer.host, APIConsumer.port
    client = Toxiproxy()
    client.update_api_consumer(host, port)
    before = set(client.proxies())
    try:
        yield client
    finally:
        try:
            for name, proxy in client.proxies().items():
                if name not in before:
                    with contextlib.suppress(Exception):  # already gone is what we want
                        proxy.destroy()
        finally:
            APIConsumer.host, APIConsumer.port = saved


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """The controller (or a run without xdist) renders one report from every run of the session."""
    config = session.config
    if _is_worker(config) or not getattr(config, "_chaos_session_owner", False):
        return
    sdir = session_dir()
    if not any(sdir.glob("*/results.json")):
        return
    from harness import results
    from harness.report import render_dir

    out = config.getoption("--chaos-report")
    path = render_dir(sdir, Path(out) if out else None, title="rabbit-chaos pytest session")
    results.point_latest(sdir.parent, sdir)
    config._chaos_report_path = path  # type: ignore[attr-defined]


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    path = getattr(config, "_chaos_report_path", None)
    if path is not None:
        terminalreporter.write_line(f"rabbit-chaos report: {path}")
