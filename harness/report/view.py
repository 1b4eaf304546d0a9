"""One run as the report shows it, built from a results.json dict of any vintage.

results.json is a contract whose keys are added, never renamed (README), but the report also
meets runs from older harnesses, aborted runs and hand-made dicts. So nothing here indexes a key
it has not checked: a missing value shows as "—", an unexpected verdict as ``unknown`` (never as
``pass``: the report must not promote a run the checker did not pass).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from harness.report import fmt, series

VERDICTS = ("pass", "fail", "unknown")
#: counts shown first, in this order; any other count follows alphabetically
COUNT_ORDER = ("published", "confirmed", "acknowledged", "delivered", "drained", "lost", "lost_confirmed",
               "lost_unconfirmed", "stranded", "duplicated", "duplicated_redelivery", "duplicated_resend",
               "unexpected", "recovered", "reordered")
#: counts whose non-zero value is bad news (highlighted in the table)
BAD_COUNTS = frozenset({"lost", "lost_confirmed", "lost_unconfirmed", "stranded", "unexpected", "lost_by_broker",
                        "lost_queue_node_down"})
#: what the detection clock measures (harness/checker/timing.py): from the first fault's observed
#: effect (fault.effect start, else fault.start) to the first notice by the client under test
DETECTION_LABEL = "detection (fault took effect → the client noticed)"
RECOVERY_LABEL = "recovery (heal → traffic flowing again)"
VERSION_ORDER = ("client_library", "client_library_version", "broker", "erlang", "toxiproxy", "rabbit_chaos")


#: how a finding's owner reads (results.json findings[].owner; older runs have none: the client)
OWNER_LABEL = {"client": "client", "broker": "broker", "config": "queue type (config)"}
#: counts that are lost messages the client does not owe (harness.checker.cluster)
OWED_COUNTS = ("lost_by_broker", "lost_queue_node_down")


def _dict(x: Any) -> dict[str, Any]:
    return x if isinstance(x, dict) else {}


def _strings(x: Any) -> list[str]:
    if isinstance(x, list):
        return [fmt.text(v) for v in x]
    return [] if x is None else [fmt.text(x)]


@dataclass
class RunView:
    """Display-ready facts of one run. ``doc`` keeps the raw dict for the embedded JSON."""

    doc: dict[str, Any]
    anchor: str
    run_id: str
    client: str
    fault: str
    verdict: str
    reasons: list[str]
    notes: list[str]
    counts: list[tuple[str, str, bool]]  # (name, value, is bad news)
    lost: int | None
    duplicated: int | None
    stranded: int | None
    detection_s: float | None
    recovery_s: float | None
    recovery_text: str
    had_fault: bool
    never_recovered: bool
    timing_rows: list[tuple[str, str]]
    versions: list[tuple[str, str]]
    seed: str
    command: str
    command_caveat: str
    started_at: str
    fault_description: str
    client_description: str
    examples: list[tuple[str, list[str]]]
    clients: list[dict[str, str]]
    timeline: dict[str, Any] | None
    timeline_missing: str
    evidence_href: str | None = None
    repeat_index: int = 1
    repeat_total: int = 1
    #: the checker's short word for the cell ("stranded", "gave up", "interrupted", ...; "" for a pass)
    headline: str = ""
    #: every finding: {"headline", "rule", "effect", "count", "text", "proven"} as display text
    findings: list[dict[str, str]] = field(default_factory=list)
    interrupted: bool = False
    detection_text: str = "—"
    #: why recovery is "never" or "—" (recovery_never / recovery_not_needed), for the cell's tooltip
    recovery_why: str = ""
    hold_reason: str = ""
    settle_text: str = ""
    #: the library under test, the strategy (client label without ``@version``) and the library version
    library: str = "—"
    strategy: str = "—"
    library_version: str = "—"
    #: the matrix row this run sits in (set by :func:`build_all`)
    row: str = ""
    #: the run's queue type ("classic", "quorum", ...; "—" when not recorded) and broker node count
    #: ("—" when not recorded); ``setup``: both as one label ("quorum · 3 nodes")
    queue_type: str = "—"
    nodes: str = "—"
    #: lost messages owed to the broker or to the queue type (findings with owner "broker" / "config"):
    #: the client is not to blame for them (None: not recorded)
    lost_owed: int | None = None
    #: each client's broker node over time (:func:`node_strips`), and the node faults' windows
    node_rows: list[dict[str, Any]] = field(default_factory=list)
    node_faults: list[dict[str, Any]] = field(default_factory=list)

    @property
    def setup(self) -> str:
        """"quorum · 3 nodes" ("" when neither is recorded): what the broker side of the run was."""
        parts = []
        if self.queue_type != "—":
            parts.append(f"{self.queue_type} queue")
        if self.nodes != "—":
            parts.append(f"{self.nodes} node{'s' if self.nodes != '1' else ''}")
        return " · ".join(parts)

    @property
    def lost_by_client(self) -> int | None:
        """Lost messages that are the client's own (``lost`` less what the broker or the queue type owes)."""
        if self.lost is None:
            return None
        return max(0, self.lost - (self.lost_owed or 0))

    @property
    def title(self) -> str:
        return f"{self.client} × {self.fault}"

    @property
    def other_reasons(self) -> list[str]:
        """The reasons no finding already states (integrity, interrupts, harness errors): the
        checker words a finding's reason as its text, plus "; not proven: ..." when weighed."""
        texts = [f["text"] for f in self.findings if f["text"] != "—"]
        return [r for r in self.reasons if not any(r.startswith(t) for t in texts)]


