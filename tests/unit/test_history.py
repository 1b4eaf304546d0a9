import json

from harness.history import HistoryWriter, merge, read_events, validate_event


def ev(**kw):
    base = {"t": 1.0, "wall": 1000.0, "pid": 1, "proc": "publisher-0", "role": "publisher", "kind": "publish.invoke",
            "id": "p0-0"}
    base.update(kw)
    return base


def test_valid_event_has_no_problems():
    assert validate_event(ev()) == []


def test_each_kind_of_bad_event_is_named():
    assert validate_event([1]) == ["event is not a JSON object: [1]"]
    assert "missing field 't'" in validate_event({k: v for k, v in ev().items() if k != "t"})
    assert validate_event(ev(kind="publish.maybe")) == ["unknown kind 'publish.maybe'"]
    assert validate_event(ev(role="consumer")) == ["kind 'publish.invoke' cannot be written by role 'consumer'"]
    assert validate_event(ev(kind="publish.ok")) == ["publish.ok event missing field 'confirmed'"]
    assert validate_event(ev(id=7)) == ["id must be a string"]


def test_writer_flushes_every_line_and_merge_orders_by_time(tmp_path):
    a = HistoryWriter(tmp_path / "a.jsonl", "publisher-0", "publisher")
    b = HistoryWriter(tmp_path / "b.jsonl", "consumer-0", "consumer")
    a.write("publish.invoke", id="p0-0")
    b.write("deliver", id="p0-0", redelivered=False)
    a.write("publish.ok", id="p0-0", confirmed=True)
    # flushed: readable before close
    assert len((tmp_path / "a.jsonl").read_text().splitlines()) == 2
    a.close()
    b.close()
    events, problems = merge([tmp_path / "a.jsonl", tmp_path / "b.jsonl"], tmp_path / "h.jsonl")
    assert problems == []
    assert [e["kind"] for e in events] == ["publish.invoke", "deliver", "publish.ok"]
    assert [json.loads(line)["kind"] for line in (tmp_path / "h.jsonl").read_text().splitlines()] == \
        ["publish.invoke", "deliver", "publish.ok"]


def test_torn_last_line_and_invalid_events_are_problems_not_crashes(tmp_path):
    p = tmp_path / "x.jsonl"
    p.write_text(json.dumps(ev()) + "\n" + json.dumps(ev(kind="bogus")) + "\n" + '{"t": 1.0, "wal')
    events, problems = read_events(p)
    assert len(events) == 1
    assert len(problems) == 2
    assert "unknown kind 'bogus'" in problems[0]
    assert "unparseable line" in problems[1]


def _events_file(tmp_path, *events):
    p = tmp_path / "h.jsonl"
    p.write_text("".join(json.dumps(e) + "\n" for e in events))
    return read_events(p)


def test_conn_node_is_a_harness_event_naming_the_client_and_its_node(tmp_path):
    good = ev(kind="conn.node", role="harness", proc="consumer-0", node="rabbit-1@localhost")
    del good["id"]
    gone = {**good, "node": None}
    assert validate_event(good) == []
    assert validate_event(gone) == []  # null: that client has no connection any more
    assert validate_event({**good, "role": "consumer"}) == ["kind 'conn.node' cannot be written by role 'consumer'"]
    assert validate_event({k: v for k, v in good.items() if k != "node"}) == ["conn.node event missing field 'node'"]
    assert validate_event({**good, "node": 3}) == [
        "conn.node node must be a string (an Erlang node name) or null, not 3"]
    assert validate_event({**good, "proc": ["x"]}) == ["conn.node proc must be a string (the client's proc), not ['x']"]
    # the block reader (msgspec) and the event-by-event check agree
    events, problems = _events_file(tmp_path, good, gone, {**good, "node": 3}, {**good, "node": True})
    assert [e["node"] for e in events] == ["rabbit-1@localhost", None]
    assert len(problems) == 2 and all("node must be" in p for p in problems)


def test_conn_open_may_carry_the_port_it_reached_as_an_integer(tmp_path):
    opened = ev(kind="conn.open", proc="consumer-0", role="consumer")
    del opened["id"]
    assert validate_event(opened) == []
    assert validate_event({**opened, "port": 5673}) == []
    assert validate_event({**opened, "port": "5673"}) == ["conn.open port must be an integer, not '5673'"]
    assert validate_event({**opened, "port": True}) == ["conn.open port must be an integer, not True"]
    events, problems = _events_file(tmp_path, opened, {**opened, "port": 5673}, {**opened, "port": 1.5},
                                    {**opened, "port": False})
    assert [e.get("port") for e in events] == [None, 5673]
    assert len(problems) == 2
