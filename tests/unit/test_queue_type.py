"""Queue type as a workload dimension, and the failover URL rotation of the best-practice
strategies: everything here runs without a broker (fakes stand in for the libraries' connects)."""

from __future__ import annotations

import argparse
import asyncio
import json
from pathlib import Path
from typing import Any

import pytest
from fakes import bootless_cli
from rich.console import Console
from typer.testing import CliRunner

from harness import cli
from harness import matrix as matrix_mod
from harness.cli import _print_table, app
from harness.clients.protocol import ClientConfig, ClientContext
from harness.clients.strategies import _aio_pika, _aioamqp, _kombu, _pika, kombu_best, pika_best
from harness.clients.strategies._common import LossTracker, Nodes, failover_urls, queue_arguments, url_port
from harness.config import ChaosConfig, check_queue_types, load, queue_types
from harness.errors import ChaosError

runner = CliRunner()
URLS = ["amqp://guest:guest@127.0.0.1:25401/v", "amqp://guest:guest@127.0.0.1:25402/v",
        "amqp://guest:guest@127.0.0.1:25403/v"]


def _cfg(tmp_path: Path, **kw: Any) -> ClientConfig:
    base: dict[str, Any] = {"run_id": "r", "proc": "publisher-0", "role": "publisher", "amqp_url": URLS[0],
                            "queue": "q", "history": str(tmp_path / "h.jsonl")}
    return ClientConfig(**{**base, **kw})


# ---- queue_arguments: one helper for every declare ---------------------------------------------


def test_classic_declares_no_arguments_as_before_and_quorum_names_its_type(tmp_path):
    assert queue_arguments(_cfg(tmp_path)) == {}  # the default matrix's declares are unchanged
    assert queue_arguments(_cfg(tmp_path, queue_type="quorum")) == {"x-queue-type": "quorum"}
    assert queue_arguments("quorum") == {"x-queue-type": "quorum"} and queue_arguments("classic") == {}


def test_every_library_declares_the_queue_through_queue_arguments(tmp_path):
    ctx = ClientContext(_cfg(tmp_path, queue_type="quorum"))
    q = _kombu.queue(ctx)
    assert q.queue_arguments == {"x-queue-type": "quorum"} and q.durable and not q.exclusive and not q.auto_delete

    calls: list[dict[str, Any]] = []

    class Channel:
        def queue_declare(self, **kw: Any) -> None:
            calls.append(kw)

    _pika.declare(Channel(), ctx.cfg)  # type: ignore[arg-type]
    assert calls == [{"queue": "q", "durable": True, "arguments": {"x-queue-type": "quorum"}}]


def test_the_harness_declares_the_queue_with_the_same_arguments(monkeypatch):
    from harness.env import trusted

    declared: list[tuple[str, dict[str, Any]]] = []

    class Conn:
        def channel(self) -> Conn:
            return self

        def queue_declare(self, queue: str, durable: bool, arguments: dict[str, Any]) -> None:
            assert durable
            declared.append((queue, arguments))

        def close(self) -> None:
            pass

    monkeypatch.setattr(trusted, "_connect", lambda url, name: Conn())
    trusted.declare_queue("amqp://x/", "q", "n", "quorum")
    trusted.declare_queue("amqp://x/", "q", "n")
    assert declared == [("q", {"x-queue-type": "quorum"}), ("q", {})]


# ---- Nodes: which node a failing-over client connects to next ----------------------------------


def test_one_node_is_inert(tmp_path):
    nodes = Nodes(_cfg(tmp_path))
    assert not nodes.cluster and failover_urls(_cfg(tmp_path)) == [URLS[0]]
    assert [nodes.next_url() for _ in range(3)] == [URLS[0]] * 3
    assert nodes.next_urls() == [URLS[0]] and nodes.failed() == URLS[0]
    # amqp_urls of one node is still one node
    assert not Nodes(_cfg(tmp_path, amqp_urls=[URLS[0]])).cluster


def test_a_cluster_rotates_round_robin_from_the_first_node(tmp_path):
    nodes = Nodes(_cfg(tmp_path, amqp_urls=URLS))
    assert nodes.cluster
    assert [nodes.next_url() for _ in range(4)] == [URLS[0], URLS[1], URLS[2], URLS[0]]
    assert nodes.next_urls() == [URLS[1], URLS[2], URLS[0]]  # the whole list, from the next node on
    nodes.use_port(25403)  # the library picked node 3 itself: continue from there
    assert nodes.current == URLS[2] and nodes.next_url() == URLS[0]
    nodes.use_port(None)
    assert nodes.current == URLS[0]
    assert url_port(URLS[1]) == 25402 and nodes.port() == 25401


