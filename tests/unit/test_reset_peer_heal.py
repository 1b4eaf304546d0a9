"""reset-peer heals under the package's heal policy (harness/faults/base.py, _toxic.py): removing a
toxic that is already gone is healed (idempotent), any other error is raised, so a heal that
silently failed cannot leave the next phase of a run faulted."""

from __future__ import annotations

from typing import Any

import pytest

from harness.faults.base import FaultContext
from harness.faults.registry import parse


class NotFound(Exception):
    status = 404


class Proxies:
    def __init__(self) -> None:
        self.toxics: dict[str, set[str]] = {}

    def add_toxic(self, proxy: str, type: str, attributes: dict[str, Any], stream: str = "downstream",
                  toxicity: float = 1.0, name: str | None = None) -> dict[str, Any]:
        self.toxics.setdefault(proxy, set()).add(name or f"{type}_{stream}")
        return {}

    def remove_toxic(self, proxy: str, name: str) -> None:
        if name not in self.toxics.get(proxy, set()):
            raise NotFound("toxiproxy answered 404: toxic not found")
        self.toxics[proxy].discard(name)


class Unreachable(Proxies):
    def remove_toxic(self, proxy: str, name: str) -> None:
        raise ConnectionRefusedError("proxy API unreachable")


def ctx(tp: Proxies) -> FaultContext:
    return FaultContext(broker=None, toxiproxy=tp,  # type: ignore[arg-type]
                        proxies={"publisher": "run-publisher", "consumer": "run-consumer"},
                        vhost="rc-run", queue="rabbit-chaos.q", run_id="run")


def test_heal_removes_the_toxic_and_is_idempotent() -> None:
    tp = Proxies()
    fault, c = parse("reset-peer"), ctx(tp)
    fault.start(c)
    assert all(tp.toxics[p] for p in ("run-publisher", "run-consumer"))
    fault.heal(c)
    assert not any(tp.toxics.values())
    fault.heal(c)  # already healed: the 404s are fine
    parse("reset-peer").heal(ctx(Proxies()))  # heal before start: a no-op


def test_heal_raises_what_is_not_already_healed() -> None:
    with pytest.raises(ConnectionRefusedError):
        parse("reset-peer").heal(ctx(Unreachable()))
