"""Sharding a matrix across machines, without a broker: ``--shard K/N`` splits by cell identity
(any order of flags gives the same split), every shard is a disjoint part of the whole and
together they are all of it, balanced to one cell; a bad K/N is exit 2 before anything boots;
and ``report`` over the shard directories draws the same matrix table as the unsharded run."""

from __future__ import annotations

import itertools
import json
import random
import re
from pathlib import Path
from typing import Any

import pytest
from fakes import BootlessEnv, bootless_cli
from report_fakes import fake_run
from rich.console import Console
from typer.testing import CliRunner

from harness import cli, results
from harness import matrix as matrix_mod
from harness.cli import app
from harness.config import ChaosConfig
from harness.errors import ChaosError
from harness.matrix import cells, identity, planned_cells
from harness.matrix_defaults import default_clients, default_faults
from harness.report import find_runs, render_dirs, view
from harness.report import matrix as report_matrix
from harness.report.merge import shard_gaps
from harness.shard import Shard, assign, parse_shard, select

runner = CliRunner()


# ---- the rule ----------------------------------------------------------------------------------

@pytest.mark.parametrize("text", ["0/2", "3/2", "1/0", "x", "2", "a/b", "-1/2", "1/2/3", "", "1/1001"])
def test_a_bad_shard_is_a_user_error_naming_the_fix(text):
    with pytest.raises(ChaosError) as exc:
        parse_shard(text)
    assert "K/N" in exc.value.problem or "shards" in exc.value.problem
    assert exc.value.fix


def test_a_good_shard_parses():
    assert parse_shard("2/4") == Shard(2, 4) and str(parse_shard(" 1/1 ")) == "1/1"


@pytest.mark.parametrize("total", [1, 2, 3, 4, 7])
def test_the_deal_is_a_balanced_partition_independent_of_order(total):
    items = [f"item-{i}" for i in range(53)]
    where = dict(zip(items, assign(items, total, str), strict=True))
    sizes = [sum(s == k for s in where.values()) for k in range(1, total + 1)]
    assert max(sizes) - min(sizes) <= 1 and sum(sizes) == len(items)
    shuffled = items[:]
    random.Random(7).shuffle(shuffled)
    assert dict(zip(shuffled, assign(shuffled, total, str), strict=True)) == where


def test_strata_are_balanced_each():
    items = [(i, "slow" if i % 5 == 0 else "fast") for i in range(40)]  # 8 slow, 32 fast
    for k in (1, 2, 3, 4):
        mine = select(items, Shard(k, 4), key=lambda x: str(x[0]), stratum=lambda x: (0 if x[1] == "slow" else 1,))
        assert sum(x[1] == "slow" for x in mine) == 2 and len(mine) == 10


# ---- the matrix's cells --------------------------------------------------------------------------

def _cfg(clients: list[str], faults: list[str], repeat: int = 1, **kw: Any) -> ChaosConfig:
    return ChaosConfig(clients=clients, faults=faults, repeat=repeat, **kw)


CLIENTS = ["pika-best", "pika-naive", "kombu-best", "aio-pika-robust@9.4.3"]
FAULTS = ["none", "connection-cut", "broker-restart", "partition", "latency:latency_ms=300,stream=both"]


def _ids(cfg: ChaosConfig, planned: list[tuple[int, str, str, int]]) -> list[str]:
    return [identity(cfg, c, f, r) for _, c, f, r in planned]


@pytest.mark.parametrize("total", [2, 3, 4])
def test_shards_are_disjoint_and_cover_the_matrix_for_any_flag_order(total):
    """For several orderings of --clients, --faults (and --repeat 2): shard K holds the same
    cells whatever the order, the shards are disjoint, and together they are the unsharded list."""
    rng = random.Random(total)
    reference: list[set[str]] | None = None
    for n in range(6):
        clients, faults = CLIENTS[:], FAULTS[:]
        if n:
            rng.shuffle(clients)
            rng.shuffle(faults)
        cfg = _cfg(clients, faults, repeat=2)
        whole = set(_ids(cfg, planned_cells(cfg)))
        assert len(whole) == len(cells(cfg)) == 40
        parts = [set(_ids(cfg, planned_cells(cfg, Shard(k, total)))) for k in range(1, total + 1)]
        assert set().union(*parts) == whole
        assert sum(map(len, parts)) == len(whole)  # disjoint
        assert max(map(len, parts)) - min(map(len, parts)) <= 1
        if reference is None:
            reference = parts
        assert parts == reference, f"order {clients} / {faults} moved cells between shards"


