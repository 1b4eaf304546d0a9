"""The command line: ``rabbit-chaos run | matrix | report | clients | faults | bench``.

One engine behind two doors (this CLI and the pytest plugin). User mistakes raise
:class:`ChaosError` and are printed as one message naming the problem and the fix, exit code 2;
``run`` exits 1 when the verdict is not pass, so CI can gate on it.
"""

from __future__ import annotations

import json
import signal
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from harness.errors import ChaosError, signal_name

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="Chaos tests for RabbitMQ clients: real broker, real faults, every message checked.")
bench_app = typer.Typer(no_args_is_help=True, help="Benchmarks (not part of CI): proxy, checker.")
app.add_typer(bench_app, name="bench")
console = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False, soft_wrap=True)

# options shared by run and matrix; None means "not given": the config file or default applies
ConfigFile = Annotated[Path | None, typer.Option("--config", help="TOML file [default: [tool.rabbit-chaos] "
                                                                   "in ./pyproject.toml]")]
StateDir = Annotated[Path | None, typer.Option(help="broker data, logs and pid records [default: .rabbit-chaos/state]")]
BasePort = Annotated[int | None, typer.Option(help="first of our local ports (AMQP, dist, management, epmd, proxy "
                                                   "API, then the runs' proxies) "
                                                   "[default: 21672 or $RABBIT_CHAOS_BASE_PORT]")]
Reports = Annotated[Path | None, typer.Option(help="results store [default: reports]")]
Count = Annotated[int | None, typer.Option(help="messages the publisher publishes [default: 1000]")]
Rate = Annotated[float | None, typer.Option(help="publish rate, msg/s, 0 = unthrottled [default: 100]")]
Warmup = Annotated[float | None, typer.Option(help="seconds of traffic before the fault [default: 2]")]
FaultFor = Annotated[float | None, typer.Option(help="seconds a bare fault is held before heal (0 < s <= 3600) "
                                                    "[default: the fault's own: 4 s, alarms 20 s, a silent fault "
                                                    "the clients' heartbeat detection window + margin]")]
MaxStall = Annotated[float | None, typer.Option("--max-stall", help="expectation: ready messages, consumer up, "
                                                "nothing delivered for at most this many s [default: 10]")]
MaxBusy = Annotated[float | None, typer.Option("--max-busy", help="expectation: the consumer holds one delivery "
                                               "unacked for at most this many s [default: no limit]")]
MaxBlock = Annotated[float | None, typer.Option("--max-block", help="expectation: a publish waits silently for at "
                                                "most this many s [default: 10]")]
MaxDetection = Annotated[float | None, typer.Option("--max-detection", help="expectation: the client notices the "
                                                    "fault within this many s [default: no limit]")]
MaxRecovery = Annotated[float | None, typer.Option("--max-recovery", help="expectation: publishing and consuming "
                                                   "resume within this many s of the heal [default: 30]")]
MaxFailover = Annotated[float | None, typer.Option("--max-failover", help="expectation (cluster): a client that "
                                                  "lost its node resumes on another within this many s while "
                                                  "the fault lasts [default: 10]")]
Work = Annotated[float | None, typer.Option(help="consumer processing time per message, s [default: 0.015]")]
Seed = Annotated[int | None, typer.Option(help="seed for anything random; recorded in results.json")]
Param = Annotated[list[str] | None, typer.Option("--param", help="client knob KEY=VALUE (repeatable)")]
Backend = Annotated[str | None, typer.Option(help="local | external | compose [default: local]")]
AmqpUrl = Annotated[str | None, typer.Option(help="external backend: amqp://user@host:port/ (password: "
                                                  "RABBIT_CHAOS_PASSWORD) [default: $RABBIT_CHAOS_AMQP_URL]")]
MgmtUrl = Annotated[str | None, typer.Option(help="external backend: management API URL [default: http://HOST:15672]")]
Nodes = Annotated[int | None, typer.Option("--nodes", min=1, max=7, help="broker nodes: 1, or a local cluster of "
                                          "our own nodes (3 is the production size; cluster faults need it; "
                                          "docs/cluster.md) [default: 1]")]
QueueTypeOpt = Annotated[str | None, typer.Option("--queue-type", help="the run queue's type: classic | quorum "
                                                  "(x-queue-type; recorded in results.json) [default: classic]")]
QueueTypesOpt = Annotated[str | None, typer.Option("--queue-type", help="queue type(s), comma-separated: classic, "
                                                   "quorum; several give a row per client and type (\"pika-best "
                                                   "qq\") [default: classic]")]


