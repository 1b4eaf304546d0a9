"""Each toxic's observable effect through real sockets (generous tolerances: 2 noisy cores)."""

from __future__ import annotations

import time

import pytest
from proxy_testkit import (
    Collector,
    closed_how,
    connect,
    fill_until_blocked,
    read_until_closed,
    readable_within,
    recv_exact,
    round_trip,
)

from harness.env.toxiproxy import BadRequestError, ToxiproxyClient


def test_no_toxic_is_fast(make_proxy) -> None:
    _, port = make_proxy()
    with connect(port) as s:
        assert min(round_trip(s) for _ in range(5)) < 0.05


def test_latency_downstream(api: ToxiproxyClient, make_proxy) -> None:
    name, port = make_proxy()
    api.add_toxic(name, "latency", {"latency": 200})
    with connect(port) as s:
        assert round_trip(s) >= 0.18


def test_latency_applies_to_open_connection_and_lifts(api: ToxiproxyClient, make_proxy) -> None:
    name, port = make_proxy()
    with connect(port) as s:
        assert round_trip(s) < 0.15
        api.add_toxic(name, "latency", {"latency": 200}, stream="upstream")
        assert round_trip(s) >= 0.18
        api.remove_toxic(name, "latency_upstream")
        assert min(round_trip(s) for _ in range(3)) < 0.15


def test_toxicity_zero_never_applies(api: ToxiproxyClient, make_proxy) -> None:
    name, port = make_proxy()
    api.add_toxic(name, "latency", {"latency": 500}, toxicity=0.0)
    with connect(port) as s:
        assert round_trip(s) < 0.3


def test_bandwidth(api: ToxiproxyClient, make_proxy) -> None:
    name, port = make_proxy()
    api.add_toxic(name, "bandwidth", {"rate": 200})  # KB/s
    payload = bytes(100_000)
    with connect(port) as s:
        assert round_trip(s, payload) >= 0.4  # 100 KB at 200 KB/s = 0.5 s


def test_slicer_cuts_and_keeps_bytes(api: ToxiproxyClient, make_proxy) -> None:
    name, port = make_proxy()
    api.add_toxic(name, "slicer", {"average_size": 100, "size_variation": 10, "delay": 10_000})
    payload = bytes(range(256)) * 8  # 2048 bytes: about 32 slices, 10 ms apart
    with connect(port) as s:
        t0 = time.monotonic()
        s.sendall(payload)
        got, reads = bytearray(), 0
        while len(got) < len(payload):
            chunk = s.recv(65536)
            assert chunk
            got += chunk
            reads += 1
        elapsed = time.monotonic() - t0
    assert bytes(got) == payload
    assert reads >= 5 and elapsed >= 0.15


def test_slow_close(api: ToxiproxyClient, make_proxy, closer) -> None:
    name, port = make_proxy(closer.addr)
    api.add_toxic(name, "slow_close", {"delay": 300})
    t0 = time.monotonic()
    with connect(port) as s:
        assert closed_how(s) in ("eof", "reset")
    assert time.monotonic() - t0 >= 0.28


def test_without_slow_close_the_close_is_quick(make_proxy, closer) -> None:
    _, port = make_proxy(closer.addr)
    t0 = time.monotonic()
    with connect(port) as s:
        assert closed_how(s) in ("eof", "reset")
    assert time.monotonic() - t0 < 0.25


def test_timeout_zero_swallows_then_removal_closes(api: ToxiproxyClient, make_proxy) -> None:
    name, port = make_proxy()
    with connect(port) as s:
        assert round_trip(s) < 1
        api.add_toxic(name, "timeout", {"timeout": 0})
        s.sendall(b"lost")
        assert not readable_within(s, 0.4)  # dropped, and the connection stays open
        api.remove_toxic(name, "timeout_downstream")
        data, how = read_until_closed(s, timeout=5)  # Toxiproxy closes what the toxic held
        assert data == b"" and how in ("eof", "reset")


def test_timeout_closes_idle_connection(api: ToxiproxyClient, make_proxy) -> None:
    name, port = make_proxy()
    api.add_toxic(name, "timeout", {"timeout": 300})
    with connect(port) as s:
        t0 = time.monotonic()
        s.sendall(b"x")  # dropped
        assert closed_how(s, timeout=5) in ("eof", "reset")
        assert 0.28 <= time.monotonic() - t0 < 4


def test_reset_peer_sends_rst(api: ToxiproxyClient, make_proxy) -> None:
    name, port = make_proxy()
    api.add_toxic(name, "reset_peer", {"timeout": 0})
    with connect(port) as s:
        s.sendall(b"x")
        assert closed_how(s) == "reset"


