"""The command line: ``rabbit-chaos run | matrix | clients | faults``.

One engine behind two doors (this CLI and the pytest plugin). User mistakes raise
:class:`ChaosError` and are printed as one clear message with exit code 2; a verdict other
than pass exits 1 so CI can gate on it.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from harness.errors import ChaosError

app = typer.Typer(add_completion=False, no_args_is_help=True,
                  help="Chaos tests for RabbitMQ clients: real broker, real faults, every message checked.")
console = Console(highlight=False)
err = Console(stderr=True, highlight=False)

StateDir = Annotated[Path | None, typer.Option(help="where the broker node keeps its data, logs and pid files "
                                                    "[default: .rabbit-chaos/state or $RABBIT_CHAOS_STATE]")]
BasePort = Annotated[int | None, typer.Option(help="first of the local ports we use (AMQP, dist, management, "
                                                   "epmd, proxy API) [default: 35672 or $RABBIT_CHAOS_BASE_PORT]")]
Reports = Annotated[Path, typer.Option(help="results store")]
Count = Annotated[int, typer.Option(min=1, help="messages the publisher publishes")]
Rate = Annotated[float, typer.Option(min=0, help="publish rate, msg/s (0 = as fast as the client can)")]
Warmup = Annotated[float, typer.Option(min=0, help="seconds of traffic before the fault")]
FaultFor = Annotated[float, typer.Option(min=0, help="seconds the fault is held before heal")]
Seed = Annotated[int | None, typer.Option(help="seed for anything random; recorded in results.json")]


def _fail(exc: ChaosError) -> None:
    err.print(f"[bold red]error:[/] {exc.problem}")
    if exc.fix:
        err.print(f"  [bold]fix:[/] {exc.fix}")
    raise typer.Exit(2)


def _verdict_line(doc: dict[str, Any]) -> str:
    c, t = doc["counts"], doc["timing"]
    color = {"pass": "green", "fail": "red"}.get(doc["verdict"], "yellow")

    def s(x: float | None) -> str:
        return "-" if x is None else f"{x:.2f}s"

    return (f"[bold {color}]{doc['verdict'].upper():7}[/] {doc['client']} × {doc['fault']}: "
            f"published={c.get('published')} confirmed={c.get('confirmed')} delivered={c.get('delivered')} "
            f"lost={c.get('lost')} duplicated={c.get('duplicated')} unexpected={c.get('unexpected')} "
            f"recovered={c.get('recovered')} stranded={c.get('stranded', 0)} "
            f"detection={s(t.get('detection_s'))} recovery={s(t.get('recovery_s'))} wall={s(t.get('wall_s'))}")


def _print_doc(doc: dict[str, Any]) -> None:
    console.print(_verdict_line(doc))
    for r in doc["reasons"]:
        console.print(f"         - {r}", markup=False)
    console.print(f"         results: reports/{doc['run_id']}/results.json", markup=False)


@app.command()
def run(
    client: Annotated[str, typer.Option(help="reference strategy (see `rabbit-chaos clients`)")],
    fault: Annotated[str, typer.Option(help="fault, optionally with parameters: name:key=value,...")] = "none",
    count: Count = 1000,
    rate: Rate = 100.0,
    warmup: Warmup = 2.0,
    fault_for: FaultFor = 4.0,
    seed: Seed = None,
    reports_dir: Reports = Path("reports"),
    state_dir: StateDir = None,
    base_port: BasePort = None,
) -> None:
    """Run one client strategy under one fault and print the verdict."""
    docs = _run_cells([client], [fault], count, rate, warmup, fault_for, seed, reports_dir, state_dir, base_port)
    raise typer.Exit(0 if all(d["verdict"] == "pass" for d in docs) else 1)


@app.command()
def matrix(
    clients: Annotated[str, typer.Option(help="comma-separated strategies")] = "pika-naive,pika-recover",
    faults: Annotated[str, typer.Option(help="comma-separated faults")] = "none,broker-restart,connection-cut",
    count: Count = 1000,
    rate: Rate = 100.0,
    warmup: Warmup = 2.0,
    fault_for: FaultFor = 4.0,
    seed: Seed = None,
    reports_dir: Reports = Path("reports"),
    state_dir: StateDir = None,
    base_port: BasePort = None,
) -> None:
    """Run every client × fault cell on one broker and print the comparison table."""
    client_list = [c.strip() for c in clients.split(",") if c.strip()]
    fault_list = [f.strip() for f in faults.split(",") if f.strip()]
    docs = _run_cells(client_list, fault_list, count, rate, warmup, fault_for, seed, reports_dir, state_dir, base_port)
    table = Table(title="rabbit-chaos matrix")
    table.add_column("client")
    for f in fault_list:
        table.add_column(f)
    by = {(d["client"], d["fault"]): d for d in docs}
    for c in client_list:
        row = []
        for f in fault_list:
            d = by.get((c, f))
            if d is None:
                row.append("-")
                continue
            color = {"pass": "green", "fail": "red"}.get(d["verdict"], "yellow")
            row.append(f"[{color}]{d['verdict']}[/] lost={d['counts'].get('lost')} dup={d['counts'].get('duplicated')}")
        table.add_row(c, *row)
    console.print(table)
    raise typer.Exit(0)


def _run_cells(clients: list[str], faults: list[str], count: int, rate: float, warmup: float, fault_for: float,
               seed: int | None, reports_dir: Path, state_dir: Path | None, base_port: int | None) -> list[dict]:
    from harness.clients.registry import get as get_client
    from harness.engine import RunSpec, run_cell
    from harness.env.environment import Environment
    from harness.faults.registry import parse as parse_fault

    try:
        for c in clients:  # validate everything before booting anything
            get_client(c)
        for f in faults:
            parse_fault(f)
        reports_dir.mkdir(parents=True, exist_ok=True)
        docs = []
        with console.status("starting broker and fault proxy…"), Environment(state_dir, base_port) as env:
            pass_env = env
            console.print(f"broker {env.versions()} (boot {env.broker.boot_s:.1f}s)", markup=False)
            for c in clients:
                for f in faults:
                    console.print(f"[dim]running {c} × {f}…[/]")
                    spec = RunSpec(client=c, fault=f, seed=seed, count=count, rate=rate,
                                   warmup_s=warmup, fault_s=fault_for)
                    doc = run_cell(pass_env, spec, reports_dir)
                    _print_doc(doc)
                    docs.append(doc)
        return docs
    except ChaosError as exc:
        _fail(exc)
        raise  # unreachable: _fail exits


@app.command("clients")
def clients_cmd(as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """List the reference client strategies."""
    from harness.clients.registry import strategies

    rows = [{"name": s.name, "library": s.library, "version": s.version, "description": s.description,
             "params": s.params} for s in strategies().values()]
    if as_json:
        console.print_json(json.dumps(rows))
        return
    table = Table(title="client strategies")
    for col in ("name", "library", "description", "params"):
        table.add_column(col)
    for r in rows:
        table.add_row(r["name"], f"{r['library']} {r['version']}", r["description"],
                      ", ".join(f"{k}={v}" for k, v in r["params"].items()))
    console.print(table)


@app.command("faults")
def faults_cmd(as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """List the faults with their parameters."""
    from harness.faults.registry import faults

    rows = [{"name": n, "family": cls.family, "description": cls.description,
             "params": {p: {"type": t, "default": d} for p, t, d in cls.param_specs()},
             "needs": sorted(cls.needs)} for n, cls in faults().items()]
    if as_json:
        console.print_json(json.dumps(rows, default=str))
        return
    table = Table(title="faults")
    for col in ("name", "family", "description", "parameters", "needs"):
        table.add_column(col)
    for r in rows:
        table.add_row(r["name"], r["family"], r["description"],
                      ", ".join(f"{k}: {v['type']} = {v['default']}" for k, v in r["params"].items()),
                      ", ".join(r["needs"]))
    console.print(table)


def main() -> None:  # pragma: no cover
    try:
        app()
    except ChaosError as exc:
        err.print(f"error: {exc}")
        sys.exit(2)