def _fail(exc: ChaosError) -> None:
    """One message, exit 2. User text (names, paths, "[tool.rabbit-chaos]") is escaped: it is
    never rich markup."""
    err.print(f"[bold red]error:[/] {escape(exc.problem)}")
    if exc.fix:
        err.print(f"  [bold]fix:[/] {escape(exc.fix)}")
    raise typer.Exit(2)


def _sigterm(signum: int, frame: Any) -> None:
    """SIGTERM takes Ctrl-C's path (faults healed, processes stopped, results kept), once: a second
    SIGTERM during that cleanup is ignored (SIGKILL still works; the next run reaps)."""
    from harness.errors import Interrupted

    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    raise Interrupted("SIGTERM")


def _install_sigterm() -> None:
    import contextlib

    with contextlib.suppress(ValueError):  # not in the main thread (tests calling the app)
        signal.signal(signal.SIGTERM, _sigterm)


def _interrupted(exc: BaseException, where: Path | None) -> None:
    """One line for an interrupted run or matrix, then exit 128 + the signal (130 / 143)."""
    name = signal_name(exc)
    if where is not None:
        console.print(f"interrupted by {name}: results so far in {where}", markup=False)
    else:
        console.print(f"interrupted by {name} before any run started: nothing recorded", markup=False)
    raise typer.Exit(143 if name == "SIGTERM" else 130)


def _new_run_dir(reports_dir: Path, before: set[Path]) -> Path | None:
    """The run directory a run created (for the interrupted message), if it got that far."""
    try:
        new = [d for d in reports_dir.iterdir() if d.is_dir() and not d.is_symlink() and d not in before]
    except OSError:
        return None
    return max(new, key=lambda d: d.stat().st_mtime) if new else None


def _preflight(cfg: Any, faults: list[str]) -> None:
    """Checks that need no broker: the reports dir is writable, and the faults exist on the
    Toxiproxy server this session will use."""
    from harness.engine import validate_fault
    from harness.env.preflight import check_proxy_support, probe_writable
    from harness.env.toxiproxy import planned_server

    probe_writable(cfg.reports_dir, "reports dir", "--reports-dir")
    windows = [w.fault for f in faults for w in validate_fault(f, cfg.fault_for).windows]
    check_proxy_support(windows, planned_server(cfg.backend))  # also: a TOXIPROXY_URL that does not answer
    for fault in windows:  # known before any boot: a cluster fault on one node
        if "cluster" in fault.needs and cfg.nodes < 2:
            raise ChaosError(f"{fault.name} needs a cluster (it acts on one node of several)",
                             "add --nodes 3 (a local three-node cluster; docs/cluster.md)")


def _params(items: list[str] | None) -> dict[str, Any] | None:
    if not items:
        return None
    out: dict[str, Any] = {}
    for item in items:
        key, eq, raw = item.partition("=")
        if not eq or not key:
            raise ChaosError(f"--param {item!r} is not KEY=VALUE", "e.g. --param prefetch=10")
        try:
            out[key] = json.loads(raw)
        except ValueError:
            out[key] = raw
    return out


def _config(config_file: Path | None, **flags: Any) -> Any:
    from harness import config

    return config.load(config_file, flags)


def _s(x: float | None) -> str:
    return "-" if x is None else f"{x:.2f}s"


def verdict_line(doc: dict[str, Any]) -> str:
    c, t = doc["counts"], doc["timing"]
    return (f"{doc['verdict'].upper():7} {doc['client']} × {doc['fault']}: "
            f"published={c.get('published')} confirmed={c.get('confirmed')} delivered={c.get('delivered')} "
            f"lost={c.get('lost')} duplicated={c.get('duplicated')} unexpected={c.get('unexpected')} "
            f"recovered={c.get('recovered')} stranded={c.get('stranded', 0)} "
            f"detection={_s(t.get('detection_s'))} recovery={_s(t.get('recovery_s'))}{_failover(doc)} "
            f"wall={_s(t.get('wall_s'))}")


def _failover(doc: dict[str, Any]) -> str:
    """" failover=0.85s" (the slowest client's failover on a cluster, metrics ``failover_s``), else ""."""
    per = (doc.get("metrics") or {}).get("failover_s")
    if not isinstance(per, dict) or not per:
        return ""
    return f" failover={_s(max(float(v) for v in per.values()))}"


def _color(verdict: str) -> str:
    return {"pass": "green", "fail": "red"}.get(verdict, "yellow")