def test_a_shard_keeps_each_cells_index_in_the_whole_matrix():
    """The index seeds the cell (cell_spec: seed + index), so a shard's cell gets the seed the
    unsharded run would give it."""
    cfg = _cfg(CLIENTS, FAULTS, seed=100)
    whole = {(c, f, r): i for i, c, f, r in planned_cells(cfg)}
    for k in (1, 2):
        for i, c, f, r in planned_cells(cfg, Shard(k, 2)):
            assert whole[(c, f, r)] == i
            assert matrix_mod.cell_spec(cfg, c, f, i).seed == 100 + i


def test_the_default_matrix_splits_evenly_and_so_do_its_lonely_cells():
    """The figures docs/scaling.md quotes: 110 cells, 2 shards of 55, 4 of 27-28, and the
    broker-scope cells (which run alone) 10 per shard of 4."""
    from harness.run.parallel import cell_shape

    cfg = _cfg(default_clients(), default_faults())
    assert len(cells(cfg)) == 110
    for total, sizes in ((2, [55, 55]), (4, [27, 27, 28, 28])):
        shards = [planned_cells(cfg, Shard(k, total)) for k in range(1, total + 1)]
        assert sorted(map(len, shards)) == sizes
        lonely = [sum(cell_shape(f, None)[0] == "broker" for _, _, f, _ in s) for s in shards]
        assert max(lonely) - min(lonely) <= 1


def test_queue_type_is_part_of_a_cells_identity():
    from harness.shard import cell_identity

    assert cell_identity("pika-best", "none", 0, "quorum") != cell_identity("pika-best", "none", 0, "classic")
    assert cell_identity("pika-best@1.3.2", "none", 0) != cell_identity("pika-best", "none", 0)


# ---- the command ---------------------------------------------------------------------------------

@pytest.mark.parametrize("bad", ["0/2", "3/2", "two/4", "1-2"])
def test_matrix_refuses_a_bad_shard_before_booting(tmp_path, monkeypatch, bad):
    booted: list[bool] = []
    monkeypatch.setattr(cli, "_environment", lambda cfg: booted.append(True))
    res = runner.invoke(app, ["matrix", "--shard", bad, "--clients", "pika-best", "--faults", "none",
                              "--reports-dir", str(tmp_path)])
    assert res.exit_code == 2, res.output
    assert "--shard" in res.output and "K/N" in res.output and not booted


#: what each fake cell decides, a function of the cell alone (so shards and the whole agree)
def _verdict(client: str, fault: str) -> str:
    if client.endswith("naive") and fault != "none":
        return "fail"
    return "unknown" if (client, fault) == ("kombu-best", "partition") else "pass"


@pytest.fixture
def fake_matrix(monkeypatch: pytest.MonkeyPatch) -> None:
    """The matrix command with a fake environment and a fake engine that writes a plausible
    results.json per cell, its run id a function of the cell and its start time deliberately
    out of cell order (as parallel cells and shards on several machines start)."""
    bootless_cli(monkeypatch, width=200)
    clock = itertools.count()

    def fake_run_cell(env: Any, spec: Any, out: Path, command: Any = None) -> dict[str, Any]:
        v = _verdict(spec.client, spec.fault)
        rid = re.sub(r"[^A-Za-z0-9@.-]+", "_", f"run-{spec.client}-{spec.fault}-{spec.seed}")
        doc = fake_run(spec.client, spec.fault, verdict=v, lost=5 if v == "fail" else 0,
                       recovery_s=None if v == "fail" else 1.5, seed=spec.seed or 0, run_id=rid)
        doc["started_at"] = f"2026-01-01T00:{59 - next(clock) % 60:02d}:00+00:00"  # reverse of cell order
        run = results.run_dir(out, rid)
        results.write(run, doc, out)
        return doc

    monkeypatch.setattr(matrix_mod, "run_cell", fake_run_cell)


def _matrix(tmp: Path, *flags: str) -> Any:
    return runner.invoke(app, ["matrix", "--reports-dir", str(tmp), "--jobs", "1", "--seed", "1000",
                               "--no-fail-exit", *flags])


