"""Fabricate plausible results.json dicts (as harness/engine.py writes them) for report tests.

A fake run has a realistic throughput timeline: steady publishing, a fault window where confirms
and deliveries stop, connection events at the fault and after the heal, and a catch-up burst.
"""

from __future__ import annotations

import random
from typing import Any

XSS = "<script>alert(1)</script>"


def fake_timeline(seed: int, fault: str | None, *, rate: float = 100.0, bucket_s: float = 0.1,
                  duration_s: float = 12.0, fault_start: float = 2.0, fault_stop: float | None = 6.0,
                  reconnect_s: float = 0.8, proc_suffix: str = "") -> dict[str, Any]:
    """The shape of ``harness.checker.timeline.throughput()``."""
    rng = random.Random(seed)
    n = int(duration_s / bucket_s)
    per = rate * bucket_s
    invoke, ok, deliver = [], [], []
    backlog = 0.0
    back_at = None if fault is None or fault_stop is None else fault_stop + reconnect_s
    for i in range(n):
        t = i * bucket_s
        published = max(0, round(per + rng.uniform(-2, 2))) if t < duration_s - 2 else 0
        invoke.append(published)
        down = fault is not None and t >= fault_start and (back_at is None or t < back_at)
        if down:
            ok.append(0)
            deliver.append(0)
            backlog += published
        else:
            burst = min(backlog, 5 * per)
            backlog -= burst
            ok.append(round(published + burst))
            deliver.append(round(published + burst))
    faults = [] if fault is None else [[fault, fault_start, fault_stop]]
    conn: list[list[Any]] = []
    if fault is not None:
        conn = [[fault_start + 0.05, "publisher-0" + proc_suffix, "conn.lost"],
                [fault_start + 0.07, "consumer-0" + proc_suffix, "conn.lost"]]
        if back_at is not None:
            conn += [[back_at - 0.1, "consumer-0" + proc_suffix, "conn.open"],
                     [back_at, "publisher-0" + proc_suffix, "conn.open"]]
    return {"bucket_s": bucket_s, "publish_invoke": invoke, "publish_ok": ok, "publish_confirmed": ok,
            "deliver": deliver, "faults": faults, "conn_events": conn}


def fake_run(client: str = "pika-recover", fault: str = "broker-restart", *, verdict: str = "pass",
             seed: int = 42, lost: int = 0, duplicated: int = 0, stranded: int = 0, recovery_s: float | None = 1.25,
             detection_s: float | None = 0.05, timeline: bool = True, index: int = 0,
             reasons: list[str] | None = None, notes: list[str] | None = None,
             examples: dict[str, list[str]] | None = None, run_id: str | None = None) -> dict[str, Any]:
    """One results dict; ``fault="none"`` gives a baseline run with no fault window."""
    has_fault = fault != "none"
    published = 1000
    delivered = published - lost - stranded
    if reasons is None:
        reasons = []
        if lost:
            reasons.append(f"{lost} messages lost: acknowledged to the publisher, never delivered nor drained")
        if stranded:
            reasons.append(f"{stranded} messages stranded: only the harness's drain found them")
        if verdict == "unknown" and not reasons:
            reasons.append("the consumer's history ends without an exit event")
    metrics: dict[str, Any] = {"events": 4200, "duration_s": 12.0,
                               "clients": {"publisher-0": {"role": "publisher", "library": "pika", "strategy": client,
                                                           "exit_reason": "done", "code": 0, "expected": True},
                                           "consumer-0": {"role": "consumer", "library": "pika", "strategy": client,
                                                          "exit_reason": "sigterm", "code": 0, "expected": True}}}
    if timeline:
        metrics["throughput"] = fake_timeline(seed + index, fault if has_fault else None,
                                              fault_stop=6.0, reconnect_s=recovery_s or 0.5)
    rid = run_id or f"20260101T0000{index:02d}-{client}-{fault.split(':')[0]}-{seed:04x}"[:80]
    return {
        "run_id": rid,
        "client": client,
        "fault": fault,
        "seed": seed,
        "verdict": verdict,
        "reasons": reasons,
        "notes": notes if notes is not None else [f"{duplicated} duplicates (broker redelivery)"] * bool(duplicated),
        "examples": examples or {},
        "counts": {"published": published, "confirmed": published, "acknowledged": published,
                   "delivered": delivered, "drained": stranded, "lost": lost, "lost_confirmed": lost,
                   "lost_unconfirmed": 0, "stranded": stranded, "duplicated": duplicated,
                   "duplicated_redelivery": duplicated, "duplicated_resend": 0, "unexpected": 0,
                   "recovered": 0, "reordered": 0},
        "timing": {"detection_s": detection_s if has_fault else None,
                   "recovery_s": recovery_s if has_fault else None,
                   "detection_by_role": {"publisher": detection_s, "consumer": detection_s} if has_fault else {},
                   "recovery_by_role": {"publisher": recovery_s, "consumer": recovery_s} if has_fault else {},
                   "detail": {"faults": [{"fault": fault, "start_s": 2.0, "stop_s": 6.0}] if has_fault else [],
                              "recovered": recovery_s is not None} if has_fault else {},
                   "wall_s": 19.5, "timeline_s": 8.0},
        "versions": {"broker": "3.10.8", "erlang": "25.2.3", "toxiproxy": "embedded 0.1.0",
                     "client_library": "pika", "client_library_version": "1.3.2", "rabbit_chaos": "0.1.0"},
        "metrics": metrics,
        "spec": {"client": client, "fault": fault, "seed": None, "count": published, "rate": 100.0,
                 "warmup_s": 2.0, "fault_s": 4.0, "settle_s": 2.0, "settle_timeout_s": 60.0,
                 "connect_timeout_s": 20.0, "grace_s": 5.0, "params": {}},
        "fault_description": "graceful broker restart (rabbitmqctl stop_app / start_app)" if has_fault else "no fault",
        "client_description": f"{client}: pika BlockingConnection with the documented reconnect loop",
        "started_at": f"2026-01-01T00:00:{index:02d}+00:00",
    }


