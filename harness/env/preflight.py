"""Checks made before anything boots, so a user's mistake costs no broker boot and ends in one
message (exit 2 in the CLI) instead of a traceback minutes later.

- :func:`probe_writable`: a directory we will write to (reports, state) can be created and
  written -- not a path under a file, not on a read-only filesystem.
- :func:`check_proxy_support`: the faults asked for exist on the Toxiproxy server this session
  will use; ``partition`` and ``packet-loss`` are toxics only our embedded proxy has.

Port checks live with the processes that listen (:func:`harness.env.procs.ensure_ports_free`).
"""

from __future__ import annotations

import contextlib
import errno
import os
from collections.abc import Iterable
from pathlib import Path

from harness.errors import ChaosError
from harness.faults.base import Fault


def probe_writable(path: Path, what: str, flag: str) -> None:
    """Create ``path`` (and parents) and write then remove a probe file in it; a ChaosError naming
    the path, the reason and the flag to change it when that fails."""
    path = Path(path)
    probe = path / f".rabbit-chaos-probe-{os.getpid()}"
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe.write_bytes(b"probe\n")
    except OSError as exc:
        raise ChaosError(f"the {what} {path} is not writable: {_why(path, exc)}",
                         f"pass a writable directory with {flag}") from None
    finally:
        with contextlib.suppress(OSError):
            probe.unlink()


def _why(path: Path, exc: OSError) -> str:
    if isinstance(exc, (FileExistsError, NotADirectoryError)):
        blocker = next((p for p in [path, *path.parents] if p.exists() and not p.is_dir()), None)
        return f"{blocker} is a file, not a directory" if blocker else "a part of the path is a file"
    if exc.errno == errno.EROFS:
        return "it is on a read-only filesystem"
    if exc.errno in (errno.EACCES, errno.EPERM):
        return "permission denied"
    return exc.strerror or str(exc)


def check_proxy_support(faults: Iterable[Fault], server: str | None) -> None:
    """Refuse, before boot, faults that need a toxic only our embedded proxy implements when the
    session will use a real Toxiproxy (``server`` describes it, None: our embedded proxy)."""
    from harness.env.toxiproxy import EMBEDDED_ONLY_TOXICS

    if server is None:
        return
    for fault in faults:
        toxic = getattr(fault, "toxic_type", "")
        if toxic in EMBEDDED_ONLY_TOXICS:
            raise ChaosError(
                f"fault {fault.name!r} needs the {toxic!r} toxic, which only rabbit-chaos's embedded proxy "
                f"has; this session would use a real Toxiproxy ({server})",
                "unset TOXIPROXY_URL and TOXIPROXY_SERVER (and take toxiproxy-server off PATH) to use the "
                "embedded proxy, or choose another fault")
