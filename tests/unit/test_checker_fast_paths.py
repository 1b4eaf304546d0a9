"""The checker's speed work must not change a single verdict: interned strings from the reader,
the fold's one-entry per-process caches (with their dict fallback), and the faulty clients shipped
for self-testing the checker are wired as documented."""

from __future__ import annotations

import copy
import json
import sys
from pathlib import Path
from typing import Any

import pytest

from harness.bench.checker import synthetic
from harness.checker import check
from harness.checker.builder import HistoryBuilder, clean_run
from harness.history import Event, merge, read_events


def fresh_strings(events: list[Event]) -> list[Event]:
    """A deep copy in which every string is its own object (what json.loads gives without interning)."""

    def own(v: Any) -> Any:
        return "".join(list(v)) if isinstance(v, str) else v

    return [{own(k): own(v) for k, v in ev.items()} for ev in copy.deepcopy(events)]


def write(path: Path, events: list[Event]) -> None:
    path.write_text("".join(json.dumps(ev) + "\n" for ev in events))


def test_reader_interns_the_compared_strings_across_files(tmp_path: Path) -> None:
    evs = clean_run(1, 1, 3).finish().events()
    pubs = [e for e in evs if e["role"] == "publisher"]
    rest = [e for e in evs if e["role"] != "publisher"]
    write(tmp_path / "a.jsonl", pubs)
    write(tmp_path / "b.jsonl", rest)
    merged, problems = merge([tmp_path / "a.jsonl", tmp_path / "b.jsonl"], tmp_path / "h.jsonl")
    assert not problems
    invoke = next(e for e in merged if e["kind"] == "publish.invoke")
    deliver = next(e for e in merged if e["kind"] == "deliver" and e["id"] == invoke["id"])
    assert deliver["id"] is invoke["id"]  # one object, from two files
    assert invoke["kind"] is sys.intern("publish.invoke")  # identity is the point
    assert merged == sorted(evs, key=lambda e: e["t"])  # values unchanged
    again, _ = read_events(tmp_path / "h.jsonl")
    assert again == merged


@pytest.mark.parametrize("history", ["synthetic", "anomalies"])
def test_interned_and_fresh_strings_judge_identically(history: str) -> None:
    if history == "synthetic":
        evs = synthetic(4000)
    else:
        h = HistoryBuilder()
        for c in ("consumer-0", "consumer-1"):
            h.start(c, "consumer")
        for p in ("publisher-0", "publisher-1"):
            h.start(p, "publisher")
        # interleaved publishers and consumers (the one-entry caches switch on every event), a
        # reordering, a duplicate of each cause, a lost and a stranded message
        ids = [f"p{k % 2}-{k}" for k in range(40)]
        for k, i in enumerate(ids):
            h.publish(f"publisher-{k % 2}", i)
        h.publish("publisher-0", "p0-0")  # re-send
        order = [*ids[:10], ids[12], ids[10], ids[11], *ids[13:30]]
        for k, i in enumerate(order):
            h.deliver(f"consumer-{k % 3 % 2}", i)
        h.deliver("consumer-0", "p0-0")  # the re-send's copy
        h.deliver("consumer-1", ids[5], redelivered=True)
        h.drain(ids[31])
        evs = h.finish().events()
    plain = check(fresh_strings(evs)).to_dict()
    interned = check(evs).to_dict()
    assert plain == interned
    if history == "anomalies":
        c = interned["counts"]
        assert (c["reordered"], c["duplicated_resend"], c["duplicated_redelivery"], c["stranded"]) == (1, 1, 1, 1)
        assert c["lost"] == 40 - 30 - 1
        assert interned["metrics"]["delivered_by_proc"] == {"consumer-0": 21, "consumer-1": 11}


def test_faulty_clients_cover_every_rule_and_stay_out_of_the_catalogue() -> None:
    from harness.checker.rules import rules
    from harness.clients.faulty import BY_RULE, CLIENTS
    from harness.clients.registry import get, strategies

    # every key names a registered rule (it must fire) or a category reported as a note
    notes = {"duplicated_redelivery", "duplicated_resend", "reordered"}
    assert set(BY_RULE) <= set(rules()) | notes, set(BY_RULE) - set(rules()) - notes
    assert {"lost", "unexpected", "stalled", "consumer_lost", "blocked", "gave_up"} <= set(BY_RULE)
    for rule, entry in BY_RULE.items():
        s = get(entry)
        assert s.library == "pika" and rule.split("_")[0] in s.description.replace(" ", "_")
        mod = s.load()
        assert callable(mod.publisher) and callable(mod.consumer)
    assert not any(s.module.startswith("harness.clients.faulty") for s in strategies().values())
    assert len(CLIENTS) >= len(BY_RULE)  # fixed twins and negative controls beside the faulty ones