def _counts(raw: dict[str, Any]) -> list[tuple[str, str, bool]]:
    keys = [k for k in COUNT_ORDER if k in raw] + sorted(k for k in raw if k not in COUNT_ORDER)
    return [(k, fmt.text(raw[k]), k in BAD_COUNTS and (fmt.num(raw[k]) or 0) > 0) for k in keys]


def _timing(timing: dict[str, Any], metrics: dict[str, Any] | None = None) -> list[tuple[str, str]]:
    rows = [(DETECTION_LABEL, fmt.seconds(timing.get("detection_s"))),
            (RECOVERY_LABEL, _recovery_row(timing))]
    # on a cluster: each client's failover (its loss -> work on another node), the no failover rule's measure
    for proc, v in sorted(_dict((metrics or {}).get("failover_s")).items()):
        rows.append((f"failover, {fmt.text(proc)}", fmt.seconds(v)))
    detail = _dict(timing.get("detail"))
    for label, key in (("detection", "detection_by_role"), ("recovery", "recovery_by_role")):
        for role, v in sorted(_dict(timing.get(key)).items()):
            value = fmt.seconds(v)
            if label == "recovery" and v is None:
                value = _recovery_missing(detail, str(role)) or value
            rows.append((f"{label}, {role}", value))
    for proc, d in sorted(_dict(detail.get("detection_by_proc")).items()):
        d = _dict(d)
        how = " · ".join(fmt.text(d[k]) for k in ("by", "text") if d.get(k))
        rows.append((f"noticed by {fmt.text(proc)}", fmt.seconds(d.get("detection_s")) + (f" ({how})" if how else "")))
    rows += _predicted_rows(_dict(_dict(timing.get("detail")).get("heartbeat_prediction")))
    rows += [("whole run (wall)", fmt.seconds(timing.get("wall_s"))),
             ("warm-up start → heal", fmt.seconds(timing.get("timeline_s")))]
    return rows


def _why(x: Any) -> str:
    """recovery_never / recovery_not_needed as one sentence ("publisher: ...; consumer: ...")."""
    if isinstance(x, dict):
        return "; ".join(f"{fmt.text(k)}: {fmt.text(v)}" for k, v in x.items() if v)
    return "" if x in (None, "", False) else fmt.text(x)


def _recovery_missing(detail: dict[str, Any], role: str) -> str:
    """"never (why)" or "not needed (why)" for one role whose recovery is null."""
    never = _dict(detail.get("recovery_never")).get(role)
    if never:
        return f"never: {fmt.text(never)}"
    needless = _dict(detail.get("recovery_not_needed")).get(role)
    return f"not needed: {fmt.text(needless)}" if needless else ""