def _table(html: str) -> str:
    """The report's matrix table, as HTML."""
    return html[html.index('<table class="matrix">'):html.index("</table>", html.index('<table class="matrix">'))]


def _rows(docs: list[dict[str, Any]]) -> list[tuple[str, list[tuple[str, ...]]]]:
    grid = report_matrix.build(view.build_all(docs))
    return [(c, [(f, grid.cell(c, f).summary, grid.cell(c, f).headlines, grid.cell(c, f).lost,
                  grid.cell(c, f).detection, grid.cell(c, f).recovery) for f in grid.faults]) for c in grid.clients]


MCLIENTS = "pika-best,pika-naive,kombu-best"
MFAULTS = "none,conn-cut,partition,restart"


def test_report_over_the_shards_draws_the_unsharded_table(tmp_path, fake_matrix):
    whole = _matrix(tmp_path / "whole", "--clients", MCLIENTS, "--faults", MFAULTS)
    assert whole.exit_code == 0, whole.output
    shard_dirs = []
    for k in (1, 2):
        res = _matrix(tmp_path / f"s{k}", "--clients", MCLIENTS, "--faults", MFAULTS, "--shard", f"{k}/2")
        assert res.exit_code == 0, res.output
        assert f"shard {k}/2: 6 of the matrix's cells" in res.output
        [mdir] = (tmp_path / f"s{k}").glob("matrix-*-shard-*")
        meta = json.loads((mdir / "matrix.json").read_text())
        assert meta["shard"] == f"{k}/2" and meta["cells"] == 6 and meta["cells_total"] == 12
        assert len(meta["runs"]) == 6
        assert all(json.loads((mdir / r / "results.json").read_text())["shard"] == f"{k}/2" for r in meta["runs"])
        shard_dirs.append(mdir)
    [wdir] = (tmp_path / "whole").glob("matrix-*")
    wmeta = json.loads((wdir / "matrix.json").read_text())
    assert wmeta["shard"] is None and wmeta["cell_set"] == meta["cell_set"]

    merged = find_runs(shard_dirs)
    single = find_runs([wdir])
    assert not merged.shard_gaps
    assert sorted(d["run_id"] for d in merged.docs) == sorted(d["run_id"] for d in single.docs)  # same seeds
    assert _rows(merged.docs) == _rows(single.docs)
    # the rendered table: `report` over the shards, `report` over the whole, the matrix's own report
    out_m, _ = render_dirs(shard_dirs, tmp_path / "merged.html")
    out_w, _ = render_dirs([wdir], tmp_path / "whole.html")
    own = (wdir / "report.html").read_text()
    assert _table(out_m.read_text()) == _table(out_w.read_text()) == _table(own)


def test_report_names_a_missing_shard_and_fail_exit_gates_on_it(tmp_path, fake_matrix):
    for k in (1, 2, 3):
        assert _matrix(tmp_path / f"s{k}", "--clients", MCLIENTS, "--faults", MFAULTS, "--shard",
                       f"{k}/3").exit_code == 0
    res = runner.invoke(app, ["report", str(tmp_path / "s1"), str(tmp_path / "s3"), "--out",
                              str(tmp_path / "r.html"), "--fail-exit"])
    assert "missing shard 2/3" in res.output
    assert res.exit_code == 1, res.output  # a naive client's cell failed: fail wins over the gap
    res = runner.invoke(app, ["report", str(tmp_path / "s1"), str(tmp_path / "s2"), str(tmp_path / "s3"),
                              "--out", str(tmp_path / "r.html")])
    assert res.exit_code == 0 and "missing shard" not in res.output


def test_report_fail_exit_codes(tmp_path, fake_matrix):
    assert _matrix(tmp_path / "a", "--clients", "pika-best", "--faults", "none,conn-cut").exit_code == 0
    ok = runner.invoke(app, ["report", str(tmp_path / "a"), "--fail-exit", "--out", str(tmp_path / "a.html")])
    assert ok.exit_code == 0, ok.output
    assert _matrix(tmp_path / "b", "--clients", "kombu-best", "--faults", "partition").exit_code == 0
    unk = runner.invoke(app, ["report", str(tmp_path / "a"), str(tmp_path / "b"), "--fail-exit",
                              "--out", str(tmp_path / "b.html")])
    assert unk.exit_code == 3, unk.output
    plain = runner.invoke(app, ["report", str(tmp_path / "b"), "--out", str(tmp_path / "c.html")])
    assert plain.exit_code == 0  # without --fail-exit `report` only renders