def test_loss_tracker_records_the_port_only_when_known(tmp_path):
    cfg = _cfg(tmp_path)
    ctx = ClientContext(cfg)
    tracker = LossTracker(ctx)
    tracker.opened()
    tracker.lost(ConnectionError("x"))
    tracker.opened(25402)
    events = [json.loads(line) for line in Path(cfg.history).read_text().splitlines()]
    assert [(e["kind"], e.get("port")) for e in events] == [("conn.open", None), ("conn.lost", None),
                                                           ("conn.open", 25402)]


# ---- failover in the strategies' connects (fakes for the libraries) -----------------------------


class _FakeBlocking:
    """pika.BlockingConnection stand-in: records what it was given, 'connects' to the first."""

    made: list[Any] = []

    def __init__(self, params: Any) -> None:
        _FakeBlocking.made.append(params)
        first = params[0] if isinstance(params, list) else params
        self._impl = type("Impl", (), {"params": first})()

    def add_on_connection_blocked_callback(self, cb: Any) -> None:
        pass

    def add_on_connection_unblocked_callback(self, cb: Any) -> None:
        pass


def test_pika_best_gives_pika_one_node_alone_and_a_cluster_as_a_rotated_list(tmp_path, monkeypatch):
    monkeypatch.setattr(pika_best.pika, "BlockingConnection", _FakeBlocking)
    _FakeBlocking.made = []
    one = Nodes(_cfg(tmp_path))
    pika_best._connect(ClientContext(_cfg(tmp_path)), one)
    pika_best._connect(ClientContext(_cfg(tmp_path)), one)
    assert all(not isinstance(p, list) and p.port == 25401 for p in _FakeBlocking.made)  # exactly as before

    _FakeBlocking.made = []
    cfg = _cfg(tmp_path, amqp_urls=URLS)
    nodes = Nodes(cfg)
    pika_best._connect(ClientContext(cfg), nodes)
    pika_best._connect(ClientContext(cfg), nodes)
    first, second = ([p.port for p in made] for made in _FakeBlocking.made)
    assert first == [25401, 25402, 25403] and second == [25402, 25403, 25401]
    assert all(p.stack_timeout == 12.0 for p in _FakeBlocking.made[0])  # each node's handshake is bounded


def test_kombu_uses_its_own_failover_on_a_cluster_and_clone_on_one_node(tmp_path):
    ctx = ClientContext(_cfg(tmp_path))
    single = _kombu.connection(ctx, kombu_best.PARAMS, Nodes(ctx.cfg).next_urls())
    assert single.alt == [] and single.port == 25401
    assert kombu_best._drop(ctx, single, Nodes(ctx.cfg)).port == 25401  # clone(): the same node

    cctx = ClientContext(_cfg(tmp_path, amqp_urls=URLS))
    nodes = Nodes(cctx.cfg)
    conn = _kombu.connection(cctx, kombu_best.PARAMS, nodes.next_urls())
    assert conn.port == 25401 and conn.alt == URLS and conn.failover_strategy is not None
    conn.maybe_switch_next()  # what ensure_connection does after a refused attempt
    assert conn.port == 25402
    fresh = kombu_best._drop(cctx, conn, nodes)  # lost on node 2: start over at node 3
    assert fresh.port == 25403 and fresh.alt == [URLS[2], URLS[0], URLS[1]]


def test_aioamqp_best_sessions_rotate(tmp_path):
    cfg = _cfg(tmp_path, amqp_urls=URLS)
    nodes = Nodes(cfg)
    tracker = LossTracker(ClientContext(cfg))
    ports = [_aioamqp.Session(ClientContext(cfg), tracker, url=nodes.next_url()).url for _ in range(3)]
    assert [url_port(u) for u in ports] == [25401, 25402, 25403]
    assert _aioamqp.Session(ClientContext(_cfg(tmp_path)), tracker).url == URLS[0]


class _FakeRobust:
    def __init__(self, url: str) -> None:
        from yarl import URL

        self.url = URL(url)
        self.close_callbacks: list[Any] = []
        self.reconnect_callbacks: list[Any] = []

    class _Set(list):  # type: ignore[type-arg]
        def add(self, cb: Any) -> None:
            self.append(cb)


