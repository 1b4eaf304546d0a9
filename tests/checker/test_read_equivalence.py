"""The reader returns exactly what the line-by-line ``json.loads`` reader returned
(``history_reference.py``, frozen): the same events (equal values, same order, same types; kind, proc
and id interned) and the same problem messages, for sound files, torn and garbage lines, invalid events of
every kind, odd encodings and line endings. ``iter_history`` and ``merge`` likewise.
"""

from __future__ import annotations

import json
import math
import random
import sys
from pathlib import Path
from typing import Any

import history_reference as ref
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from harness import history
from harness.bench.checker import synthetic
from harness.checker.builder import clean_run


def typed(x: Any) -> Any:
    """Equal is not enough: 1 == 1.0 == True, and -0.0 == 0.0."""
    if isinstance(x, dict):
        return {k: typed(v) for k, v in x.items()} | {"__keys__": list(x)}
    if isinstance(x, list):
        return [typed(v) for v in x]
    if isinstance(x, float):
        return ("float", repr(x))
    return (type(x).__name__, x)


def assert_same_read(path: Path) -> None:
    try:
        old_events, old_problems = ref.read_events(path)
    except Exception as exc:  # noqa: BLE001 - then the new reader must fail the same way
        with pytest.raises(type(exc)) as new_exc:
            history.read_events(path)
        assert str(new_exc.value) == str(exc)
        return
    new_events, new_problems = history.read_events(path)
    assert new_problems == old_problems
    assert typed(new_events) == typed(old_events)
    for ev in new_events:
        for key in ("kind", "proc", "id"):  # what the checker compares and hashes
            v = ev.get(key)
            if type(v) is str:
                assert v is sys.intern(v), (key, v)


def lines_of(events: list[Any]) -> list[str]:
    return [json.dumps(ev, separators=(",", ":")) for ev in events]


def write(tmp_path: Path, lines: list[str] | bytes, name: str = "h.jsonl", end: str = "\n") -> Path:
    p = tmp_path / name
    p.write_bytes(lines if isinstance(lines, bytes) else "".join(x + end for x in lines).encode())
    return p


def good() -> list[str]:
    return lines_of(clean_run(2, 2, 3).finish().events())


@pytest.mark.parametrize("n", [0, 10, 3000, 20_000])
def test_sound_files(tmp_path: Path, n: int) -> None:
    assert_same_read(write(tmp_path, lines_of(synthetic(n, seed=n)[:n] if n < 40 else synthetic(n, seed=n))))


BAD_LINES = {
    "torn": '{"t": 1.0, "wal',
    "garbage": "garbage {",
    "array": "[1, 2]",
    "string": '"just a string"',
    "number": "5",
    "null": "null",
    "unknown_kind": '{"t":1,"wall":2,"pid":3,"proc":"p","role":"publisher","kind":"bogus"}',
    "missing_base": '{"t":1,"wall":2,"pid":3,"role":"publisher","kind":"publish.invoke","id":"a"}',
    "missing_all": "{}",
    "missing_required": '{"t":1,"wall":2,"pid":3,"proc":"p","role":"publisher","kind":"publish.ok","id":"a"}',
    "wrong_role": '{"t":1,"wall":2,"pid":3,"proc":"p","role":"consumer","kind":"publish.invoke","id":"a"}',
    "role_and_missing": '{"t":1,"wall":2,"pid":3,"proc":"p","role":"harness","kind":"deliver","id":"a"}',
    "t_string": '{"t":"1","wall":2,"pid":3,"proc":"p","role":"publisher","kind":"publish.invoke","id":"a"}',
    "wall_null": '{"t":1,"wall":null,"pid":3,"proc":"p","role":"publisher","kind":"publish.invoke","id":"a"}',
    "id_int": '{"t":1,"wall":2,"pid":3,"proc":"p","role":"publisher","kind":"publish.invoke","id":7}',
    "id_null": '{"t":1,"wall":2,"pid":3,"proc":"p","role":"harness","kind":"run.end","id":null}',
    "kind_list": '{"t":1,"wall":2,"pid":3,"proc":"p","role":"publisher","kind":["x"]}',
    "role_dict": '{"t":1,"wall":2,"pid":3,"proc":"p","role":{},"kind":"run.end"}',
    "proc_int": '{"t":1,"wall":2,"pid":3,"proc":5,"role":"harness","kind":"run.end"}',
    "proc_null": '{"t":1,"wall":2,"pid":3,"proc":null,"role":"harness","kind":"run.end"}',
    "t_bool": '{"t":true,"wall":2,"pid":3,"proc":"p","role":"harness","kind":"run.end"}',
    "nan": '{"t":NaN,"wall":Infinity,"pid":3,"proc":"p","role":"harness","kind":"run.end"}',
    "big_numbers": '{"t":1e400,"wall":123456789012345678901234567890,"pid":3,"proc":"p","role":"harness",'
                   '"kind":"run.end"}',
    "surrogate": '{"t":1,"wall":2,"pid":3,"proc":"\\ud800","role":"harness","kind":"run.end"}',
    "blank": "   ",
    "empty": "",
    "nbsp": "\u00a0",
    "two_values": "{} {}",
    "trailing_comma": '{"t":1,}',
    "long_garbage": "x" * 200,
    "unicode": '{"t":1,"wall":2,"pid":3,"proc":"pé","role":"harness","kind":"run.end","note":"ünï"}',
    "duplicate_key": '{"t":1,"t":2,"wall":2,"pid":3,"proc":"p","role":"harness","kind":"run.end"}',
}