def test_shards_from_reordered_flags_still_merge_to_the_whole(tmp_path, fake_matrix):
    """Jobs whose command lines list clients and faults in different orders still cover the
    matrix exactly once (same cell set digest, no gap, the same cells as the unsharded run)."""
    assert _matrix(tmp_path / "whole", "--clients", MCLIENTS, "--faults", MFAULTS).exit_code == 0
    assert _matrix(tmp_path / "s1", "--clients", "kombu-best,pika-naive,pika-best", "--faults",
                   "restart,none,partition,conn-cut", "--shard", "1/2").exit_code == 0
    assert _matrix(tmp_path / "s2", "--clients", "pika-naive,pika-best,kombu-best", "--faults",
                   "partition,conn-cut,restart,none", "--shard", "2/2").exit_code == 0
    merged = find_runs([tmp_path / "s1", tmp_path / "s2"])
    whole = find_runs([tmp_path / "whole"])
    assert not merged.shard_gaps
    assert sorted((d["client"], d["fault"]) for d in merged.docs) == sorted((d["client"], d["fault"])
                                                                            for d in whole.docs)
    assert {c: sorted(r) for c, r in _rows(merged.docs)} == {c: sorted(r) for c, r in _rows(whole.docs)}


def test_the_console_table_covers_only_the_shards_cells(tmp_path, fake_matrix, monkeypatch):
    monkeypatch.setattr(cli, "console", Console(width=80, highlight=False, soft_wrap=True, color_system=None))
    res = _matrix(tmp_path, "--clients", MCLIENTS, "--faults", MFAULTS, "--shard", "1/2")
    cfg = _cfg(MCLIENTS.split(","), ["none", "connection-cut", "partition", "broker-restart"])
    mine = planned_cells(cfg, Shard(1, 2))
    assert "matrix: 6 cells:" in res.output
    for line in res.output.splitlines():  # list mode at 80 columns: one line per cell of the shard only
        if line.startswith(("pika-", "kombu-")) and ("pass" in line or "FAIL" in line or "UNKNOWN" in line):
            assert any(line.startswith(c) for _, c, _, _ in mine)


def test_shard_gaps_tells_strangers_and_disagreeing_n():
    assert shard_gaps([{"shard": "1/2", "cell_set": "a"}, {"shard": "2/2", "cell_set": "a"}]) == []
    assert shard_gaps([{"shard": "1/2", "cell_set": "a"}, {"shard": "2/2", "cell_set": "b"}]) == [
        "missing shard 2/2 of cell set a: its cells are not in this report",
        "missing shard 1/2 of cell set b: its cells are not in this report"]
    assert "disagree on N" in shard_gaps([{"shard": "1/2", "cell_set": "a"}, {"shard": "2/3", "cell_set": "a"}])[0]
    assert shard_gaps([{"shard": None}, {}]) == []


# ---- the pytest plugin -----------------------------------------------------------------------------

def test_chaos_shard_is_independent_of_collection_order():
    from harness.pytest_plugin import shard_items

    ids = [f"scenarios/test_{f}.py::test_{t}[{c}]" for f in ("a", "b") for t in ("x", "y", "z")
           for c in ("pika-best", "kombu-best", "aio-pika-best")]
    split = {k: set(shard_items(ids, k, 3)[0]) for k in (1, 2, 3)}
    assert set().union(*split.values()) == set(ids) and sum(map(len, split.values())) == len(ids)
    rev = list(reversed(ids))
    assert {k: set(shard_items(rev, k, 3)[0]) for k in (1, 2, 3)} == split


PLUGIN_TESTS = """
import pytest

@pytest.mark.parametrize("client", [{clients}])
@pytest.mark.parametrize("n", range(5))
def test_cell(client, n):
    pass
"""


def _collected(pytester: pytest.Pytester, clients: str, shard: str) -> set[str]:
    pytester.makepyfile(test_cells=PLUGIN_TESTS.format(clients=clients))
    res = pytester.runpytest("--co", "-q", "--chaos-shard", shard)
    return {line for line in res.outlines if "::" in line}


