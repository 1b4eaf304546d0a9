"""``--client NAME@VERSION`` without network or broker: parsing and its errors, SUPPORTS, the
per-version environment cache's decisions (build once, reuse, rebuild when broken or unfinished,
wait for another builder, say what the registry has) with a fake builder, the command the
supervisor starts, and the library version results.json records."""

from __future__ import annotations

import fcntl
import json
import subprocess
import sys
from collections.abc import Iterator, Sequence
from importlib import metadata
from pathlib import Path

import pytest
from typer.testing import CliRunner

from harness.cli import app
from harness.clients import supervisor, versions
from harness.clients.registry import Strategy, get, parse
from harness.errors import ChaosError
from harness.run.phases import _client_library

PIP_NOT_FOUND = """\
ERROR: Could not find a version that satisfies the requirement aio-pika==9.9.9 (from versions: 0.5.0, 9.4.3, \
9.5.5, 10.2.1)
ERROR: No matching distribution found for aio-pika==9.9.9
"""


class FakeBuilder:
    """Builds by writing a marker; ``health`` is what the next checks report."""

    def __init__(self, version: str = "9.4.3", fail_with: str | None = None) -> None:
        self.builds: list[list[str]] = []
        self.checks = 0
        self.health = versions.Health(version=version)
        self.fail_with = fail_with

    def build(self, target: Path, requirements: Sequence[str], log: Path) -> None:
        self.builds.append(list(requirements))
        target.mkdir(parents=True)
        log.write_text(self.fail_with or "ok\n")
        if self.fail_with is not None:
            raise versions.BuildFailed(self.fail_with)

    def check(self, target: Path, library: str, strategy: str, modules: Sequence[str], pythonpath: Path
              ) -> versions.Health:
        self.checks += 1
        assert (pythonpath / "harness").resolve() == Path(versions.__file__).resolve().parents[1]
        return self.health