def sample_matrix() -> list[dict[str, Any]]:
    """Two clients × three faults, one cell repeated three times, plus a hostile run."""
    runs = []
    i = 0
    for client in ("pika-naive", "pika-recover"):
        for fault in ("none", "broker-restart", "connection-cut"):
            reps = 3 if (client, fault) == ("pika-recover", "connection-cut") else 1
            for rep in range(reps):
                if client == "pika-naive" and fault != "none":
                    runs.append(fake_run(client, fault, verdict="fail", lost=37, stranded=120, recovery_s=None,
                                         index=i, seed=100 + i))
                elif reps > 1 and rep == 1:
                    runs.append(fake_run(client, fault, verdict="unknown", recovery_s=2.4, index=i, seed=100 + i))
                else:
                    runs.append(fake_run(client, fault, recovery_s=0.9 + 0.3 * rep, duplicated=3 * rep, index=i,
                                         seed=100 + i))
                i += 1
    return runs


def hostile_run(index: int = 99) -> dict[str, Any]:
    """A run whose every user- or broker-supplied string carries a script payload."""
    doc = fake_run(client=f"evil{XSS}", fault=f"latency:ms=5{XSS}", verdict="fail", lost=2, index=index,
                   reasons=[f"lost message {XSS}", "</script><script>alert(2)</script>"],
                   notes=[f"note {XSS}"], examples={"lost_confirmed": [f"p0-{XSS}", "p0-2"]},
                   run_id=f"run-{XSS}")
    doc["versions"]["broker"] = f"3.10.8{XSS}"
    doc["fault_description"] = f"queue rabbit-chaos.q{XSS}"
    doc["client_description"] = f"\"><img src=x onerror=alert(3)>{XSS}"
    doc["metrics"]["throughput"]["faults"][0][0] = f"latency{XSS}"
    doc["metrics"]["throughput"]["conn_events"][0][1] = f"publisher{XSS}"
    doc["metrics"]["clients"][f"proc{XSS}"] = {"role": XSS, "library": XSS, "strategy": XSS,
                                               "exit_reason": XSS, "code": 1, "expected": False}
    # the checker's and the engine's newer fields, every string hostile
    with_findings(doc, f"lost{XSS}", f"lost{XSS}", f"fail{XSS}", text=f"finding {XSS}")
    doc["client"] = f"evil{XSS}@9.{XSS}"
    doc["versions"]["client_library"] = f"lib{XSS}"
    doc["versions"]["client_library_version"] = f"1.0{XSS}"
    doc["settle"] = {"reason": f"cap{XSS}", "held_unacked": XSS, "waited_s": 1.0, "bound": f"b{XSS}"}
    doc["timeline"]["hold_reason"] = f"held {XSS}"
    doc["timing"]["recovery_s"] = None
    doc["timing"]["detail"]["recovery_never"] = {f"consumer{XSS}": f"never {XSS}"}
    doc["timing"]["detail"]["detection_by_proc"] = {f"p{XSS}": {"detection_s": 0.1, "by": XSS, "text": f"err {XSS}"}}
    doc["interrupted"] = True
    return doc