def test_reset_peer_closes_an_already_open_connection_with_fin(api: ToxiproxyClient, make_proxy) -> None:
    """Toxiproxy 2.12 sets SO_LINGER 0 only when a connection's links start, so a connection that
    was open before reset_peer was added gets a FIN (a clean EOF), not an RST."""
    name, port = make_proxy()
    with connect(port) as s:
        round_trip(s)  # the connection is up, its links started without the toxic
        api.add_toxic(name, "reset_peer", {"timeout": 0})
        s.sendall(b"x")
        assert closed_how(s) == "eof"


def test_reset_peer_connections_opened_under_it_stay_abortive(api: ToxiproxyClient, make_proxy) -> None:
    """The linger is set when a connection opens under a reset_peer toxic (whatever its toxicity)
    and stays: after the toxic is gone, closing that connection (here: the proxy disabled) is still
    an RST, while a connection opened before the toxic gets a FIN."""
    name, port = make_proxy()
    with connect(port) as before:
        round_trip(before)
        api.add_toxic(name, "reset_peer", {"timeout": 0}, toxicity=0.0)
        with connect(port) as under:
            round_trip(under)  # toxicity 0: never fires, but the connection opened under it
            api.remove_toxic(name, "reset_peer_downstream")
            round_trip(under)
            api.set_enabled(name, False)
            assert closed_how(under) == "reset"
            assert closed_how(before) == "eof"


def test_reset_peer_after_timeout(api: ToxiproxyClient, make_proxy) -> None:
    name, port = make_proxy()
    api.add_toxic(name, "reset_peer", {"timeout": 300})
    with connect(port) as s:
        t0 = time.monotonic()
        s.sendall(b"x")
        assert closed_how(s) == "reset"
        assert time.monotonic() - t0 >= 0.28


def test_limit_data(api: ToxiproxyClient, make_proxy) -> None:
    name, port = make_proxy()
    api.add_toxic(name, "limit_data", {"bytes": 1000})
    payload = bytes(range(250)) * 20  # 5000 bytes
    with connect(port) as s:
        s.sendall(payload)
        data, how = read_until_closed(s)
    assert data == payload[:1000]
    assert how in ("eof", "reset")


def _packet_loss_or_skip(api: ToxiproxyClient, name: str, attributes: dict) -> None:
    try:
        api.add_toxic(name, "packet_loss", attributes)
    except BadRequestError as exc:
        if "invalid toxic type" in exc.body:
            pytest.skip("this Toxiproxy predates the packet_loss toxic (PR #739)")
        raise


def test_packet_loss_all_then_none(api: ToxiproxyClient, make_proxy) -> None:
    name, port = make_proxy()
    _packet_loss_or_skip(api, name, {"loss_rate": 1.0})
    with connect(port) as s:
        s.sendall(b"gone")
        assert not readable_within(s, 0.4)
        api.update_toxic(name, "packet_loss_downstream", {"loss_rate": 0.0})
        assert round_trip(s, b"kept") < 1


def test_packet_loss_drops_whole_chunks(api: ToxiproxyClient, make_proxy) -> None:
    name, port = make_proxy()
    _packet_loss_or_skip(api, name, {"loss_rate": 0.5})
    got = bytearray()
    with connect(port) as s:
        for i in range(40):  # one small message per read, so each is one chunk
            s.sendall(b"%03d;" % i)
            if readable_within(s, 0.05):
                got += s.recv(65536)
        while readable_within(s, 0.3):
            got += s.recv(65536)
    messages = [m for m in bytes(got).split(b";") if m]
    assert all(len(m) == 3 for m in messages)  # whole messages or nothing
    assert 2 <= len(messages) <= 38


def test_hold_blocks_sender_and_resumes_intact(api: ToxiproxyClient, make_proxy, embedded_only) -> None:
    name, port = make_proxy()
    with connect(port) as s:
        assert round_trip(s) < 1
        api.add_toxic(name, "hold", stream="upstream")
        sent = fill_until_blocked(s)  # the sender blocks: nothing is read past the proxy
        assert len(sent) > 0
        assert not readable_within(s, 0.2)
        collector = Collector(s, len(sent))
        api.remove_toxic(name, "hold_upstream")  # heal: nothing lost, nothing closed
        assert collector.result(timeout=30) == sent
        assert round_trip(s) < 1


def test_hold_both_ways_then_heal(api: ToxiproxyClient, make_proxy, embedded_only) -> None:
    name, port = make_proxy()
    with connect(port) as s:
        api.add_toxic(name, "hold", stream="upstream")
        api.add_toxic(name, "hold", stream="downstream")
        s.sendall(b"during partition")
        assert not readable_within(s, 0.3)
        api.remove_toxic(name, "hold_upstream")
        assert not readable_within(s, 0.3)  # the echo is held on the way back
        api.remove_toxic(name, "hold_downstream")
        assert recv_exact(s, 16) == b"during partition"