def _recovery_row(timing: dict[str, Any]) -> str:
    if fmt.num(timing.get("recovery_s")) is not None:
        return fmt.seconds(timing.get("recovery_s"))
    detail = _dict(timing.get("detail"))
    if never := _why(detail.get("recovery_never")):
        return f"never: {never}"
    if needless := _why(detail.get("recovery_not_needed")):
        return f"not needed: {needless}"
    return "never" if detail.get("recovered") is False else "—"


def _findings(doc: dict[str, Any]) -> list[dict[str, str]]:
    out = []
    raw = doc.get("findings")
    for f in raw if isinstance(raw, list) else []:
        f = _dict(f)
        if not f:
            continue
        rule = fmt.text(f.get("rule"))
        owner = f.get("owner")
        out.append({"headline": fmt.text(f.get("headline") or rule.replace("_", " ")), "rule": rule,
                    "owner": OWNER_LABEL.get(owner, fmt.text(owner)) if owner is not None else "client",
                    "effect": fmt.text(f.get("effect")), "count": fmt.text(f.get("count")),
                    "text": fmt.text(f.get("text")),
                    "proven": "proven" if f.get("proven") is True else
                    "not proven" if f.get("proven") is False else "—"})
    return out


def _settle(x: Any) -> str:
    """The settle phase's outcome in words (``settle`` in results.json: reason, held_unacked, waited_s)."""
    d = _dict(x)
    if not d:
        return ""
    reason, bound = fmt.text(d.get("reason")), d.get("bound")
    if reason == "cap" and bound == "settle_unacked_cap_s":
        words = "cut at settle_unacked_cap_s while the client still held unacked deliveries"
    elif reason == "cap":
        words = (f"cut at {fmt.text(bound or 'its time limit')}: messages waited in the queue and nothing moved"
                 if bound in (None, "settle_timeout_s") else f"cut at {fmt.text(bound)}")
    else:
        words = {"quiet": "quiet: the client held nothing unacked, nothing moved and the queue was empty",
                 "consumer-exited": "the consumer exited"}.get(reason, reason)
    parts = [words]
    if d.get("waited_s") is not None:
        parts.append(f"after {fmt.seconds(d['waited_s'])}")
    if d.get("held_unacked") is not None:
        parts.append(f"{fmt.text(d['held_unacked'])} held unacked at the end")
    return "; ".join(parts)


def split_label(client: str) -> tuple[str, str]:
    """("aio-pika-robust", "9.4.3") for a client label ``NAME@VERSION``; (label, "") without one."""
    name, at, version = client.rpartition("@")
    if at and name and version and " " not in version and "/" not in version:
        return name, version
    return client, ""


def _library(doc: dict[str, Any], metrics: dict[str, Any]) -> tuple[str, str]:
    """The library under test and its version: results.json ``versions``, else what the client
    processes declared (an outside client), else the ``@version`` of the label."""
    versions = _dict(doc.get("versions"))
    lib = versions.get("client_library")
    ver = versions.get("client_library_version")
    if lib in (None, "", "custom"):
        libs = [c.get("library") for c in map(_dict, _dict(metrics.get("clients")).values()) if c.get("library")]
        lib = libs[0] if libs else lib
    _, at_version = split_label(fmt.text(doc.get("client")))
    return (fmt.text(lib) if lib not in (None, "") else "—",
            fmt.text(ver) if ver not in (None, "") else (at_version or "—"))


def _predicted_rows(pred: dict[str, Any]) -> list[tuple[str, str]]:
    """The detection window each client's heartbeat predicts for a silent fault, beside what
    was measured (see harness.clients.heartbeat)."""
    rows = []
    for proc, row in sorted(_dict(pred.get("by_proc")).items()):
        row = _dict(row)
        window = row.get("window_s")
        if isinstance(window, list) and len(window) == 2:
            hi = "no bound" if window[1] is None else fmt.seconds(window[1])
            predicted = f"{fmt.seconds(window[0])} – {hi}"
        else:
            predicted = "no model for this library (or heartbeat off)"
        measured = fmt.seconds(row.get("measured_s"), missing="never noticed")
        within = f" ({fmt.text(row['within'])})" if row.get("within") else ""
        label = (f"detection predicted by heartbeat, {fmt.text(proc)} "
                 f"({fmt.text(row.get('library'))}, heartbeat {fmt.text(row.get('heartbeat_s'))} s)")
        rows.append((label, f"{predicted}; measured {measured}{within}"))
    return rows


