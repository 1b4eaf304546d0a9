"""How transparent is the proxy? Throughput and latency direct vs through it, and a soak.

Functions only; the CLI (``rabbit-chaos bench proxy``) wires them in. Each starts what it needs
(our embedded server unless ``url`` names one, a local upstream on 127.0.0.1) and stops it.
The goal set in DESIGN.md: AMQP confirmed-publish throughput through the proxy / direct >= 0.95
(real Toxiproxy 2.12 measured 0.87-0.92 on the same machine kind) -- for a publisher that keeps a
window of confirms in flight; the one-confirm-at-a-time ratio is reported too, as the proxy's
added round-trip latency (see proxy_amqp.py for why the two differ).
"""

from __future__ import annotations

import contextlib
import os
import random
import socket
import statistics
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from harness.bench.proxy_amqp import publish_sync, publish_window
from harness.env.toxiproxy import ToxiproxyClient, find_or_start_server

BLOCK = 1024 * 1024


# -- helpers ---------------------------------------------------------------------------------
@contextlib.contextmanager
def _server(url: str | None) -> Iterator[ToxiproxyClient]:
    if url:
        with ToxiproxyClient(url) as client:
            yield client
        return
    with tempfile.TemporaryDirectory(prefix="rc-bench-") as tmp, \
            find_or_start_server(Path(tmp), prefer="embedded") as server, server.client() as client:
        yield client


@contextlib.contextmanager
def _proxy(client: ToxiproxyClient, upstream: str, name: str) -> Iterator[int]:
    name = f"{name}_{os.getpid()}_{random.randrange(1 << 30)}"
    created = client.create_proxy(name, "127.0.0.1:0", upstream)
    try:
        yield int(created["listen"].rsplit(":", 1)[1])
    finally:
        client.delete_proxy(name, missing_ok=True)


class _Upstream:
    """Sink (counts bytes) or echo server on 127.0.0.1, one thread per connection."""

    def __init__(self, echo: bool) -> None:
        self.echo = echo
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.addr = f"127.0.0.1:{self.sock.getsockname()[1]}"
        self.received = 0
        self._lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        buf = bytearray(BLOCK)
        view = memoryview(buf)
        with conn:
            try:
                while n := conn.recv_into(buf):
                    if self.echo:
                        conn.sendall(view[:n])
                    else:
                        with self._lock:
                            self.received += n
            except OSError:
                return

    def close(self) -> None:
        self.sock.close()


def _tcp_throughput(port: int, sink: _Upstream, seconds: float) -> float:
    """MB/s (1 MB = 1e6 bytes) received by ``sink`` from a bulk sender on ``port``."""
    block = bytes(BLOCK)
    with socket.create_connection(("127.0.0.1", port)) as s:
        s.sendall(block)  # warm-up, and wait for the path to be up
        start_count, t0 = sink.received, time.monotonic()
        while time.monotonic() - t0 < seconds:
            s.sendall(block)
        elapsed = time.monotonic() - t0
        got = sink.received - start_count
    return got / elapsed / 1e6


def _rtt_us(port: int, n: int = 2000) -> float:
    """Median microseconds for 1 byte to go to an echo upstream and back."""
    times = []
    with socket.create_connection(("127.0.0.1", port)) as s:
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        for _ in range(n):
            t0 = time.perf_counter()
            s.sendall(b"x")
            s.recv(1)
            times.append(time.perf_counter() - t0)
    return statistics.median(times) * 1e6


# -- the benchmarks ----------------------------------------------------------------------------
def bench_tcp(seconds: float = 5.0, url: str | None = None) -> dict[str, Any]:
    """Bulk TCP MB/s direct vs through the proxy (no toxics), and small round-trip time."""
    sink, echo = _Upstream(echo=False), _Upstream(echo=True)
    try:
        with _server(url) as client, _proxy(client, sink.addr, "bench_tcp") as pport, \
                _proxy(client, echo.addr, "bench_rtt") as eport:
            half = seconds / 2
            direct = _tcp_throughput(int(sink.addr.rsplit(":", 1)[1]), sink, half)
            proxied = _tcp_throughput(pport, sink, half)
            rtt_direct = _rtt_us(int(echo.addr.rsplit(":", 1)[1]))
            rtt_proxied = _rtt_us(eport)
            version = client.version()
    finally:
        sink.close()
        echo.close()
    return {"server_version": version, "seconds": seconds,
            "direct_mb_s": round(direct, 1), "proxied_mb_s": round(proxied, 1),
            "ratio": round(proxied / direct, 3) if direct else None,
            "rtt_direct_us": round(rtt_direct, 1), "rtt_proxied_us": round(rtt_proxied, 1),
            "rtt_added_us": round(rtt_proxied - rtt_direct, 1)}