def test_aio_pika_robust_connection_is_pointed_at_the_next_node_when_it_closes(tmp_path, monkeypatch):
    made: list[_FakeRobust] = []

    async def connect_robust(url: str, **_kw: Any) -> _FakeRobust:
        conn = _FakeRobust(url)
        conn.close_callbacks = _FakeRobust._Set()
        conn.reconnect_callbacks = _FakeRobust._Set()
        made.append(conn)
        return conn

    monkeypatch.setattr(_aio_pika.aio_pika, "connect_robust", connect_robust)
    monkeypatch.setattr(_aio_pika, "watch_blocked", lambda ctx: None)
    cfg = _cfg(tmp_path, amqp_urls=URLS)
    ctx = ClientContext(cfg)
    nodes = Nodes(cfg)
    conn: Any = asyncio.run(_aio_pika.connect(ctx, True, LossTracker(ctx), nodes=nodes))
    assert conn.url.port == 25401 and conn.url.query["name"] == "r/publisher-0"
    for cb in list(conn.close_callbacks):
        cb(conn, ConnectionError("node gone"))
    assert conn.url.port == 25402 and conn.url.query["name"] == "r/publisher-0"  # aio-pika reconnects here

    one = ClientContext(_cfg(tmp_path))
    single: Any = asyncio.run(_aio_pika.connect(one, True, LossTracker(one), nodes=Nodes(one.cfg)))
    for cb in list(single.close_callbacks):
        cb(single, ConnectionError("gone"))
    assert single.url.port == 25401  # one node: nothing rotates


# ---- configuration, validation and the matrix dimension -----------------------------------------


def test_queue_types_parse_and_refuse_unknown_names():
    assert queue_types("quorum") == ["quorum"]
    assert queue_types(" classic, Quorum ,classic") == ["classic", "quorum"]
    assert queue_types(["quorum"]) == ["quorum"] and queue_types(None) == ["classic"]
    for bad in ("mirrored", "", 3):
        with pytest.raises(ChaosError):
            queue_types(bad)  # type: ignore[arg-type]
    assert load(overrides={"queue_type": "classic,quorum"}).queue_type == ["classic", "quorum"]
    assert load().queue_type == ["classic"]


def test_toml_queue_type(tmp_path):
    f = tmp_path / "c.toml"
    f.write_text('queue_type = "quorum"\n')
    assert load(f).queue_type == ["quorum"]
    f.write_text('queue_type = ["classic", "quorum"]\n')
    assert load(f).queue_type == ["classic", "quorum"]
    f.write_text('queue_type = "lazy"\n')
    with pytest.raises(ChaosError, match="unknown queue type 'lazy'"):
        load(f)


def test_stream_is_refused_naming_the_strategies_that_support_it():
    check_queue_types(["classic", "quorum"], ["pika-best"])
    with pytest.raises(ChaosError, match=r"not supported by pika-best .*support streams: none yet") as err:
        check_queue_types(["stream"], ["pika-best"])
    assert "basic.get" in (err.value.fix or "")


def test_pytest_option_refuses_what_the_cli_refuses():
    from harness.pytest_plugin import _queue_type_option

    assert _queue_type_option("quorum") == "quorum"
    for bad in ("stream", "classic,quorum", "nope"):
        with pytest.raises(argparse.ArgumentTypeError):
            _queue_type_option(bad)


@pytest.mark.parametrize("args", [
    ["run", "--client", "pika-best", "--queue-type", "stream"],
    ["run", "--client", "pika-best", "--queue-type", "classic,quorum"],
    ["run", "--client", "pika-best", "--queue-type", "bogus"],
    ["matrix", "--clients", "pika-best", "--faults", "none", "--queue-type", "bogus"],
    ["matrix", "--clients", "pika-best", "--faults", "none", "--queue-type", "quorum,stream"],
])
def test_cli_refuses_a_bad_queue_type_before_anything_boots(tmp_path, monkeypatch, args):
    def boom(cfg: Any) -> Any:
        raise AssertionError("booted an environment")

    monkeypatch.setattr(cli, "_environment", boom)
    res = runner.invoke(app, [*args, "--state-dir", str(tmp_path / "s"), "--reports-dir", str(tmp_path)])
    assert res.exit_code == 2, res.output
    assert "queue type" in res.output


