"""Entry point of a reference client process: ``python -m harness.clients NAME --config PATH``.

Wraps a strategy's role function with the protocol's bookends: ``client.start`` first,
``client.exit`` last, exit 0 on "done"/"sigterm", exit 1 when the strategy gave up (raised).
"""

from __future__ import annotations

import argparse
import sys
import traceback

from harness.clients.heartbeat import detection_window
from harness.clients.protocol import ClientContext, load_config
from harness.clients.registry import get


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m harness.clients")
    ap.add_argument("strategy")
    ap.add_argument("--config", default=None)
    args = ap.parse_args(argv)
    cfg = load_config(args.config)
    strategy = get(args.strategy)
    ctx = ClientContext(cfg)
    ctx.install_sigterm()
    heartbeat = cfg.param("heartbeat", strategy.params.get("heartbeat"))
    window = detection_window(strategy.library, heartbeat)
    ctx.event("client.start", library=strategy.library, version=strategy.version, strategy=strategy.name,
              heartbeat_s=heartbeat, heartbeat_window_s=None if window is None else list(window))
    role_fn = getattr(strategy.load(), cfg.role)
    try:
        role_fn(ctx)
    except BaseException as exc:  # noqa: BLE001 - the client gave up: a finding, recorded with its reason
        text = f"{type(exc).__name__}: {exc}"
        # an exception with no message says less than the last error the strategy recorded
        ctx.exit(text, ok=False, error=text if str(exc) else None)
        traceback.print_exc()
        ctx.history.close()
        return 1
    ctx.exit("sigterm" if ctx.stopping.is_set() else "done", ok=True)
    ctx.history.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