def _print_doc(doc: dict[str, Any], reports_dir: Path) -> None:
    console.print(f"[bold {_color(doc['verdict'])}]{verdict_line(doc)[:7]}[/]", end="")
    console.print(verdict_line(doc)[7:], markup=False)
    for r in doc["reasons"]:
        console.print(f"        - {r}", markup=False)
    console.print(f"        evidence: {reports_dir / doc['run_id']}", markup=False)


def _environment(cfg: Any) -> Any:
    from harness.env.environment import Environment

    return Environment(cfg.state_dir, cfg.base_port, backend=cfg.backend, amqp_url=cfg.amqp_url,
                       management_url=cfg.management_url, nodes=cfg.nodes)


def _pinned_envs(names: list[str]) -> None:
    """Build (or check) the cached environment of every NAME@VERSION client now, saying so: the
    first use of a version installs it (harness/clients/versions.py)."""
    if any("@" in n for n in names):
        from harness.clients import versions

        versions.prepare(names, say=lambda msg: console.print(msg, markup=False))


@app.command()
def run(
    client: Annotated[str | None, typer.Option(help="reference strategy (see `rabbit-chaos clients`; NAME@VERSION "
                                                    "runs it against that version of its library), or your "
                                                    "Python client as package.module:attr")] = None,
    client_cmd: Annotated[str | None, typer.Option(
        help="your own client in any language: the command that starts it (docs/client-protocol.md); "
             "--client labels it")] = None,
    fault: Annotated[str, typer.Option(help="fault, optionally with parameters: name:key=value,...")] = "none",
    count: Count = None, rate: Rate = None, warmup: Warmup = None, fault_for: FaultFor = None, work: Work = None,
    seed: Seed = None, param: Param = None, reports_dir: Reports = None, state_dir: StateDir = None,
    base_port: BasePort = None, backend: Backend = None, amqp_url: AmqpUrl = None, management_url: MgmtUrl = None,
    config_file: ConfigFile = None, max_stall: MaxStall = None, max_busy: MaxBusy = None, max_block: MaxBlock = None,
    max_detection: MaxDetection = None, max_recovery: MaxRecovery = None, queue_type: QueueTypeOpt = None,
    nodes: Nodes = None, max_failover: MaxFailover = None,
) -> None:
    """Run one client strategy under one fault and print the verdict (exit 0 only on pass)."""
    from harness.clients.registry import command_for
    from harness.clients.registry import get as get_client
    from harness.config import check_queue_types
    from harness.engine import RunSpec, run_cell, validate_fault

    try:
        cfg = _config(config_file, count=count, rate=rate, warmup=warmup, fault_for=fault_for, work=work, seed=seed,
                      reports_dir=reports_dir, state_dir=state_dir, base_port=base_port, params=_params(param),
                      backend=backend, amqp_url=amqp_url, management_url=management_url,
                      max_stall_s=max_stall, max_busy_s=max_busy, max_block_s=max_block,
                      max_detection_s=max_detection, max_recovery_s=max_recovery, queue_type=queue_type,
                      nodes=nodes, max_failover_s=max_failover)
        if len(cfg.queue_type) != 1:
            raise ChaosError(f"run takes one queue type, not {','.join(cfg.queue_type)}",
                             "pass --queue-type classic or quorum (a matrix compares several)")
        if client is None and client_cmd is None:
            raise ChaosError("no client given", "pass --client NAME (see `rabbit-chaos clients`) or --client-cmd CMD")
        command = command_for(client_cmd) if client_cmd else None
        label = client or "custom"
        if command is None:
            get_client(label)
            _pinned_envs([label])  # NAME@VERSION: its library's environment, built before anything boots
        check_queue_types(cfg.queue_type, [label])
        validate_fault(fault, cfg.fault_for)
        _preflight(cfg, [fault])
        _install_sigterm()
        before = set(cfg.reports_dir.iterdir())
        with console.status("starting broker and fault proxy…"), _environment(cfg) as env:
            console.print(f"environment: {env.versions()} (broker boot {env.broker.boot_s:.1f}s)", markup=False)
            spec = RunSpec(client=label, fault=fault, seed=cfg.seed, count=cfg.count, rate=cfg.rate,
                           warmup_s=cfg.warmup, fault_s=cfg.fault_for, work_s=cfg.work, params=cfg.params,
                           check_options=cfg.check_options(), queue_type=cfg.queue_type[0])
            doc = run_cell(env, spec, cfg.reports_dir, command=command)
    except ChaosError as exc:
        _fail(exc)
        return
    except KeyboardInterrupt as exc:
        _interrupted(exc, _new_run_dir(cfg.reports_dir, before))
        return
    _print_doc(doc, cfg.reports_dir)
    raise typer.Exit(0 if doc["verdict"] == "pass" else 1)