def command_for(doc: dict[str, Any]) -> tuple[str, str]:
    """The CLI command that re-runs this cell, and a caveat when it cannot be exact."""
    spec = _dict(doc.get("spec"))
    client = doc.get("client", spec.get("client"))
    argv = ["rabbit-chaos", "run", "--client", fmt.text(client), "--fault", fmt.text(doc.get("fault", "none"))]
    missing = []
    for opt, key in (("--count", "count"), ("--rate", "rate"), ("--warmup", "warmup_s"), ("--fault-for", "fault_s")):
        if key == "fault_s" and key in spec and spec[key] is None:
            continue  # the fault's own hold (or its silent hold): the same command chooses it again
        v = fmt.cli_number(spec.get(key))
        if v is None:
            missing.append(opt)
        else:
            argv += [opt, v]
    for opt, key in (("--max-stall", "max_stall_s"), ("--max-busy", "max_busy_s"), ("--max-block", "max_block_s"),
                     ("--max-detection", "max_detection_s"), ("--max-recovery", "max_recovery_s"),
                     ("--max-failover", "max_failover_s")):
        v = fmt.cli_number(_dict(spec.get("check_options")).get(key))
        if v is not None:
            argv += [opt, v]
    if isinstance(spec.get("queue_type"), str) and spec["queue_type"]:
        argv += ["--queue-type", spec["queue_type"]]
    nodes = fmt.count(spec.get("nodes"))
    if nodes is not None and nodes > 1:
        argv += ["--nodes", str(nodes)]
    seed = fmt.cli_number(doc.get("seed", spec.get("seed")))
    if seed is None:
        missing.append("--seed")
    else:
        argv += ["--seed", seed]
    caveats = []
    if missing:
        caveats.append(f"results.json does not record {', '.join(missing)}: the defaults apply")
    if _dict(spec.get("params")):
        caveats.append(f"client parameters {spec['params']!r} have no CLI option and are not repeated")
    if doc.get("client_command") or _dict(doc.get("versions")).get("client_library") == "custom":
        caveats.append("this run used a custom client command, which `run --client` cannot name")
    return fmt.shell_join(argv), "; ".join(caveats)


def _examples(doc: dict[str, Any]) -> list[tuple[str, list[str]]]:
    ex = _dict(doc.get("examples")) or _dict(_dict(doc.get("metrics")).get("examples"))
    return [(str(k), _strings(v)[:20]) for k, v in sorted(ex.items()) if v]


def _clients(metrics: dict[str, Any]) -> list[dict[str, str]]:
    out = []
    for name, c in sorted(_dict(metrics.get("clients")).items()):
        c = _dict(c)
        out.append({"name": str(name), "role": fmt.text(c.get("role")),
                    "library": fmt.text(c.get("library")), "strategy": fmt.text(c.get("strategy")),
                    "exit": fmt.text(c.get("exit_reason")), "code": fmt.text(c.get("code")),
                    "expected": fmt.text(c.get("expected"))})
    return out


def _setup(doc: dict[str, Any], metrics: dict[str, Any]) -> tuple[str, str]:
    """(queue type, node count) as text: results.json ``spec`` first, then what the checker recorded
    (``metrics.queue_type`` / ``metrics.nodes``); "—" when neither has it."""
    spec = _dict(doc.get("spec"))
    qt = spec.get("queue_type") if spec.get("queue_type") not in (None, "") else metrics.get("queue_type")
    nodes = fmt.count(spec.get("nodes"))
    if nodes is None:
        nodes = fmt.count(metrics.get("nodes"))
    return (fmt.text(qt) if qt not in (None, "") else "—", "—" if nodes is None else str(nodes))


def _pct(x: float, span: float) -> float:
    return round(min(100.0, max(0.0, 100.0 * x / span)), 2) if span > 0 else 0.0


