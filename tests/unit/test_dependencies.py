"""What the package imports is what pyproject.toml declares: every third-party module imported
under harness/ belongs to a declared dependency; the Docker SDK only to the compose extra (and
only the compose backend imports it, with one clear error when it is missing); `retry`, pinned,
only for the seed's strategy."""

from __future__ import annotations

import ast
import re
import sys
import tomllib
from importlib.metadata import packages_distributions
from pathlib import Path

import pytest

from harness.env import compose
from harness.errors import ChaosError

ROOT = Path(__file__).resolve().parents[2]
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]


def _name(req: str) -> str:
    return re.split(r"[\s<>=!~;\[]", req, maxsplit=1)[0].lower().replace("_", "-")


def imports() -> dict[str, set[str]]:
    """Top-level module -> the harness files importing it (absolute imports only)."""
    out: dict[str, set[str]] = {}
    for path in (ROOT / "harness").rglob("*.py"):
        if "vendor" in path.parts:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                     else [node.module] if isinstance(node, ast.ImportFrom) and node.module and not node.level
                     else [])
            for n in names:
                out.setdefault(n.split(".")[0], set()).add(str(path.relative_to(ROOT)))
    return out


def test_every_third_party_import_is_declared() -> None:
    declared = {_name(r) for r in PROJECT["dependencies"]}
    extras = {extra: {_name(r) for r in reqs} for extra, reqs in PROJECT["optional-dependencies"].items()}
    dists = packages_distributions()
    missing = {}
    for module, files in imports().items():
        if module in sys.stdlib_module_names or module in ("harness", "__future__"):
            continue
        names = {d.lower().replace("_", "-") for d in dists.get(module, [module])}
        if not names & (declared | extras["compose"]):
            missing[module] = sorted(files)
    assert not missing, f"imported but not declared in pyproject.toml: {missing}"


def test_docker_is_the_compose_extra_only() -> None:
    assert "docker" not in {_name(r) for r in PROJECT["dependencies"]}
    assert "docker" in {_name(r) for r in PROJECT["optional-dependencies"]["compose"]}
    assert imports()["docker"] == {"harness/env/compose.py"}


def test_retry_is_pinned_and_only_the_seed_strategy_uses_it() -> None:
    assert "retry==0.9.2" in PROJECT["dependencies"]
    assert imports()["retry"] == {"harness/clients/strategies/pika_retry_decorator.py"}


def test_compose_without_the_docker_sdk_is_one_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "docker", None)  # import docker -> ImportError
    with pytest.raises(ChaosError) as info:
        compose.docker_client()
    assert "Docker SDK" in info.value.problem
    assert "pip install 'rabbit-chaos[compose]'" in (info.value.fix or "")
    with pytest.raises(ChaosError, match="Docker SDK"):
        compose.ComposeBroker().start()
