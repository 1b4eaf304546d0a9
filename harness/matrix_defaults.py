"""The default matrix: curated columns (faults) and rows (clients) that tell the libraries apart.

``rabbit-chaos matrix`` with no ``--faults`` runs :data:`COLUMNS`; with no ``--clients``,
:func:`default_clients` (one best-practice and one baseline strategy per library, plus chat-app).
docs/matrix.md says, per column, what it separates and which shipped strategy fails it.

Why columns carry more than a fault spec. A column is *calibrated*: its duration outlasts the
deadline or detection window it is about, and where that window depends on the clients'
heartbeat the column fixes the heartbeat it runs them at (``params``), so the silent faults
(partition, heartbeat starvation) are held for seconds, not the minutes RabbitMQ's default 60 s
heartbeat would need (pika: 162 s, aio-pika: 266 s). Every calibration is visible: explicit
timelines (``@START+HOLD``) in the spec, client knobs in ``params`` (recorded in results.json
``spec.params``), and a user's own ``--param`` or ``--fault-for`` always wins.

A column is looked up by its exact fault spec (:func:`column_for`), so ``--faults partition``
runs the calibrated partition column too; a fault that is no column's spec runs as given. On the
command line a column may also be named by its label (:func:`resolve`: ``--faults
none,cons-timeout,latency-12s``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

#: the heartbeat (s) the silent-fault columns run every client at: detection windows of 10-20 s
#: (pika), 18-20 s (aio-pika), 7.5-10 s (aioamqp), >= 7.5 s (kombu), so the engine's default
#: silent hold (window + max(5 s, 25 %)) is 15-25 s instead of 150-266 s at 60 s
SILENT_HEARTBEAT_S = 5


@dataclass(frozen=True)
class Column:
    """One curated matrix column.

    ``fault``: the spec the engine runs (and results.json records as ``fault``); ``label``: the
    short name the console table and docs use; ``params``: client knobs this column runs every
    client with, under the user's own ``--param``; ``separates``: one line for the docs and
    ``rabbit-chaos matrix --help``."""

    label: str
    fault: str
    separates: str
    params: Mapping[str, Any] = field(default_factory=dict)


COLUMNS: tuple[Column, ...] = (
    Column("none", "none", "control: no fault; every strategy must pass (a failure is a harness or client bug)"),
    Column("conn-cut", "connection-cut",
           "reconnects after a refused/closed connection (4 s) and re-consumes, vs. gives up"),
    Column("partition", "partition",
           "silent partition held past each client's heartbeat window (heartbeat 5 s): detects a dead peer "
           "and reconnects, vs. waits or gives up", {"heartbeat": SILENT_HEARTBEAT_S}),
    Column("pkt-loss", "packet-loss",
           "10 % of chunks dropped for 4 s (framing errors, lost confirms): bounds every wait and "
           "re-sends, vs. hangs on a confirm that never comes"),
    Column("latency-12s", "latency:latency_ms=12000,target=publisher@0+20",
           "confirms 12 s late for 20 s: a publish deadline below max_block_s (10 s) tells the app, vs. "
           "waits silently (blocked)"),
    Column("restart", "broker-restart",
           "graceful broker restart: reconnects and re-publishes unconfirmed, vs. gives up / loses transient"),
    Column("crash", "broker-crash",
           "SIGKILL of the broker: persistent + confirmed survives, transient or unconfirmed is lost"),
    Column("mem-alarm", "memory-alarm",
           "20 s memory alarm: a blocked-connection deadline tells the app (< 10 s), vs. blocked silently"),
    Column("queue-del", "queue-delete",
           "queue deleted for 4 s: mandatory publishes + basic.return handling and re-declare on cancel, vs. "
           "confirmed-but-unroutable loss"),
    Column("cons-timeout", "consumer-timeout@0+15,force-close:target=consumer@3+0",
           "consumer_timeout 1 s for 15 s, consumer forced to reconnect into it: survives the 406 channel "
           "close (re-opens, re-consumes), vs. gives up or strands"),
    Column("hb-starve", f"heartbeat-starvation:heartbeat_s={SILENT_HEARTBEAT_S}",
           "the broker's side goes silent (heartbeat 5 s, 25 s silence): the client's own heartbeat "
           "detects it, vs. waits", {"heartbeat": SILENT_HEARTBEAT_S}),
)

#: per library, (best-practice strategy, fallbacks while it does not exist) and the baseline
#: (naive/tutorial or documented) strategy it is compared with
ROWS: tuple[tuple[tuple[str, ...], str | None], ...] = (
    (("pika-best", "pika-recover"), "pika-naive"),
    (("pika-async-best", "pika-async"), None),
    (("kombu-best", "kombu-drain"), "kombu-mixin"),
    (("aio-pika-best", "aio-pika-robust"), "aio-pika-plain"),
    (("aioamqp-best", "aioamqp-reconnect"), "aioamqp-naive"),
)
EXTRA_ROWS = ("chat-app",)


def default_faults() -> list[str]:
    """The curated columns' fault specs, in display order."""
    return [c.fault for c in COLUMNS]


def column_for(fault: str) -> Column | None:
    """The curated column whose spec is exactly ``fault``, else None (run as given)."""
    return next((c for c in COLUMNS if c.fault == fault.strip()), None)


def default_clients(available: Iterable[str] | None = None) -> list[str]:
    """One best-practice strategy per library (the first of its names that exists), its
    baseline, and chat-app. ``available``: the strategy names to choose from [default: the
    registry's]."""
    if available is None:
        from harness.clients.registry import strategies

        available = strategies()
    have = set(available)
    out: list[str] = []
    for best, baseline in ROWS:
        pick = next((b for b in best if b in have), None)
        out += [n for n in (pick, baseline) if n is not None and n in have and n not in out]
    out += [n for n in EXTRA_ROWS if n in have and n not in out]
    return out


def resolve(item: str) -> str:
    """A ``--faults`` item: a curated column's label (``cons-timeout``, ``latency-12s``) stands for
    its spec, so a multi-window column can be named on the command line; anything else is a
    fault spec, run as given."""
    col = next((c for c in COLUMNS if c.label == item.strip()), None)
    return col.fault if col else item


def cell_params(fault: str, user: Mapping[str, Any] | None) -> dict[str, Any]:
    """The client knobs a cell runs with: its column's calibration, overridden by the user's."""
    col = column_for(fault)
    return {**(dict(col.params) if col else {}), **dict(user or {})}


def label_for(fault: str) -> str:
    """The short label of a curated column, else the fault spec itself."""
    col = column_for(fault)
    return col.label if col else fault
