"""Fakes shared by test packages (``tests`` is on pytest's ``pythonpath``)."""

from __future__ import annotations

from typing import Any

from harness.env.backend import NullBackend


class BootlessEnv:
    """An Environment that boots nothing: for CLI tests whose cells are faked (matrix tables,
    shards, exit codes). Its broker is the contract's NullBackend, so code that reads the
    backend (boot time, versions) sees the same members a real one has."""

    def __init__(self) -> None:
        self.broker = NullBackend()
        self.broker.boot_s = 0.0

    def start(self) -> BootlessEnv:
        return self

    def stop(self) -> None:
        pass

    def versions(self) -> dict[str, str]:
        return {"broker": "test"}


def bootless_cli(monkeypatch: Any, width: int = 80) -> None:
    """Make ``harness.cli`` boot nothing and print plain text ``width`` columns wide (the matrix
    table's 80-column promise is tested at 80): no Toxiproxy from the caller's environment, a
    :class:`BootlessEnv`, a colourless console."""
    from rich.console import Console

    from harness import cli

    for var in ("TOXIPROXY_URL", "TOXIPROXY_SERVER"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setattr(cli, "_environment", lambda cfg: BootlessEnv())
    monkeypatch.setattr(cli, "console", Console(width=width, highlight=False, soft_wrap=True, color_system=None))