def node_strips(metrics: dict[str, Any]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Each client's broker node over time (``metrics.nodes_timeline``) as rows of segments, and
    the node faults (``metrics.node_faults``), on one scale: the run's duration. A segment:
    ``{"node", "label", "start", "end", "left", "width", "slot"}`` (left/width in percent; slot:
    the node's colour index, by order of the run's node names; the label "no connection" for a
    null node). Everything odd is skipped, never raised on."""
    tl = _dict(metrics.get("nodes_timeline"))
    raw_names = metrics.get("node_names")
    names = [n for n in raw_names if isinstance(n, str)] if isinstance(raw_names, list) else []
    slot: dict[str, int] = {n: i for i, n in enumerate(names)}
    segs: list[tuple[str, list[tuple[str | None, float, float]]]] = []
    span = fmt.num(metrics.get("duration_s")) or 0.0
    for proc, rows in sorted(tl.items(), key=lambda x: str(x[0])):
        got = []
        for r in rows if isinstance(rows, list) else []:
            r = _dict(r)
            a, b = fmt.num(r.get("start_s")), fmt.num(r.get("end_s"))
            if a is None or b is None:
                continue
            node = r.get("node") if isinstance(r.get("node"), str) else None
            if node is not None:
                slot.setdefault(node, len(slot))
            got.append((node, a, max(a, b)))
            span = max(span, b)
        segs.append((str(proc), got))
    faults: list[dict[str, Any]] = []
    raw_faults = metrics.get("node_faults")
    for f in raw_faults if isinstance(raw_faults, list) else []:
        f = _dict(f)
        a, b = fmt.num(f.get("start_s")), fmt.num(f.get("end_s"))
        if a is None:
            continue
        span = max(span, a if b is None else b)
        hit = f.get("nodes")
        nodes = ", ".join(fmt.text(n) for n in hit) if isinstance(hit, list) else ""
        faults.append({"fault": fmt.text(f.get("fault")), "nodes": nodes or "one node",
                       "start": a, "end": b})
    for f in faults:
        end = span if f["end"] is None else f["end"]
        f.update(left=_pct(f["start"], span), width=max(0.5, _pct(end - f["start"], span)),
                 text=f"{f['fault']} of {f['nodes']}: {fmt.seconds(f['start'])} → "
                      f"{fmt.seconds(f['end'], 'never healed')}")
    out: list[dict[str, Any]] = []
    for proc, got in segs:
        row = []
        for node, a, b in got:
            label = node if node is not None else "no connection"
            row.append({"node": label, "start": a, "end": b, "left": _pct(a, span),
                        "width": max(0.5, _pct(b - a, span)), "slot": -1 if node is None else slot[node] % 6,
                        "text": f"{label}: {fmt.seconds(a)} → {fmt.seconds(b)}"})
        out.append({"proc": proc, "segments": row})
    return out, faults


def build(doc: dict[str, Any], anchor: str) -> RunView:
    """The view of one results dict (``anchor``: its unique, slug-safe section id)."""
    counts = _dict(doc.get("counts"))
    timing = _dict(doc.get("timing"))
    metrics = _dict(doc.get("metrics"))
    detail = _dict(timing.get("detail"))
    verdict = str(doc["verdict"]) if doc.get("verdict") in VERDICTS else "unknown"
    reasons = _strings(doc.get("reasons"))
    if doc.get("verdict") not in VERDICTS:
        reasons.append(f"the report read verdict {doc.get('verdict')!r}, which is not pass/fail/unknown")
    fault = fmt.text(doc.get("fault", "none"))
    timeline, why = series.normalise(series.find(metrics))
    had_fault = fault != "none" or bool(detail.get("faults")) or bool(timeline and timeline["faults"])
    recovery = fmt.num(timing.get("recovery_s"))
    never = had_fault and recovery is None and detail.get("recovered") is False
    if recovery is not None:
        recovery_text = fmt.seconds(recovery)
    elif never:
        recovery_text = "never"
    else:
        recovery_text = "—"
    versions = _dict(doc.get("versions"))
    vkeys = [k for k in VERSION_ORDER if k in versions] + sorted(k for k in versions if k not in VERSION_ORDER)
    command, caveat = command_for(doc)
    recovery_why = ""
    if recovery is None and had_fault:
        never_why = _why(detail.get("recovery_never"))
        needless = _why(detail.get("recovery_not_needed"))
        if never_why:
            never, recovery_text, recovery_why = True, "never", never_why
        elif needless:
            never, recovery_text, recovery_why = False, "—", f"not needed: {needless}"
    library, library_version = _library(doc, metrics)
    interrupted = doc.get("interrupted") is True
    headline = fmt.text(doc.get("headline")) if doc.get("headline") else ""
    if not headline and interrupted:
        headline = "interrupted"
    detection = fmt.num(timing.get("detection_s"))
    queue_type, nodes = _setup(doc, metrics)
    owed = [c for c in (fmt.count(counts.get(k)) for k in OWED_COUNTS) if c is not None]
    node_rows, node_faults = node_strips(metrics)
    return RunView(
        doc=doc, anchor=anchor, run_id=fmt.text(doc.get("run_id")), client=fmt.text(doc.get("client")),
        fault=fault, verdict=verdict, reasons=reasons, notes=_strings(doc.get("notes")),
        counts=_counts(counts), lost=fmt.count(counts.get("lost")), duplicated=fmt.count(counts.get("duplicated")),
        stranded=fmt.count(counts.get("stranded")), detection_s=fmt.num(timing.get("detection_s")),
        recovery_s=recovery, recovery_text=recovery_text, had_fault=had_fault, never_recovered=never,
        timing_rows=_timing(timing, metrics), versions=[(k, fmt.text(versions[k])) for k in vkeys],
        seed=fmt.text(doc.get("seed")), command=command, command_caveat=caveat,
        started_at=fmt.text(doc.get("started_at")), fault_description=fmt.text(doc.get("fault_description") or ""),
        client_description=fmt.text(doc.get("client_description") or ""), examples=_examples(doc),
        clients=_clients(metrics), timeline=timeline, timeline_missing=why,
        headline=headline, findings=_findings(doc), interrupted=interrupted,
        detection_text=fmt.seconds(detection),
        recovery_why=recovery_why, hold_reason=fmt.text(_dict(doc.get("timeline")).get("hold_reason") or ""),
        settle_text=_settle(doc.get("settle")), library=library,
        strategy=split_label(fmt.text(doc.get("client")))[0], library_version=library_version,
        queue_type=queue_type, nodes=nodes, lost_owed=sum(owed) if owed else None,
        node_rows=node_rows, node_faults=node_faults,
    )


def anchors(docs: list[dict[str, Any]]) -> list[str]:
    """A unique section id per run, stable across re-renders (derived from run_id)."""
    taken: set[str] = set()
    out = []
    for i, d in enumerate(docs):
        base = "run-" + fmt.slug(str(d.get("run_id") or f"unnamed-{i + 1}"))
        anchor, n = base, 1
        while anchor in taken:
            n += 1
            anchor = f"{base}-{n}"
        taken.add(anchor)
        out.append(anchor)
    return out


def build_all(docs: list[dict[str, Any]]) -> list[RunView]:
    """Views of every run, with their matrix row and repeat numbers (1 of 3, ...) per row × fault
    cell. The row is the client label, or ``label@version`` when the same label ran against
    several library versions (so versions are never counted as repeats of each other), and
    ``… · quorum queue · 3 nodes`` when the runs differ in queue type or node count (a classic and a
    quorum run of one client are two rows, never repeats of one cell)."""
    docs = [d if isinstance(d, dict) else {} for d in docs]
    views = [build(d, a) for d, a in zip(docs, anchors(docs), strict=True)]
    versions: dict[str, set[str]] = {}
    for v in views:
        versions.setdefault(v.client, set()).add(v.library_version)
    setups = {v.setup for v in views}
    for v in views:
        v.row = f"{v.client}@{v.library_version}" if len(versions[v.client]) > 1 else v.client
        if len(setups) > 1:  # runs against different queue types / clusters never count as repeats
            v.row = f"{v.row} · {v.setup or 'queue type not recorded'}"
    totals: dict[tuple[str, str], int] = {}
    for v in views:
        totals[(v.row, v.fault)] = totals.get((v.row, v.fault), 0) + 1
    seen: dict[tuple[str, str], int] = {}
    for v in views:
        key = (v.row, v.fault)
        seen[key] = seen.get(key, 0) + 1
        v.repeat_index, v.repeat_total = seen[key], totals[key]
    return views