@pytest.fixture(autouse=True)
def fresh_process(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Each test is a new harness process: nothing checked yet."""
    monkeypatch.setattr(versions, "_checked", {})
    yield


@pytest.fixture
def root(tmp_path: Path) -> Path:
    return tmp_path / "venvs"


def pinned(version: str = "9.4.3") -> Strategy:
    return get(f"aio-pika-robust@{version}")


# -- parsing -----------------------------------------------------------------------------------

def test_plain_and_pinned_names_parse() -> None:
    assert parse("aio-pika-robust") == ("aio-pika-robust", None)
    assert parse("aio-pika-robust@9.4.3") == ("aio-pika-robust", "9.4.3")
    s = pinned()
    assert (s.name, s.base_name, s.pinned, s.library) == ("aio-pika-robust@9.4.3", "aio-pika-robust", "9.4.3",
                                                          "aio-pika")
    assert get("aio-pika-robust").pinned is None


@pytest.mark.parametrize(("name", "problem"), [
    ("aio-pika-robust@", "is not NAME@VERSION"),
    ("@9.4.3", "is not NAME@VERSION"),
    ("aio-pika-robust@9.4.3@1", "is not NAME@VERSION"),
    ("aio-pika-robust@>=9.4", "is not a version number"),
    ("aio-pika-robust@latest", "is not a version number"),
    ("mypkg.client:Client@1.0", "built-in strategies only"),
    ("no-such-strategy@1.0", "unknown client 'no-such-strategy'"),
])
def test_a_malformed_pin_is_one_clear_error(name: str, problem: str) -> None:
    with pytest.raises(ChaosError) as info:
        get(name)
    assert problem in info.value.problem
    assert info.value.fix


def test_a_version_outside_supports_is_refused_and_one_inside_accepted() -> None:
    with pytest.raises(ChaosError) as info:
        get("aio-pika-robust@8.3.0")
    assert info.value.problem == ("aio-pika-robust does not support aio-pika 8.3.0: it works with "
                                  "aio-pika >=9.4,<11")
    assert "aio-pika-robust@" in (info.value.fix or "")
    assert get("aio-pika-robust@10.2.1").pinned == "10.2.1"


def test_a_strategy_without_supports_takes_any_version() -> None:
    s = get("pika-naive@1.3.2")
    assert s.supports is None and s.pinned == "1.3.2"


def test_the_pinned_process_finds_its_strategy_without_the_other_libraries() -> None:
    """In its environment only the pinned library exists: loading the strategy must not import
    the other strategies (pika, kombu, aioamqp, retry are not importable there)."""
    code = (
        "import sys\n"
        "class Block:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name.split('.')[0] in ('pika', 'kombu', 'amqp', 'aioamqp', 'retry'):\n"
        "            raise ImportError('not in this environment: ' + name)\n"
        "sys.meta_path.insert(0, Block())\n"
        "from harness.clients.registry import get\n"
        "s = get('aio-pika-robust@10.2.1'); s.load(); print(s.name)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "aio-pika-robust@10.2.1"


# -- the cache ---------------------------------------------------------------------------------

def test_first_use_builds_then_the_environment_is_reused(root: Path) -> None:
    b = FakeBuilder()
    python = versions.ensure(pinned(), root, b)
    target = root / versions.key("aio-pika", "9.4.3")
    assert python == target / "bin" / "python"
    assert len(b.builds) == 1 and b.builds[0][0] == "aio-pika==9.4.3"
    manifest = json.loads((target / versions.MANIFEST).read_text())
    assert manifest["library"] == "aio-pika" and manifest["version"] == "9.4.3"
    assert versions.ensure(pinned(), root, b) == python  # same process: already checked
    assert (len(b.builds), b.checks) == (1, 1)
    versions._checked.clear()  # a later run: checked once more, not rebuilt
    assert versions.ensure(pinned(), root, b) == python
    assert (len(b.builds), b.checks) == (1, 2)


def test_requirements_pin_the_client_side_to_the_harness_versions() -> None:
    reqs = versions.requirements("aio-pika", "9.4.3")
    assert reqs[0] == "aio-pika==9.4.3"
    for dist in ("pydantic", "msgspec", "packaging"):
        assert f"{dist}=={metadata.version(dist)}" in reqs
    assert f"retry=={metadata.version('retry')}" in versions.requirements("pika", "1.3.2")
    assert not any(r.startswith("retry") for r in reqs)


@pytest.mark.parametrize("health", [versions.Health(broken="ModuleNotFoundError: No module named 'pydantic'"),
                                    versions.Health(version="10.2.1")])
def test_a_broken_environment_is_rebuilt(root: Path, health: versions.Health) -> None:
    b = FakeBuilder()
    versions.ensure(pinned(), root, b)
    versions._checked.clear()
    said: list[str] = []
    healthy = b.health
    b.health = health
    checks = iter([health, healthy])
    b.check = lambda *a: next(checks)  # type: ignore[method-assign]
    versions.ensure(pinned(), root, b, say=said.append)
    assert len(b.builds) == 2
    assert "rebuilding" in said[0]


def test_the_real_check_calls_an_environment_without_python_broken(root: Path) -> None:
    target = root / versions.key("aio-pika", "9.4.3")
    target.mkdir(parents=True)
    health = versions.PipBuilder().check(target, "aio-pika", "aio-pika-robust", ["pydantic"], versions.shim(root))
    assert health.broken is not None and "does not start" in health.broken


def test_the_real_check_reads_a_working_environment(root: Path) -> None:
    """The harness's own environment stands in for a built one (same check, no pip)."""
    target = root / "here"
    root.mkdir(parents=True)
    target.symlink_to(sys.prefix, target_is_directory=True)
    health = versions.PipBuilder().check(target, "aio-pika", "aio-pika-robust", ["pydantic", "msgspec"],
                                         versions.shim(root))
    assert health == versions.Health(version=metadata.version("aio-pika"))


def test_an_unfinished_build_is_rebuilt(root: Path) -> None:
    target = root / versions.key("aio-pika", "9.4.3")
    (target / "bin").mkdir(parents=True)  # a build that died: no manifest
    b = FakeBuilder()
    said: list[str] = []
    versions.ensure(pinned(), root, b, say=said.append)
    assert len(b.builds) == 1 and (target / versions.MANIFEST).exists()
    assert "unfinished build" in said[0]


def test_a_strategy_that_cannot_load_the_version_is_a_user_error_not_a_rebuild(root: Path) -> None:
    b = FakeBuilder()
    b.health = versions.Health(version="9.4.3", load_error="AttributeError: module 'aio_pika' has no attribute 'x'")
    with pytest.raises(ChaosError) as info:
        versions.ensure(pinned(), root, b)
    assert "aio-pika-robust cannot run against aio-pika 9.4.3: AttributeError" in info.value.problem
    assert "SUPPORTS" in (info.value.fix or "")
    with pytest.raises(ChaosError):
        versions.ensure(pinned(), root, b)
    assert len(b.builds) == 1


def test_a_version_the_registry_lacks_names_the_versions_it_has(root: Path) -> None:
    b = FakeBuilder(fail_with=PIP_NOT_FOUND)
    with pytest.raises(ChaosError) as info:
        versions.ensure(pinned("9.9.9"), root, b)
    assert info.value.problem == "aio-pika 9.9.9 is not available from the package registry"
    assert info.value.fix == "pick one of: 0.5.0, 9.4.3, 9.5.5, 10.2.1"
    assert not (root / versions.key("aio-pika", "9.9.9")).exists()  # nothing half-built left


def test_other_pip_failures_point_at_the_build_log(root: Path) -> None:
    b = FakeBuilder(fail_with="ERROR: Could not install packages due to an OSError: disk full\n")
    with pytest.raises(ChaosError) as info:
        versions.ensure(pinned(), root, b)
    assert "pip failed (ERROR: Could not install packages due to an OSError: disk full)" in info.value.problem
    assert info.value.fix == f"see {root / (versions.key('aio-pika', '9.4.3') + '.build.log')}"


def test_unavailable_reads_only_the_library_line() -> None:
    dep = PIP_NOT_FOUND.replace("aio-pika==9.9.9", "aiormq==6.8.1")
    assert versions.unavailable("aio-pika", "9.9.9", dep) is None
    none = "ERROR: Could not find a version that satisfies the requirement aio_pika==1.0 (from versions: none)"
    err = versions.unavailable("aio-pika", "1.0", none)
    assert err is not None and "lists no aio-pika release" in err.problem
    many = PIP_NOT_FOUND.replace("0.5.0, ", ", ".join(f"0.{i}" for i in range(30)) + ", ")
    err = versions.unavailable("aio-pika", "9.9.9", many)
    assert err is not None and "(the newest 20 of 33)" in (err.fix or "") and "10.2.1" in (err.fix or "")


def test_a_second_run_waits_for_the_first_ones_build(root: Path) -> None:
    """The lock is held (by "another run": a separate open file); ensure says it waits, and gets
    the lock once that run lets go (here: when told, so nothing is timed)."""
    lock = root / f"{versions.key('aio-pika', '9.4.3')}.lock"
    root.mkdir(parents=True)
    other = open(lock, "a")  # noqa: SIM115
    fcntl.flock(other, fcntl.LOCK_EX)
    said: list[str] = []

    def say(msg: str) -> None:
        said.append(msg)
        if msg.startswith("waiting"):
            other.close()  # the other run finished

    versions.ensure(pinned(), root, FakeBuilder(), say=say)
    assert said[0].startswith("waiting for another run building")


def test_the_supervisor_starts_a_pinned_strategy_with_its_environment(root: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    assert supervisor.strategy_command("aio-pika-robust") == [sys.executable, "-m", "harness.clients",
                                                               "aio-pika-robust"]
    cmd = versions.command("aio-pika-robust@9.4.3", root, FakeBuilder())
    env, pythonpath, python, *rest = cmd
    assert Path(env).name == "env"
    shim = Path(pythonpath.removeprefix("PYTHONPATH="))
    assert [p.name for p in shim.iterdir()] == ["harness"]  # only the harness, nothing else of its venv
    assert (shim / "harness").resolve() == Path(versions.__file__).resolve().parents[1]
    assert python == str(root / versions.key("aio-pika", "9.4.3") / "bin" / "python")
    assert rest == ["-P", "-m", "harness.clients", "aio-pika-robust@9.4.3"]
    monkeypatch.setattr(versions, "command", lambda name: ["pinned", name])
    assert supervisor.strategy_command("aio-pika-robust@9.4.3") == ["pinned", "aio-pika-robust@9.4.3"]


# -- what results.json records ------------------------------------------------------------------

def test_results_record_the_version_the_client_imported() -> None:
    start = {"kind": "client.start", "library": "aio-pika", "version": "9.4.3"}
    assert _client_library(pinned(), [start]) == {"client_library": "aio-pika", "client_library_version": "9.4.3"}
    # no client.start (it never ran): the requested version, never the harness's own
    assert _client_library(pinned(), [])["client_library_version"] == "9.4.3"
    assert _client_library(get("aio-pika-robust"), [])["client_library_version"] == metadata.version("aio-pika")


# -- the CLI -----------------------------------------------------------------------------------

class NoRegistry(FakeBuilder):
    def __init__(self) -> None:
        super().__init__(fail_with=PIP_NOT_FOUND)


@pytest.mark.parametrize(("client", "problem"), [
    ("aio-pika-robust@", "is not NAME@VERSION"),
    ("aio-pika-robust@8.3.0", "does not support aio-pika 8.3.0"),
    ("aio-pika-robust@9.9.9", "aio-pika 9.9.9 is not available from the package registry"),
])
def test_cli_refuses_before_anything_boots(client: str, problem: str, tmp_path: Path,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RABBIT_CHAOS_VENVS", str(tmp_path / "venvs"))
    monkeypatch.setattr(versions, "PipBuilder", NoRegistry)
    res = CliRunner().invoke(app, ["run", "--client", client, "--fault", "force-close:target=consumer",
                                   "--state-dir", str(tmp_path / "s")])
    assert res.exit_code == 2, res.output
    assert "error:" in res.output and problem in res.output and "fix:" in res.output, res.output
    assert "Traceback" not in res.output
    assert not (tmp_path / "s").exists()  # no broker, no state
