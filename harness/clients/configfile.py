"""Where a client's config file lives, so no secret lands under reports/.

The client protocol (docs/client-protocol.md) hands a client a JSON file holding ``amqp_url``,
credentials included: a client in any language connects with what it reads there. That file is
written to a private per-run directory in the state dir (directory 0700, file 0600, created with
those modes, never widened), passed to the client, and deleted when the client exits. The run's
evidence under ``reports/<run>/config/`` gets a copy with every password in a URL replaced by
``***`` (what the client was told, minus the secret).

A harness killed with SIGKILL cannot delete its private files: the directory is named after the
harness's pid, and the next client start sweeps the directories whose harness is gone.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from harness.env import procs

PRIVATE = "private"


def redact_url(value: str) -> str:
    """``value`` with the password of a URL replaced by ***; anything else unchanged."""
    try:
        parts = urlsplit(value)
        password = parts.password
    except ValueError:
        return value
    if not parts.scheme or password is None:
        return value
    user = parts.username or ""
    host = parts.netloc.rpartition("@")[2]
    return parts._replace(netloc=f"{user}:***@{host}").geturl()


def redacted(data: Any) -> Any:
    """A copy of a JSON-like value with every URL password replaced by ***."""
    if isinstance(data, dict):
        return {k: redacted(v) for k, v in data.items()}
    if isinstance(data, list):
        return [redacted(v) for v in data]
    if isinstance(data, str) and "@" in data:
        return redact_url(data)
    return data


def private_dir(state_dir: Path | None, run_id: str) -> Path:
    """This harness's private directory for ``run_id`` (mode 0700), sweeping dead harnesses' ones.
    Without a state dir (a ClientProcess made by a test): a fresh 0700 temporary directory."""
    if state_dir is None:
        return Path(tempfile.mkdtemp(prefix=f"rabbit-chaos-{run_id[-8:]}-"))
    root = state_dir / PRIVATE
    root.mkdir(mode=0o700, parents=True, exist_ok=True)
    sweep(root)
    path = root / f"{os.getpid()}-{run_id}"
    path.mkdir(mode=0o700, exist_ok=True)
    return path


def sweep(root: Path) -> None:
    """Delete private directories whose harness (the pid their name starts with) is not alive."""
    for d in root.iterdir() if root.is_dir() else []:
        pid = d.name.split("-", 1)[0]
        if pid.isdigit() and int(pid) != os.getpid() and not procs.alive(int(pid)):
            shutil.rmtree(d, ignore_errors=True)


def write(data: dict[str, Any], private: Path, public: Path) -> Path:
    """Write the real config to ``private/<public name>`` (0600) and the redacted copy to
    ``public``; returns the private path, the one to hand the client."""
    path = private / public.name
    with contextlib.suppress(FileNotFoundError):
        path.unlink()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as fh:
        json.dump(data, fh, indent=1)
    public.parent.mkdir(parents=True, exist_ok=True)
    public.write_text(json.dumps(redacted(data), indent=1))
    return path


def discard(path: Path) -> None:
    """Delete a private config (the client has exited) and its directory once empty."""
    with contextlib.suppress(FileNotFoundError):
        path.unlink()
    with contextlib.suppress(OSError):
        path.parent.rmdir()
