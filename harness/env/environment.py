"""One environment per harness session: the broker and the fault proxy server.

Started once (a broker boot costs seconds), shared by every run of the session; each run gets
its own vhost and its own proxies. ``stop()`` removes everything we started; it runs on normal
exit, on Ctrl-C (KeyboardInterrupt unwinds through the context manager) and on SIGTERM (turned
into SystemExit below). A run killed with SIGKILL is cleaned up by the next one (pid records).
"""

from __future__ import annotations

import contextlib
import os
import signal
from pathlib import Path
from types import FrameType

from harness.env.local import DEFAULT_BASE_PORT, LocalBroker
from harness.env.toxiproxy import ToxiproxyClient, ToxiproxyServer, find_or_start_server


def default_state_dir() -> Path:
    return Path(os.environ.get("RABBIT_CHAOS_STATE", ".rabbit-chaos/state")).resolve()


def default_base_port() -> int:
    return int(os.environ.get("RABBIT_CHAOS_BASE_PORT", DEFAULT_BASE_PORT))


def _sigterm_to_exit(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(128 + signum)


class Environment:
    def __init__(self, state_dir: Path | None = None, base_port: int | None = None) -> None:
        self.state_dir = (state_dir or default_state_dir()).resolve()
        self.base_port = base_port or default_base_port()
        self.broker = LocalBroker(self.state_dir / "broker", base_port=self.base_port)
        self.proxy_server: ToxiproxyServer | None = None
        self.toxiproxy: ToxiproxyClient | None = None

    def start(self) -> Environment:
        if signal.getsignal(signal.SIGTERM) in (signal.SIG_DFL, None):
            with contextlib.suppress(ValueError):  # not in the main thread
                signal.signal(signal.SIGTERM, _sigterm_to_exit)
        try:
            self.broker.start()
            self.proxy_server = find_or_start_server(self.state_dir / "proxy", port=self.base_port + 4)
            self.toxiproxy = ToxiproxyClient(self.proxy_server.url)
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        try:
            if self.proxy_server is not None:
                self.proxy_server.stop()
                self.proxy_server = None
        finally:
            self.broker.stop()

    def __enter__(self) -> Environment:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def versions(self) -> dict[str, str | None]:
        v = self.broker.versions()
        v["toxiproxy"] = f"{self.proxy_server.kind} {self.proxy_server.version}" if self.proxy_server else None
        return v