#: (client label, library, library version) rows of the synthetic big matrix: several libraries,
#: strategies and versions of one strategy side by side (``@version`` labels and plain ones)
BIG_ROWS = (("pika-naive", "pika", "1.3.2"), ("pika-recover", "pika", "1.3.2"), ("pika-best", "pika", "1.3.2"),
            ("pika-async-best", "pika", "1.3.2"), ("kombu-naive", "kombu", "5.4.2"), ("kombu-best", "kombu", "5.4.2"),
            ("aio-pika-robust@10.2.1", "aio-pika", "10.2.1"), ("aio-pika-robust@9.4.3", "aio-pika", "9.4.3"),
            ("aio-pika-robust@9.5.5", "aio-pika", "9.5.5"), ("aio-pika-naive", "aio-pika", "10.2.1"),
            ("aioamqp-naive", "aioamqp", "0.15.0"), ("aioamqp-best", "aioamqp", "0.15.0"),
            ("chat-app", "custom", None))
BIG_FAULTS = ("none", "connection-cut", "partition", "packet-loss", "latency", "broker-restart", "broker-crash",
              "memory-alarm", "queue-delete", "consumer-timeout")
#: (verdict, headline, rule, effect) the synthetic cells cycle through
OUTCOMES = (("pass", "", "", ""), ("fail", "lost", "lost", "fail"), ("fail", "stranded", "stranded", "fail"),
            ("unknown", "not exercised", "not_exercised", "unknown"), ("fail", "gave up", "gave_up", "fail"),
            ("fail", "blocked", "blocked", "fail"), ("pass", "", "", ""), ("unknown", "interrupted", "", ""),
            ("fail", "consumer lost", "consumer_lost", "fail"), ("unknown", "no overlap", "no_overlap", "unknown"))


def with_findings(doc: dict[str, Any], headline: str, rule: str, effect: str, text: str = "") -> dict[str, Any]:
    """Add the checker's newer fields (headline, findings, settle, hold reason, recovery whys)."""
    doc["headline"] = headline
    doc["findings"] = [] if not rule else [{"rule": rule, "category": rule, "headline": headline, "effect": effect,
                                            "count": 3, "text": text or f"{headline}: 3 of them (e.g. p0-1)",
                                            "proven": True}]
    if rule and (text or f"{headline}: 3 of them (e.g. p0-1)") not in doc["reasons"]:
        doc["reasons"].append(text or f"{headline}: 3 of them (e.g. p0-1)")
    doc["interrupted"] = headline == "interrupted"
    doc["settle"] = {"reason": "quiet", "held_unacked": 0, "waited_s": 2.02}
    doc["timeline"] = {"hold_reason": "the fault's default hold: 4 s", "length_s": 4.0}
    return doc


def big_matrix() -> list[dict[str, Any]]:
    """13 clients × 10 faults = 130 runs, one per cell, every headline the checker writes."""
    runs = []
    for i, (label, library, version) in enumerate(BIG_ROWS):
        for j, fault in enumerate(BIG_FAULTS):
            n = i * len(BIG_FAULTS) + j
            verdict, headline, rule, effect = OUTCOMES[(i + j) % len(OUTCOMES)] if fault != "none" else OUTCOMES[0]
            never = headline in ("gave up", "consumer lost")
            doc = fake_run(label, fault, verdict=verdict, index=n % 60, seed=1000 + n,
                           run_id=f"20260102T{n:06d}-{label.replace('@', '-')}-{fault}",
                           lost=3 if headline == "lost" else 0, stranded=3 if headline == "stranded" else 0,
                           recovery_s=None if never else 1.0 + (n % 7) / 10)
            doc["versions"]["client_library"] = library
            doc["versions"]["client_library_version"] = version
            for proc in doc["metrics"]["clients"].values():
                proc["library"] = library
            with_findings(doc, headline, rule, effect)
            if never:
                why = "no delivery on a live connection after the heal"
                doc["timing"]["detail"]["recovery_never"] = {"consumer": why}
            runs.append(doc)
    return runs