@app.command()
def matrix(
    clients: Annotated[str | None, typer.Option(help="comma-separated strategies [default: one best-practice "
                                                     "and one baseline strategy per library, and chat-app "
                                                     "(docs/matrix.md)]")] = None,
    faults: Annotated[str | None, typer.Option(help="comma-separated faults, or curated column labels "
                                                    "(cons-timeout, latency-12s, ...) [default: the curated, "
                                                    "calibrated columns of docs/matrix.md]")] = None,
    repeat: Annotated[int | None, typer.Option(help="runs per cell [default: 1]")] = None,
    client_cmd: Annotated[list[str] | None, typer.Option(help="your own client: LABEL=COMMAND (repeatable); "
                                                               "adds a row LABEL to the matrix")] = None,
    fail_exit: Annotated[bool, typer.Option("--fail-exit/--no-fail-exit",
                                            help="exit 1 when any cell fails, else 3 when any is unknown; "
                                                 "--no-fail-exit: exit 0 once every cell ran")] = True,
    jobs: Annotated[int | None, typer.Option(min=1, max=16, help="cells run at once on the shared broker "
                                                                  "(faults of the node itself still run alone); "
                                                                  "1 = one after another [default: min(4, 2 × cores)]")
                    ] = None,
    shard: Annotated[str | None, typer.Option(metavar="K/N", help="run only shard K of N (one of N CI jobs): cells "
                                                                  "split by identity, not position, so flag order "
                                                                  "does not matter; merge with `rabbit-chaos report "
                                                                  "DIR...` (docs/scaling.md)")] = None,
    count: Count = None, rate: Rate = None, warmup: Warmup = None, fault_for: FaultFor = None, work: Work = None,
    seed: Seed = None, param: Param = None, reports_dir: Reports = None, state_dir: StateDir = None,
    base_port: BasePort = None, backend: Backend = None, amqp_url: AmqpUrl = None, management_url: MgmtUrl = None,
    config_file: ConfigFile = None, max_stall: MaxStall = None, max_busy: MaxBusy = None, max_block: MaxBlock = None,
    max_detection: MaxDetection = None, max_recovery: MaxRecovery = None, queue_type: QueueTypesOpt = None,
    nodes: Nodes = None, max_failover: MaxFailover = None,
) -> None:
    """Run every client × fault cell on one broker, print the table, write report.html. With no
    --clients/--faults: the default matrix (docs/matrix.md). Exit 1 when a cell failed, else 3
    when one is unknown, else 0 (--no-fail-exit: 0 once every cell ran)."""
    from harness.clients.registry import command_for
    from harness.clients.registry import get as get_client
    from harness.config import check_queue_types
    from harness.engine import validate_fault
    from harness.matrix import planned_cells, run_matrix, split_faults
    from harness.matrix import rows as matrix_rows
    from harness.matrix_defaults import resolve
    from harness.shard import parse_shard

    try:
        part = parse_shard(shard) if shard is not None else None
        cfg = _config(config_file, clients=clients,
                      faults=[resolve(f) for f in split_faults(faults)] if faults else None,
                      repeat=repeat, count=count, rate=rate,
                      work=work, warmup=warmup, fault_for=fault_for, seed=seed, reports_dir=reports_dir,
                      state_dir=state_dir,
                      base_port=base_port, params=_params(param), backend=backend, amqp_url=amqp_url,
                      management_url=management_url, max_stall_s=max_stall, max_busy_s=max_busy,
                      max_block_s=max_block, max_detection_s=max_detection, max_recovery_s=max_recovery,
                      queue_type=queue_type, nodes=nodes, max_failover_s=max_failover)
        for item in client_cmd or []:
            label, eq, cmdline = item.partition("=")
            if not eq or not label or not cmdline:
                raise ChaosError(f"--client-cmd {item!r} is not LABEL=COMMAND",
                                 'e.g. --client-cmd "mine=node client.js"')
            cfg.client_cmds[label] = cmdline
        for c in cfg.clients:  # validate everything before booting anything
            if c not in cfg.client_cmds:
                get_client(c)
        _pinned_envs([c for c in cfg.clients if c not in cfg.client_cmds])
        for cmdline in cfg.client_cmds.values():
            command_for(cmdline)
        check_queue_types(cfg.queue_type, [*cfg.clients, *cfg.client_cmds])
        for f in cfg.faults:
            validate_fault(f, cfg.fault_for)
        _preflight(cfg, cfg.faults)
        mine = planned_cells(cfg, part)
        total = len(mine)
        if part is not None:
            console.print(f"shard {part}: {total} of the matrix's cells", markup=False)
        _install_sigterm()
        with console.status("starting broker and fault proxy…"):
            env = _environment(cfg).start()
    except ChaosError as exc:
        _fail(exc)
        return
    except KeyboardInterrupt as exc:
        _interrupted(exc, None)
        return
    tally: dict[str, int] = {"pass": 0, "fail": 0, "unknown": 0}
    try:
        console.print(f"environment: {env.versions()} (broker boot {env.broker.boot_s:.1f}s)", markup=False)
        with Progress(TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
                      TimeElapsedColumn(), console=console) as bar:
            task = bar.add_task("matrix", total=total)

            def progress(event: str, info: dict[str, Any]) -> None:
                cell = f"{info['client']} × {info['fault']}" + (f" #{info['repeat'] + 1}" if cfg.repeat > 1 else "")
                if event == "cell-start":
                    bar.update(task, description=f"{escape(cell)}  [dim]pass {tally['pass']} · "
                                                 f"fail {tally['fail']} · unknown {tally['unknown']}[/]")
                elif event == "cell-done":
                    tally[info["doc"]["verdict"]] = tally.get(info["doc"]["verdict"], 0) + 1
                    bar.advance(task)
                    _print_doc(info["doc"], info["dir"])
                else:
                    bar.advance(task)
                    console.print(f"[yellow]unavailable[/] {escape(cell)}: {escape(info['reason'])}")

            from harness.run.parallel import default_jobs

            res = run_matrix(env, cfg, progress=progress, jobs=jobs or default_jobs(), shard=part)
    finally:
        env.stop()
    rows = matrix_rows(cfg)
    _print_table(res.docs, [c for c in rows if any(m[1] == c for m in mine)],
                 [f for f in cfg.faults if any(m[2] == f for m in mine)], res.unavailable,
                 only={(m[1], m[2]) for m in mine} if part is not None else None)
    if res.report is not None:
        console.print(f"report: {res.report}", markup=False)
    if res.timing:
        t = res.timing
        console.print(f"time: {t['wall_s']:.0f} s wall, {t['jobs']} job(s); fault timelines "
                      f"{t['timeline_sum_s']:.0f} s (wall ÷ timelines {t['ratio']})", markup=False)
    code = res.outcome_code(fail_exit)
    console.print(summary_line(res.tally(), code), markup=False)
    if res.interrupted:  # last, so a CI log's final line says the matrix did not finish
        console.print(f"interrupted by {res.signal}: results so far in {res.dir}", markup=False)
    raise typer.Exit(code)