def test_matrix_rows_per_client_and_queue_type():
    one = ChaosConfig(clients=["pika-best"], faults=["none"], queue_type=["quorum"])
    assert matrix_mod.rows(one) == ["pika-best"]  # one type: the client's name, as before
    assert matrix_mod.cell_spec(one, "pika-best", "none", 0).queue_type == "quorum"

    two = ChaosConfig(clients=["pika-best", "aioamqp-best"], faults=["none", "queue-delete"],
                      queue_type=["classic", "quorum"], client_cmds={"mine": "node c.js"})
    rows = matrix_mod.rows(two)
    assert rows == ["pika-best cq", "pika-best qq", "aioamqp-best cq", "aioamqp-best qq", "mine cq", "mine qq"]
    assert len(matrix_mod.cells(two)) == 12
    assert matrix_mod.split_row(two, "mine qq") == ("mine", "quorum")
    spec = matrix_mod.cell_spec(two, "aioamqp-best qq", "queue-delete", 3)
    assert (spec.client, spec.queue_type) == ("aioamqp-best", "quorum")
    doc = {"client": "aioamqp-best", "fault": "none", "spec": {"queue_type": "quorum"}}
    assert matrix_mod.row_of(two, doc) == "aioamqp-best qq" and matrix_mod.row_of(one, doc) == "aioamqp-best"


def _doc(client: str, fault: str, queue_type: str, verdict: str) -> dict[str, Any]:
    return {"run_id": f"{client}-{fault}-{queue_type}", "client": client, "fault": fault, "verdict": verdict,
            "headline": "" if verdict == "pass" else "stranded", "reasons": [], "counts": {},
            "timing": {"detection_s": None, "recovery_s": 1.0, "detail": {}}, "spec": {"queue_type": queue_type}}


def test_the_table_has_a_row_per_queue_type_within_80_columns(monkeypatch):
    con = Console(width=80, highlight=False, soft_wrap=True, force_terminal=False, color_system=None)
    monkeypatch.setattr(cli, "console", con)
    two = ChaosConfig(clients=["pika-async-best", "aioamqp-reconnect"], faults=["none", "queue-delete"],
                      queue_type=["classic", "quorum"])
    docs = [_doc(c, f, t, "fail" if (t, f) == ("quorum", "queue-delete") else "pass")
            for c in two.clients for f in two.faults for t in two.queue_type]
    with con.capture() as cap:
        _print_table(docs, matrix_mod.rows(two), two.faults)
    out = cap.get()
    assert max(len(ln) for ln in out.splitlines()) <= 80
    assert "pika-async-best qq" in out and "pika-async-best cq" in out
    assert " qq" in out and out.count("FAIL") == 2  # each quorum row's queue-delete cell, and only those


def test_matrix_command_runs_a_row_per_queue_type(tmp_path, monkeypatch):
    bootless_cli(monkeypatch)
    seen: list[Any] = []

    def fake_run_cell(env: Any, spec: Any, out: Path, command: Any = None) -> dict[str, Any]:
        seen.append(spec)
        return _doc(spec.client, spec.fault, spec.queue_type, "pass")

    monkeypatch.setattr(matrix_mod, "run_cell", fake_run_cell)
    res = runner.invoke(app, ["matrix", "--clients", "pika-best", "--faults", "none", "--queue-type",
                              "classic,quorum", "--reports-dir", str(tmp_path), "--jobs", "1"])
    assert res.exit_code == 0, res.output
    assert [(s.client, s.queue_type) for s in seen] == [("pika-best", "classic"), ("pika-best", "quorum")]
    assert "pika-best cq" in res.output and "pika-best qq" in res.output


def test_the_idle_check_is_on_for_quorum_queues_only_unless_set(tmp_path, monkeypatch):
    from harness.clients.strategies import _common

    assert _common.idle_check_s(_cfg(tmp_path)) is None  # classic: exactly as before
    assert _common.idle_check_s(_cfg(tmp_path, queue_type="quorum")) == _common.QUORUM_IDLE_CHECK_S
    assert _common.idle_check_s(_cfg(tmp_path, queue_type="quorum", params={"idle_check_s": 0})) is None
    assert _common.idle_check_s(_cfg(tmp_path, params={"idle_check_s": 2})) == 2.0

    now = [100.0]
    monkeypatch.setattr(_common.time, "monotonic", lambda: now[0])
    off = _common.IdleCheck(None)
    now[0] += 1e6
    assert not off.due()
    idle = _common.IdleCheck(5.0)
    now[0] += 4.9
    assert not idle.due()
    idle.touch()  # a delivery
    now[0] += 5.0
    assert idle.due()
    assert idle.verdict(0) is None and not idle.due()  # an idle consumer of an empty queue: fine
    now[0] += 5.0
    assert idle.verdict(None) is None  # the queue is gone: a cancel will say so, not us
    why = idle.verdict(714)
    assert why is not None and "714 ready" in why and "not serving" in why