@pytest.mark.parametrize("where", ["first", "middle", "last"])
@pytest.mark.parametrize("bad", list(BAD_LINES))
def test_a_bad_line_anywhere(tmp_path: Path, bad: str, where: str) -> None:
    lines = good()
    at = {"first": 0, "middle": len(lines) // 2, "last": len(lines)}[where]
    lines.insert(at, BAD_LINES[bad])
    assert_same_read(write(tmp_path, lines))
    if where == "last":  # no newline after it: a torn last line
        p = tmp_path / "torn.jsonl"
        p.write_text("\n".join(lines))
        assert_same_read(p)


def test_every_bad_line_at_once(tmp_path: Path) -> None:
    lines = good()
    for k, bad in enumerate(BAD_LINES.values()):
        lines.insert(2 * k, bad)
    assert_same_read(write(tmp_path, lines))


def test_invalid_events_in_a_large_file(tmp_path: Path) -> None:
    lines = lines_of(synthetic(20_000, seed=7))
    lines[5000] = BAD_LINES["unknown_kind"]
    lines[12_000] = BAD_LINES["wrong_role"]
    lines[12_001] = BAD_LINES["garbage"]
    assert_same_read(write(tmp_path, lines))


@pytest.mark.parametrize("end", ["\r\n", "\r", "\n\n", "\n \n"])
def test_line_endings(tmp_path: Path, end: str) -> None:
    lines = good()
    lines[3] = BAD_LINES["garbage"]
    assert_same_read(write(tmp_path, lines, end=end))


@pytest.mark.parametrize("raw", [
    b"",
    b"\n",
    b"\n\n\n",
    b"\xef\xbb\xbf" + good()[0].encode() + b"\n",  # a byte-order mark
    good()[0].encode() + b"\n" + b'{"t":1,"wall":2,"pid":3,"proc":"\xff\xfe","role":"harness","kind":"run.end"}\n',
    good()[0].encode() + b"\n\xff\xff\xff\n",
    good()[0].encode() + b"\r" + good()[1].encode(),
    b'{"a":"\xed\xa0\x80"}\n',
])
def test_odd_bytes(tmp_path: Path, raw: bytes) -> None:
    assert_same_read(write(tmp_path, raw))


@settings(max_examples=200, deadline=None)
@given(st.lists(st.one_of(
    st.sampled_from(list(BAD_LINES.values())),
    st.sampled_from(good()),
    st.floats(allow_nan=True, allow_infinity=True).map(
        lambda x: json.dumps({"t": x, "wall": -x, "pid": 1, "proc": "p", "role": "harness", "kind": "run.end"})),
    st.text(max_size=20),
), max_size=30), st.booleans())
def test_random_files(tmp_path_factory: pytest.TempPathFactory, lines: list[str], torn: bool) -> None:
    p = tmp_path_factory.mktemp("r") / "h.jsonl"
    p.write_text("\n".join(lines) + ("" if torn else "\n"), encoding="utf-8", errors="surrogatepass")
    assert_same_read(p)


def test_floats_decode_exactly_as_json_loads(tmp_path: Path) -> None:
    rnd = random.Random(1)
    xs = [rnd.uniform(0, 1e6) for _ in range(3000)]
    xs += [rnd.random() * 10.0 ** rnd.randint(-300, 300) for _ in range(3000)]
    xs += [math.ulp(1.0), 5e-324, 1.7976931348623157e308, 2.2250738585072014e-308, 0.1, 1 / 3]
    lines = [json.dumps({"t": x, "wall": x, "pid": 1, "proc": "p", "role": "harness", "kind": "run.end"}) for x in xs]
    lines += [f'{{"t":{s},"wall":0,"pid":1,"proc":"p","role":"harness","kind":"run.end"}}'
              for s in ("1.00000000000000011102230246251565404236316680908203125", "9007199254740993", "1e23",
                        "8.988465674311579e307", "4.9406564584124654e-324", "123.456e-2", "0e0", "-0")]
    assert_same_read(write(tmp_path, lines))


def test_merge_and_iter_history(tmp_path: Path) -> None:
    evs = synthetic(3000, seed=2)
    a = write(tmp_path, lines_of([e for e in evs if e["role"] == "publisher"]), "a.jsonl")
    b = write(tmp_path, [*lines_of([e for e in evs if e["role"] != "publisher"]), BAD_LINES["torn"]], "b.jsonl")
    old = ref.merge([a, b], tmp_path / "old.jsonl")
    new = history.merge([a, b], tmp_path / "new.jsonl")
    assert typed(new[0]) == typed(old[0]) and new[1] == old[1]
    assert (tmp_path / "new.jsonl").read_bytes() == (tmp_path / "old.jsonl").read_bytes()
    merged = tmp_path / "new.jsonl"
    assert typed(list(history.iter_history(merged))) == typed(list(ref.iter_history(merged)))
    odd = write(tmp_path, ['{"t":NaN,"kind":"x"}', "", "  ", "[1]"], "odd.jsonl")
    assert typed(list(history.iter_history(odd))) == typed(list(ref.iter_history(odd)))
    bad = write(tmp_path, ['{"t":1}', "garbage"], "bad.jsonl")
    with pytest.raises(json.JSONDecodeError) as new_err:
        list(history.iter_history(bad))
    with pytest.raises(json.JSONDecodeError) as old_err:
        list(ref.iter_history(bad))
    assert str(new_err.value) == str(old_err.value)