def bench_amqp(amqp_host: str, amqp_port: int, seconds: float = 10.0, url: str | None = None,
               window: int = 64) -> dict[str, Any]:
    """pika publishing with confirms, direct vs through the proxy, two ways (see
    :mod:`harness.bench.proxy_amqp`): ``window`` (``window`` publishes in flight: throughput, the
    goal's ratio) and ``sync`` (one confirm at a time: the proxy's added round-trip latency).
    Short rounds alternate the paths and the modes; each ratio is the median of per-round
    ratios, so a neighbour's CPU burst skews one round, not all.
    """
    rounds = max(2, int(seconds // 4))
    per_run = seconds / (4 * rounds)
    modes = {"window": lambda h, p: publish_window(h, p, per_run, window),
             "sync": lambda h, p: publish_sync(h, p, per_run)}
    with _server(url) as client, _proxy(client, f"{amqp_host}:{amqp_port}", "bench_amqp") as pport:
        runs: dict[str, dict[str, list[dict[str, float]]]] = {m: {"direct": [], "proxied": []} for m in modes}
        for _ in range(rounds):
            for mode, run in modes.items():
                runs[mode]["direct"].append(run(amqp_host, amqp_port))
                runs[mode]["proxied"].append(run("127.0.0.1", pport))
        version = client.version()

    def merged(samples: list[dict[str, float]]) -> dict[str, float]:
        return {k: round(statistics.median(r[k] for r in samples), 3) for k in samples[0]}

    out: dict[str, Any] = {"server_version": version, "seconds": seconds, "rounds": rounds, "window": window}
    for mode, paths in runs.items():
        ratios = [p["msg_s"] / d["msg_s"] for d, p in zip(paths["direct"], paths["proxied"], strict=True)
                  if d["msg_s"]]
        out[mode] = {"direct": merged(paths["direct"]), "proxied": merged(paths["proxied"]),
                     "ratio": round(statistics.median(ratios), 3) if ratios else None,
                     "round_ratios": [round(r, 3) for r in ratios]}
    out["ratio"] = out["window"]["ratio"]  # the goal's number (>= 0.95)
    return out


# -- soak ------------------------------------------------------------------------------------
_SOAK_TOXICS: list[tuple[str, dict[str, Any], str]] = [
    ("latency", {"latency": 20, "jitter": 10}, "downstream"),
    ("latency", {"latency": 5}, "upstream"),
    ("bandwidth", {"rate": 5000}, "downstream"),
    ("slicer", {"average_size": 512, "size_variation": 128, "delay": 100}, "upstream"),
    ("slow_close", {"delay": 50}, "downstream"),
    ("noop", {}, "upstream"),
]


def _fd_count() -> int:
    try:
        return len(os.listdir("/proc/self/fd"))
    except OSError:
        return -1


def soak(seconds: float = 60.0, url: str | None = None, connections: int = 4,
         include_hold: bool = True) -> dict[str, Any]:
    """Traffic through ``connections`` echo connections while a toxic is added and removed
    every second. Reports the slowest API call, whether every byte came back intact, and the
    server's task/connection/fd counts before and after (``/__debug/stats``, ours only), plus
    this process's fd count: leaks show as counts that do not return to where they started."""
    echo = _Upstream(echo=True)
    my_fds_before = _fd_count()
    result: dict[str, Any] = {"seconds": seconds, "connections": connections}
    try:
        with _server(url) as client, _proxy(client, echo.addr, "soak") as port:
            name = next(n for n, p in client.proxies().items()
                        if p["listen"].endswith(f":{port}"))
            embedded = client.stats() is not None
            result["stats_before"] = client.stats()
            toxics = list(_SOAK_TOXICS)
            if include_hold and embedded:
                toxics += [("hold", {}, "upstream"), ("hold", {}, "downstream")]
            stop = threading.Event()
            outcomes: list[str] = []
            pumps = [threading.Thread(target=_pump, args=(port, stop, outcomes, i), daemon=True)
                     for i in range(connections)]
            for t in pumps:
                t.start()
            api_max, calls = 0.0, 0
            rng = random.Random(1)
            t_end = time.monotonic() + seconds
            while time.monotonic() < t_end:
                type_, attrs, stream = rng.choice(toxics)
                for adding in (True, False):
                    t0 = time.perf_counter()
                    if adding:
                        client.add_toxic(name, type_, attrs, stream=stream, name="soak")
                    else:
                        client.remove_toxic(name, "soak")
                    api_max = max(api_max, time.perf_counter() - t0)
                    calls += 1
                    time.sleep(0.5)  # the soak's own rhythm: one toxic change per second
            stop.set()
            for t in pumps:
                t.join(30)
            result["stats_after"] = _settled_stats(client) if embedded else None
    finally:
        echo.close()
    result.update({"api_calls": calls, "api_max_ms": round(api_max * 1e3, 2),
                   "pumps": outcomes, "intact": all(o.startswith("ok") for o in outcomes),
                   "client_fds_before": my_fds_before, "client_fds_after": _fd_count()})
    return result


def _settled_stats(client: ToxiproxyClient, timeout: float = 10.0) -> dict[str, Any] | None:
    """Stats once the server has noticed every client close (connections back to zero)."""
    deadline = time.monotonic() + timeout
    stats = client.stats()
    while stats and stats.get("connections") and time.monotonic() < deadline:
        time.sleep(0.1)
        stats = client.stats()
    return stats


def _pump(port: int, stop: threading.Event, outcomes: list[str], seed: int) -> None:
    """Send a known pattern and check the echo byte for byte until ``stop``."""
    rng = random.Random(seed)
    sent = received = 0
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=30) as s:
            while not stop.is_set():
                msg = rng.randbytes(rng.randint(1, 64 * 1024))
                s.sendall(msg)
                got = bytearray()
                while len(got) < len(msg):
                    chunk = s.recv(len(msg) - len(got))
                    if not chunk:
                        raise EOFError("proxy closed the connection")
                    got += chunk
                if got != msg:
                    raise AssertionError(f"corrupted echo after {received} bytes")
                sent += len(msg)
                received += len(got)
        outcomes.append(f"ok {received} bytes")
    except (OSError, EOFError, AssertionError) as exc:
        outcomes.append(f"failed after {received} bytes: {exc}")
