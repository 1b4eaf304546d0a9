"""Shared fixtures for the integration tests that need a whole environment (broker + proxy)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from harness.env.environment import Environment


@pytest.fixture(scope="module")
def conf_env() -> Iterator[Environment]:
    """One environment per module that asks for it (ports 22872+), stopped when the module ends,
    so two modules never hold the same ports at once."""
    env = Environment(Path("/tmp/rc-conf-state"), base_port=22872)
    try:
        env.start()
        yield env
    finally:
        env.stop()


@pytest.fixture(scope="module")
def env(request: pytest.FixtureRequest) -> Iterator[Environment]:
    """One environment for the module that asks for it, in the module's own ``STATE_DIR`` on its
    own ``BASE_PORT`` (each module names both, with its own env-var overrides), stopped when the
    module ends. A module that sets ``NODES`` gets a local cluster of that many nodes."""
    e = Environment(request.module.STATE_DIR, base_port=request.module.BASE_PORT,
                    nodes=getattr(request.module, "NODES", 1))
    try:
        e.start()
        yield e
    finally:
        e.stop()