#: list-mode column widths: client and fault labels are abbreviated (distinctly) to these
CLIENT_W, FAULT_W, HEADLINE_W, TIME_W = 18, 14, 14, 6


def _secs(x: Any) -> str:
    """Seconds for a table cell: 0.4s, 12s, 130s (at most TIME_W characters)."""
    if not isinstance(x, int | float) or isinstance(x, bool):
        return "-"
    return f"{x:.1f}s" if x < 10 else f"{x:.0f}s"


def cell_summary(doc: dict[str, Any]) -> tuple[str, str, str, str]:
    """(verdict, headline, detection, recovery) of one cell as the console table shows them.

    The headline is results.json ``headline`` (the first proven finding's word: lost, stranded,
    blocked, gave up, not exercised, ...), "-" on pass, the verdict's own word when an unknown
    rests only on integrity reasons. Recovery is "never" when ``recovery_s`` is null while work
    was left (``timing.detail.recovery_never``), "-" when there was nothing to recover."""
    verdict = str(doc.get("verdict", "unknown"))
    headline = str(doc.get("headline") or ("-" if verdict == "pass" else "interrupted" if doc.get("interrupted")
                                           else verdict))
    timing = doc.get("timing") or {}
    rec = timing.get("recovery_s")
    never = (timing.get("detail") or {}).get("recovery_never")
    recovery = _secs(rec) if rec is not None else "never" if never else "-"
    return verdict, headline, _secs(timing.get("detection_s")), recovery


