"""One run as the report shows it, built from a results.json dict of any vintage.

results.json is a contract whose keys are added, never renamed (README), but the report also
meets runs from older harnesses, aborted runs and hand-made dicts. So nothing here indexes a key
it has not checked: a missing value shows as "—", an unexpected verdict as ``unknown`` (never as
``pass``: the report must not promote a run the checker did not pass).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from harness.report import fmt, series

VERDICTS = ("pass", "fail", "unknown")
#: counts shown first, in this order; any other count follows alphabetically
COUNT_ORDER = ("published", "confirmed", "acknowledged", "delivered", "drained", "lost", "lost_confirmed",
               "lost_unconfirmed", "stranded", "duplicated", "duplicated_redelivery", "duplicated_resend",
               "unexpected", "recovered", "reordered")
#: counts whose non-zero value is bad news (highlighted in the table)
BAD_COUNTS = frozenset({"lost", "lost_confirmed", "lost_unconfirmed", "stranded", "unexpected"})
VERSION_ORDER = ("client_library", "client_library_version", "broker", "erlang", "toxiproxy", "rabbit_chaos")


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

    @property
    def title(self) -> str:
        return f"{self.client} × {self.fault}"


def _counts(raw: dict[str, Any]) -> list[tuple[str, str, bool]]:
    keys = [k for k in COUNT_ORDER if k in raw] + sorted(k for k in raw if k not in COUNT_ORDER)
    return [(k, fmt.text(raw[k]), k in BAD_COUNTS and (fmt.num(raw[k]) or 0) > 0) for k in keys]


def _timing(timing: dict[str, Any]) -> list[tuple[str, str]]:
    rows = [("detection (fault start → a client noticed)", fmt.seconds(timing.get("detection_s"))),
            ("recovery (heal → traffic flowing again)", fmt.seconds(timing.get("recovery_s")))]
    for label, key in (("detection", "detection_by_role"), ("recovery", "recovery_by_role")):
        for role, v in sorted(_dict(timing.get(key)).items()):
            rows.append((f"{label}, {role}", fmt.seconds(v)))
    rows += _predicted_rows(_dict(_dict(timing.get("detail")).get("heartbeat_prediction")))
    rows += [("whole run (wall)", fmt.seconds(timing.get("wall_s"))),
             ("warm-up start → heal", fmt.seconds(timing.get("timeline_s")))]
    return rows


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
                     ("--max-detection", "max_detection_s"), ("--max-recovery", "max_recovery_s")):
        v = fmt.cli_number(_dict(spec.get("check_options")).get(key))
        if v is not None:
            argv += [opt, v]
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
    return RunView(
        doc=doc, anchor=anchor, run_id=fmt.text(doc.get("run_id")), client=fmt.text(doc.get("client")),
        fault=fault, verdict=verdict, reasons=reasons, notes=_strings(doc.get("notes")),
        counts=_counts(counts), lost=fmt.count(counts.get("lost")), duplicated=fmt.count(counts.get("duplicated")),
        stranded=fmt.count(counts.get("stranded")), detection_s=fmt.num(timing.get("detection_s")),
        recovery_s=recovery, recovery_text=recovery_text, had_fault=had_fault, never_recovered=never,
        timing_rows=_timing(timing), versions=[(k, fmt.text(versions[k])) for k in vkeys],
        seed=fmt.text(doc.get("seed")), command=command, command_caveat=caveat,
        started_at=fmt.text(doc.get("started_at")), fault_description=fmt.text(doc.get("fault_description") or ""),
        client_description=fmt.text(doc.get("client_description") or ""), examples=_examples(doc),
        clients=_clients(metrics), timeline=timeline, timeline_missing=why,
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
    """Views of every run, with repeat numbers (1 of 3, ...) per client × fault cell."""
    docs = [d if isinstance(d, dict) else {} for d in docs]
    views = [build(d, a) for d, a in zip(docs, anchors(docs), strict=True)]
    totals: dict[tuple[str, str], int] = {}
    for v in views:
        totals[(v.client, v.fault)] = totals.get((v.client, v.fault), 0) + 1
    seen: dict[tuple[str, str], int] = {}
    for v in views:
        key = (v.client, v.fault)
        seen[key] = seen.get(key, 0) + 1
        v.repeat_index, v.repeat_total = seen[key], totals[key]
    return views
