"""Adding and removing toxics under traffic: the API never hangs (Toxiproxy #159, #558) and no
byte that no toxic asked to drop is lost or reordered."""

from __future__ import annotations

import random
import threading
import time

import pytest
from proxy_testkit import Collector, connect

from harness.env.toxiproxy import ToxiproxyClient

MB = 1024 * 1024


def _churn(api: ToxiproxyClient, name: str, toxics: list[tuple[str, dict, str]], stop: threading.Event,
           latencies: list[float]) -> None:
    rng = random.Random(3)
    while not stop.is_set():
        type_, attrs, stream = rng.choice(toxics)
        t0 = time.monotonic()
        api.add_toxic(name, type_, attrs, stream=stream, name="churn")
        latencies.append(time.monotonic() - t0)
        stop.wait(rng.uniform(0.01, 0.08))
        t0 = time.monotonic()
        api.remove_toxic(name, "churn")
        latencies.append(time.monotonic() - t0)
        stop.wait(rng.uniform(0.0, 0.03))


@pytest.mark.parametrize("size_mb", [8])
def test_bytes_intact_while_toxics_come_and_go(api: ToxiproxyClient, make_proxy, server_kind: str,
                                               size_mb: int) -> None:
    name, port = make_proxy()
    payload = random.Random(11).randbytes(size_mb * MB)
    toxics: list[tuple[str, dict, str]] = [
        ("latency", {"latency": 5, "jitter": 3}, "downstream"),
        ("latency", {"latency": 10}, "upstream"),
        ("slicer", {"average_size": 4096, "size_variation": 1000, "delay": 0}, "downstream"),
        ("bandwidth", {"rate": 20_000}, "upstream"),
        ("slow_close", {"delay": 10}, "downstream"),
        ("noop", {}, "upstream"),
    ]
    if server_kind == "embedded":
        toxics += [("hold", {}, "upstream"), ("hold", {}, "downstream")]
    latencies: list[float] = []
    stop = threading.Event()
    with connect(port, timeout=60) as s:
        collector = Collector(s, len(payload))
        churner = threading.Thread(target=_churn, args=(api, name, toxics, stop, latencies), daemon=True)
        churner.start()
        view = memoryview(payload)
        step = 64 * 1024
        for off in range(0, len(payload), step):  # paced (~2 s in all) so the churn overlaps traffic
            s.sendall(view[off:off + step])
            time.sleep(0.015)
        got = collector.result(timeout=90)
        stop.set()
        churner.join(10)
    assert len(got) == len(payload)
    if got != payload:
        first = next(i for i, (a, b) in enumerate(zip(got, payload, strict=True)) if a != b)
        pytest.fail(f"bytes differ from offset {first}")
    assert len(latencies) >= 20, f"only {len(latencies)} API calls overlapped the traffic"
    assert max(latencies) < 2.0, f"an API call took {max(latencies):.2f}s under traffic"


def test_remove_toxic_while_sender_blocked_does_not_hang(api: ToxiproxyClient, make_proxy) -> None:
    """#159-style: a bandwidth-starved link with a sender blocked behind it; removal returns."""
    name, port = make_proxy()
    api.add_toxic(name, "bandwidth", {"rate": 1}, stream="upstream")
    payload = random.Random(5).randbytes(4 * MB)
    with connect(port, timeout=60) as s:
        collector = Collector(s, len(payload))
        sender = threading.Thread(target=s.sendall, args=(payload,), daemon=True)
        sender.start()
        time.sleep(0.3)  # the thing under test is a call made while traffic is stuck
        t0 = time.monotonic()
        api.remove_toxic(name, "bandwidth_upstream")
        assert time.monotonic() - t0 < 2.0
        assert collector.result(timeout=60) == payload
        sender.join(10)


def test_many_connections_get_new_toxic(api: ToxiproxyClient, make_proxy) -> None:
    name, port = make_proxy()
    socks = [connect(port) for _ in range(20)]
    try:
        for s in socks:
            s.sendall(b"a")
            assert s.recv(1) == b"a"
        api.add_toxic(name, "latency", {"latency": 150})
        t0 = time.monotonic()
        for s in socks:
            s.sendall(b"b")
        for s in socks:
            assert s.recv(1) == b"b"
        assert time.monotonic() - t0 >= 0.13
    finally:
        for s in socks:
            s.close()
