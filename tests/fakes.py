"""Fakes shared by test packages (``tests`` is on pytest's ``pythonpath``)."""

from __future__ import annotations

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