def abbreviate(names: list[str], width: int) -> dict[str, str]:
    """Each name cut to ``width`` characters, distinct from every other's cut, so no two rows of a
    CI log read the same: a long name keeps its head and its tail ("aioamqp-r~onnect"); names
    whose cuts still collide keep a short head and the part where they differ
    ("lat~200,stream" / "lat~300,stream"); a number only as the last resort."""
    uniq = list(dict.fromkeys(names))
    tail = max(3, (width - 1) // 3)
    out = {n: n if len(n) <= width else n[: width - 1 - tail] + "~" + n[-tail:] for n in uniq}
    first = dict(out)
    for n in uniq:
        clash = [m for m in uniq if m != n and first[m] == first[n]]
        if not clash or len(n) <= width:
            continue
        common = max(next((i for i, (a, b) in enumerate(zip(n, m, strict=False)) if a != b), min(len(n), len(m)))
                     for m in clash)
        head = min(3, common)
        out[n] = (n[:head] + "~" + n[common:])[:width]
    counts: dict[str, int] = {}
    for n in uniq:
        if sum(v == out[n] for v in out.values()) > 1 and len(n) > width:
            counts[out[n]] = counts.get(out[n], 0) + 1
            out[n] = out[n][: width - 3] + f"~{counts[out[n]]:02d}"
    return out


def _row(doc: dict[str, Any], rows: list[str]) -> str:
    """The table row a run belongs to: "<client> <queue-type tag>" when the matrix has a row per
    queue type (harness.matrix.rows), else its client."""
    from harness.matrix import QUEUE_TYPE_TAGS

    client = str(doc["client"])
    spec = doc.get("spec")
    queue_type = spec.get("queue_type", "classic") if isinstance(spec, dict) else "classic"
    tagged = f"{client} {QUEUE_TYPE_TAGS.get(str(queue_type), '?')}"
    return tagged if tagged in rows else client


def _print_table(docs: list[dict[str, Any]], clients: list[str], faults: list[str],
                 unavailable: list[dict[str, str]] | None = None, width: int | None = None,
                 only: set[tuple[str, str]] | None = None) -> None:
    """The matrix as a grid (client rows × fault columns, each cell its verdict, headline,
    detection and recovery) when it fits ``width`` (the console's: 80 in a CI log), else one line
    per cell. Either way every cell says why, and labels are abbreviated distinctly. ``only``
    (a shard's cells): the grid marks the others "other shard", the list leaves them out."""
    from harness.matrix_defaults import label_for

    width = width or console.width
    labels = {f: label_for(f) for f in faults}
    cells: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for d in docs:
        cells.setdefault((_row(d, clients), str(d["fault"])), []).append(d)
    missing = {(u["client"], u["fault"]): u["reason"] for u in unavailable or []}
    cshort = abbreviate(clients, CLIENT_W)
    fshort = abbreviate([labels[f] for f in faults], FAULT_W)
    # grid: a client column plus one per fault, each cell "FAIL blocked" over "d 0.4s r never"
    col_w = max(13, *(len(fshort[labels[f]]) for f in faults)) if faults else 13
    grid_w = max((len(cshort[c]) for c in clients), default=6) + 1 + len(faults) * (col_w + 3) + 1
    if grid_w <= width:
        table = Table(title="rabbit-chaos matrix", show_lines=True)
        table.add_column("client")
        for f in faults:
            table.add_column(escape(fshort[labels[f]]), min_width=col_w)
        for c in clients:
            row = []
            for f in faults:
                if only is not None and (c, f) not in only:
                    row.append("[dim]other shard[/]")
                    continue
                if (c, f) in missing:
                    row.append("[yellow]n/a[/] unavailable")
                    continue
                parts = []
                for d in cells.get((c, f), []):
                    v, head, det, rec = cell_summary(d)
                    word = "pass" if v == "pass" else v.upper()
                    parts.append(f"[{_color(v)}]{word}[/] {escape(head) if v != 'pass' else ''}".rstrip()
                                 + f"\nd {det} r {rec}")
                row.append("\n".join(parts) or "-")
            table.add_row(escape(cshort[c]), *row)
        console.print(table)
        return
    head = (f"{'client':{CLIENT_W}} {'fault':{FAULT_W}} {'verdict':7} {'headline':{HEADLINE_W}} "
            f"{'detect':>{TIME_W}} {'recover':>{TIME_W + 1}}")
    console.print(head, markup=False)
    for c in clients:
        for f in faults:
            key = (c, f)
            if only is not None and key not in only:
                continue
            lead = f"{cshort[c]:{CLIENT_W}} {fshort[labels[f]]:{FAULT_W}} "
            if key in missing:
                console.print(f"{escape(lead)}[yellow]{'n/a':7}[/] unavailable")
                continue
            for d in cells.get(key, []) or [None]:  # type: ignore[list-item]
                if d is None:
                    console.print(f"{lead}{'-':7} not run", markup=False)
                    continue
                v, hl, det, rec = cell_summary(d)
                word = "pass" if v == "pass" else v.upper()
                console.print(f"{escape(lead)}[{_color(v)}]{word:7}[/] {escape(hl[:HEADLINE_W]):{HEADLINE_W}} "
                              f"{det:>{TIME_W}} {rec:>{TIME_W + 1}}")


def summary_line(tally: dict[str, int], code: int) -> str:
    """One line for the end of a CI log: cells per verdict, unknown counted apart, the exit code."""
    total = tally["pass"] + tally["fail"] + tally["unknown"]
    extra = "".join(f", {tally[k]} {k}" for k in ("unavailable", "unrun") if tally.get(k))
    return (f"matrix: {total} cells: {tally['pass']} pass, {tally['fail']} fail, "
            f"{tally['unknown']} unknown{extra} (exit {code})")


@app.command()
def report(
    directories: Annotated[list[Path], typer.Argument(
        help="results stores (reports/), matrix or run directories: runs are found at any depth; "
             "give several to merge results from several machines")],
    out: Annotated[Path | None, typer.Option(help="output file [default: DIR/report.html for one "
                                                  "directory, ./report.html for several]")] = None,
    fail_exit: Annotated[bool, typer.Option("--fail-exit/--no-fail-exit",
                                            help="exit as `matrix` does: 1 when any run failed, else 3 when any "
                                                 "is unknown, incomplete or a matrix shard is missing; "
                                                 "--no-fail-exit: 0 once the report is written")] = False,
) -> None:
    """Re-render report.html from stored runs, without running anything. Shards of one matrix
    (`matrix --shard K/N`, one directory each) merge into the whole matrix's table."""
    from harness.report import render_dirs

    try:
        path, found = render_dirs(directories, out)
    except ChaosError as exc:
        _fail(exc)
        return
    for d in found.incomplete:
        console.print(f"incomplete run (no results.json): {d}", markup=False)
    for p in found.problems:
        console.print(f"unreadable run: {p}", markup=False)
    interrupted = [str(d.get("run_id")) for d in found.docs if d.get("interrupted")]
    if interrupted:
        console.print(f"interrupted runs: {', '.join(interrupted)}", markup=False)
    for gap in found.shard_gaps:
        console.print(f"[yellow]{escape(gap)}[/]")
    console.print(f"report: {path} ({len(found.docs)} runs)", markup=False)
    if fail_exit:
        from harness.matrix import EXIT_FAIL, EXIT_UNKNOWN

        verdicts = {str(d.get("verdict")) for d in found.docs}
        undecided = bool(verdicts - {"pass", "fail"} or found.incomplete or found.problems or found.shard_gaps)
        code = EXIT_FAIL if "fail" in verdicts else EXIT_UNKNOWN if undecided else 0
        tally = {v: sum(str(d.get("verdict")) == v for d in found.docs) for v in ("pass", "fail")}
        console.print(f"runs: {tally['pass']} pass, {tally['fail']} fail, "
                      f"{len(found.docs) - tally['pass'] - tally['fail']} unknown (exit {code})", markup=False)
        raise typer.Exit(code)


@app.command("clients")
def clients_cmd(as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """List the reference client strategies."""
    from harness.clients.registry import strategies

    rows: list[dict[str, Any]] = [{"name": s.name, "library": s.library, "version": s.version,
                                   "description": s.description, "params": s.params}
                                  for s in strategies().values()]
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

    rows: list[dict[str, Any]] = [{"name": n, "family": cls.family, "description": cls.description,
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


def _emit(doc: dict[str, Any]) -> None:
    """Benchmarks print one JSON line on stdout (machine-readable), nothing else."""
    print(json.dumps(doc, default=str), flush=True)


@bench_app.command("matrix")
def bench_matrix(
    path: Annotated[Path, typer.Argument(help="a matrix directory, reports/<matrix-id>")] = Path("reports/latest"),
) -> None:
    """A finished matrix's time: wall, jobs, the sum of its cells' fault timelines and wall ÷
    timelines (harness.run.parallel.matrix_timing). A matrix from before matrix.json recorded
    its wall time is counted as serial (wall = the sum of its cells' walls, "estimated")."""
    from harness.bench.matrix import matrix_bench

    try:
        doc = matrix_bench(path)
    except ChaosError as exc:
        _fail(exc)
        return
    _emit(doc)


@bench_app.command("checker")
def bench_checker(
    events: Annotated[int, typer.Option(help="history size N (t(2N)/t(N) is measured too)")] = 1_000_000,
    rounds: Annotated[int, typer.Option(help="rounds, each timing N and 2N in fresh processes")] = 5,
    repeat: Annotated[int, typer.Option(help="best of R checks within each process")] = 5,
    max_rounds: Annotated[int | None, typer.Option(help="more rounds, up to this many, while fewer than 3 "
                                                         "were quiet (default 3 x rounds)")] = None,
) -> None:
    """Checker throughput: events/s on an N-event history, and t(2N)/t(N) over the quiet rounds.
    Goal: >= 1 M/s, <= 2.1; `goal_verdict` is unknown when the box was too loud to judge."""
    from harness.bench.checker import bench

    try:
        result = bench(events, rounds=rounds, repeat=repeat, max_rounds=max_rounds)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from exc
    _emit({"bench": "checker", **result})


@bench_app.command("proxy")
def bench_proxy(
    seconds: Annotated[float, typer.Option(help="seconds per measurement")] = 10.0,
    state_dir: StateDir = None, base_port: BasePort = None,
) -> None:
    """Proxy transparency: AMQP confirmed publish and bulk TCP through the proxy ÷ direct, one run."""
    from harness.bench.proxy import bench_amqp, bench_tcp
    from harness.env.environment import Environment

    try:
        with Environment(state_dir, base_port) as env:
            url = env.proxy_server.url if env.proxy_server else None
            versions = env.versions()
            host, _, port = env.broker.nodes()[0].upstream.rpartition(":")  # the local node, direct
            amqp = bench_amqp(host, int(port), seconds=seconds, url=url)
            tcp = bench_tcp(seconds=seconds / 2, url=url)
    except ChaosError as exc:
        _fail(exc)
        return
    _emit({"bench": "proxy", "amqp": amqp, "tcp": tcp, "versions": versions})


@bench_app.command("soak")
def bench_soak(
    seconds: Annotated[float, typer.Option(help="how long to add/remove toxics under traffic")] = 600.0,
) -> None:
    """Proxy soak: toxics added and removed every second under traffic; max API latency and leaks."""
    from harness.bench.proxy import soak

    _emit({"bench": "soak", **soak(seconds)})


@bench_app.command("all")
def bench_all() -> None:
    """Every benchmark except the 10-minute soak (run `bench soak` for that)."""
    bench_checker(events=1_000_000, rounds=5, repeat=5, max_rounds=None)
    bench_proxy(seconds=10.0, state_dir=None, base_port=None)


@app.command("check-client")
def check_client(
    client: Annotated[str | None, typer.Option(help="reference strategy or package.module:attr to check; with "
                                                    "--client-cmd, the label")] = None,
    client_cmd: Annotated[str | None, typer.Option(help="your own client in any language: the command that starts "
                                                        "it (docs/client-protocol.md)")] = None,
    grace: Annotated[float, typer.Option(help="seconds the consumer gets to honour SIGTERM")] = 5.0,
    reports_dir: Reports = None, state_dir: StateDir = None, base_port: BasePort = None,
    config_file: ConfigFile = None,
) -> None:
    """Run a client through one short fault-free cell and check it speaks the client protocol
    (exit 0 when conformant, 1 with one message per violation)."""
    from harness.clients import conformance
    from harness.clients.registry import command_for
    from harness.clients.registry import get as get_client

    try:
        cfg = _config(config_file, reports_dir=reports_dir, state_dir=state_dir, base_port=base_port)
        if client is None and client_cmd is None:
            raise ChaosError("no client given", "pass --client NAME (see `rabbit-chaos clients`) or --client-cmd CMD")
        command = command_for(client_cmd) if client_cmd else None
        label = client or "custom"
        if command is None:
            get_client(label)
            _pinned_envs([label])
        _preflight(cfg, [])
        console.print(f"check-client: {client_cmd or label}", markup=False)
        with console.status("starting broker and fault proxy…"), _environment(cfg) as env:
            res = conformance.check(env, label, cfg.reports_dir, command=command, grace_s=grace)
    except ChaosError as exc:
        _fail(exc)
        return
    console.print(res.render(), markup=False)
    raise typer.Exit(0 if res.ok else 1)
