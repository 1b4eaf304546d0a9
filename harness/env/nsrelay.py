"""A TCP relay whose listening sockets live inside a network namespace, forwarding to the root
namespace's loopback: ``python -m harness.env.nsrelay --netns PATH --to 127.0.0.1:P [--to ...]``.

Why: clients in their own namespace must reach the broker's proxy, which listens on the root
namespace's 127.0.0.1 only. Instead of a veth pair with non-loopback addresses, this process
(in the root namespace) switches its thread to the client namespace just long enough to create
and bind the listening sockets there, then switches back. Sockets keep the namespace they were
created in, so it accepts inside and connects outside. Prints one line "ready PORT [PORT ...]"
(the ports it listens on inside the namespace, in --to order), then relays until SIGTERM.
Backpressure is preserved (awaited drains), so a blackholed client fills kernel buffers instead
of this process's memory.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ctypes
import os
import signal
import socket
import sys

CLONE_NEWNET = 0x40000000


def _setns(fd: int) -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.setns(fd, CLONE_NEWNET) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"setns failed: {os.strerror(err)}")


def listen_in_namespace(netns_path: str, count: int) -> list[socket.socket]:
    """Create ``count`` listening sockets on 127.0.0.1:0 inside the namespace at ``netns_path``."""
    home = os.open("/proc/self/ns/net", os.O_RDONLY)
    target = os.open(netns_path, os.O_RDONLY)
    socks = []
    try:
        _setns(target)
        try:
            for _ in range(count):
                s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                s.bind(("127.0.0.1", 0))
                s.listen(128)
                s.setblocking(False)
                socks.append(s)
        finally:
            _setns(home)
    finally:
        os.close(home)
        os.close(target)
    return socks


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
        if writer.can_write_eof():
            writer.write_eof()
    except (ConnectionError, OSError):
        writer.transport.abort()


async def _serve(sock: socket.socket, host: str, port: int) -> asyncio.base_events.Server:
    async def handle(c_reader: asyncio.StreamReader, c_writer: asyncio.StreamWriter) -> None:
        try:
            u_reader, u_writer = await asyncio.open_connection(host, port)
        except OSError:
            c_writer.transport.abort()
            return
        try:
            await asyncio.gather(_pipe(c_reader, u_writer), _pipe(u_reader, c_writer), return_exceptions=True)
        except asyncio.CancelledError:  # shutting down: drop both sides at once
            for w in (c_writer, u_writer):
                w.transport.abort()
            return
        for w in (c_writer, u_writer):
            with contextlib.suppress(Exception):
                w.close()

    return await asyncio.start_server(handle, sock=sock)


async def main_async(netns: str, targets: list[tuple[str, int]]) -> None:
    socks = listen_in_namespace(netns, len(targets))
    servers = [await _serve(s, h, p) for s, (h, p) in zip(socks, targets, strict=True)]
    print("ready", *(s.getsockname()[1] for s in socks), flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    for srv in servers:
        srv.close()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m harness.env.nsrelay")
    ap.add_argument("--netns", required=True, help="path of the namespace, e.g. /var/run/netns/NAME")
    ap.add_argument("--to", action="append", required=True, help="HOST:PORT in the root namespace (loopback)")
    args = ap.parse_args(argv)
    targets = []
    for t in args.to:
        host, _, port = t.rpartition(":")
        if not host.startswith("127."):
            print(f"refusing non-loopback target {t}", file=sys.stderr)
            return 2
        targets.append((host, int(port)))
    asyncio.run(main_async(args.netns, targets))
    return 0


if __name__ == "__main__":
    sys.exit(main())