def test_the_plugin_shards_alike_whatever_the_clients_order(pytester):
    a = [_collected(pytester, '"pika-best", "kombu-best"', f"{k}/2") for k in (1, 2)]
    b = [_collected(pytester, '"kombu-best", "pika-best"', f"{k}/2") for k in (1, 2)]
    assert a == b
    assert not a[0] & a[1] and len(a[0] | a[1]) == 10 and abs(len(a[0]) - len(a[1])) <= 1
    bad = pytester.runpytest("--co", "-q", "--chaos-shard", "3/2")
    assert bad.ret == pytest.ExitCode.USAGE_ERROR
    assert "K/N" in "\n".join(bad.errlines + bad.outlines)


def test_the_parallel_matrix_runs_only_its_shards_cells(tmp_path, monkeypatch):
    """``--jobs`` > 1 takes harness.run.parallel's path: it must plan the same shard."""
    from harness.run import parallel

    ran: list[tuple[str, str, int]] = []

    def fake_call(self: Any, cell: Any, cancel: Any) -> Any:
        ran.append((cell.client, cell.fault, cell.index))
        return parallel.CellResult(cell, doc=fake_run(cell.client, cell.fault, run_id=f"r{cell.index}"))

    monkeypatch.setattr(parallel, "env_allows_concurrency", lambda env: False)
    monkeypatch.setattr(parallel.CellRunner, "__call__", fake_call)
    cfg = _cfg(["pika-best", "pika-naive"], ["none", "connection-cut", "broker-restart"], reports_dir=tmp_path)
    res = parallel.run_matrix_parallel(BootlessEnv(), cfg, None, 2, shard=Shard(2, 2))  # type: ignore[arg-type]
    want = planned_cells(cfg, Shard(2, 2))
    assert sorted(ran, key=lambda x: x[2]) == [(c, f, i) for i, c, f, _ in want]
    assert [d["run_id"] for d in res.docs] == [f"r{i}" for i, _, _, _ in want]  # docs in cell order
    meta = json.loads((res.dir / "matrix.json").read_text())
    assert meta["shard"] == "2/2" and meta["cells"] == 3 and meta["cells_total"] == 6
    assert res.dir.name.endswith("-shard-2-of-2")


def test_merged_runs_come_back_in_row_major_cell_order():
    """client, then its queue type (a matrix with several has a row per type), then fault,
    whatever order the runs started in."""
    from harness.report.merge import in_matrix_order

    meta = {"clients": ["b", "a"], "faults": ["none", "cut"], "queue_type": "classic,quorum"}

    def doc(c: str, t: str, f: str) -> dict[str, Any]:
        return {"client": c, "fault": f, "spec": {"queue_type": t}}

    want = [doc(c, t, f) for c in ("b", "a") for t in ("classic", "quorum") for f in ("none", "cut")]
    shuffled = want[:]
    random.Random(3).shuffle(shuffled)
    assert in_matrix_order(shuffled, [meta]) == want
    assert in_matrix_order(shuffled, []) == shuffled  # no matrix.json: start-time order kept
    stray = {"client": "z", "fault": "none"}
    assert in_matrix_order([stray, *shuffled], [meta])[-1] is stray


def test_a_shard_with_no_cells_still_counts_in_the_merge(tmp_path, fake_matrix):
    """More jobs than cells: the extra shard runs nothing, exits 0, and still writes
    matrix.json, so the merge sees every shard present."""
    cells_per_shard = []
    for k in (1, 2, 3):
        res = _matrix(tmp_path / f"s{k}", "--clients", "pika-best", "--faults", "none,conn-cut", "--shard", f"{k}/3")
        assert res.exit_code == 0, res.output
        [meta] = (tmp_path / f"s{k}").glob("matrix-*/matrix.json")
        cells_per_shard.append(json.loads(meta.read_text())["cells"])
    assert sorted(cells_per_shard) == [0, 1, 1]
    res = runner.invoke(app, ["report", *(str(tmp_path / f"s{k}") for k in (1, 2, 3)), "--out",
                              str(tmp_path / "r.html"), "--fail-exit"])
    assert res.exit_code == 0 and "missing shard" not in res.output, res.output
