"""``python -m harness.proxy -host 127.0.0.1 -port 8474``: start it as toxiproxy-server is started.

Flags are toxiproxy-server's (Go's flag package accepts ``-host`` and ``--host`` alike):
``-host``, ``-port``, ``-config`` (a JSON list of proxies, as POST /populate), ``-seed`` and
``-version``; ``-runtime-metrics``/``-proxy-metrics`` are accepted and ignored (no /metrics).
SIGTERM or SIGINT stops every proxy and exits 0.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import random
import signal
import sys

from harness.proxy import VERSION
from harness.proxy.api import Api
from harness.proxy.http import Request, serve
from harness.proxy.toxics import load_all

log = logging.getLogger("harness.proxy")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m harness.proxy", allow_abbrev=False,
                                description="Toxiproxy-API-compatible proxy (rabbit-chaos embedded).")
    p.add_argument("-host", "--host", default="localhost", help="host for the API to listen on")
    p.add_argument("-port", "--port", default="8474", help="port for the API to listen on")
    p.add_argument("-config", "--config", default="", help="JSON file of proxies to create at start")
    p.add_argument("-seed", "--seed", type=int, default=None, help="seed for toxicity and jitter")
    p.add_argument("-version", "--version", action="store_true", help="print the version and exit")
    p.add_argument("-runtime-metrics", "--runtime-metrics", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("-proxy-metrics", "--proxy-metrics", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("-log-level", "--log-level", default="info", help="debug, info, warning, error")
    return p.parse_args(argv)


async def run(host: str, port: int, config: str = "") -> None:
    """Serve the API until SIGTERM/SIGINT, then stop every proxy."""
    load_all()
    api = Api()
    server = await serve(api.handle, host, port)
    log.info("Starting Toxiproxy-compatible HTTP server on %s:%s (version %s)", host, port, VERSION)
    if config:
        with open(config, "rb") as fh:
            body = fh.read()
        resp = await api.populate(Request("POST", "/populate", {}, body))
        log.info("populate from %s: %s %s", config, resp.status, json.loads(resp.body or b"null"))
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    log.info("shutting down")
    server.close()
    api.collection.clear()
    with contextlib.suppress(Exception):
        await asyncio.wait_for(server.wait_closed(), 2)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.version:
        print(VERSION)
        return 0
    logging.basicConfig(level=args.log_level.upper(), stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if args.seed is not None:
        random.seed(args.seed)
    try:
        port = int(args.port)
    except ValueError:
        print(f"invalid port {args.port!r}", file=sys.stderr)
        return 2
    try:
        import uvloop
    except ImportError:  # plain asyncio works, just slower
        asyncio.run(run(args.host, port, args.config))
    else:
        uvloop.run(run(args.host, port, args.config))
    return 0


if __name__ == "__main__":
    sys.exit(main())
