"""A built-in strategy against another version of its library: ``--client NAME@VERSION``.

Some client bugs belong to a library version, not to a strategy (aio-pika 9.4.3 forgets a queue
it holds weakly, 9.5.5 does not), so ``aio-pika-robust@9.4.3`` runs the unchanged strategy code
against aio-pika 9.4.3. Its processes run in a virtual environment of their own, built on first
use with the normal package tooling and cached:

* ``<cache>/aio-pika-9.4.3-py3.12/`` (``--without`` the system site-packages): ``python -m venv``,
  then ``pip install aio-pika==9.4.3`` plus what ``python -m harness.clients`` imports beyond the
  standard library (:data:`CLIENT_SIDE`, pinned to the versions the harness itself runs with,
  so the client side behaves the same), from whatever registry pip is configured to use (its
  config files and ``PIP_*`` variables; nothing else is contacted).
* The harness is not installed there: the strategy process gets ``PYTHONPATH`` = a directory
  holding one symlink, ``harness`` -> this checkout's package (:func:`shim`), and ``python -P``
  keeps the working directory off ``sys.path``. So the code that runs is the code of the
  harness that started it (never a stale copy), and nothing else of the harness's environment
  (its own aio-pika) is importable.
* ``<cache>`` is ``$RABBIT_CHAOS_VENVS``, else ``$XDG_CACHE_HOME/rabbit-chaos/venvs``, else
  ``~/.cache/rabbit-chaos/venvs``: shared by every checkout and run on the machine, so a CI job
  starting from a clean clone pays the build (about 10-20 s per version) once per machine.
* ``<venv>/rabbit-chaos-venv.json`` is written last: a directory without it is a build that
  died and is rebuilt. Before first use in a process the environment is checked (one
  subprocess: the library's installed version, the client-side imports, the strategy module
  loads); a broken environment is rebuilt, a strategy that cannot load its library version is
  a user error. ``<cache>/<key>.lock`` (``flock``) makes a second run wait for the first one's
  build instead of building the same environment beside it.

Errors are :class:`ChaosError` raised before any broker boots (the CLI builds first): a version
the registry does not have (naming the versions pip lists), a version outside the strategy's
SUPPORTS (:func:`harness.clients.registry.check_supported`), a malformed ``@``
(:func:`harness.clients.registry.parse`).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Protocol

from harness.clients.registry import Strategy, get
from harness.errors import ChaosError

#: distributions ``python -m harness.clients`` imports beyond the standard library and the
#: strategy's own library (protocol.py: pydantic; history.py: msgspec; registry.py: packaging)
CLIENT_SIDE: tuple[str, ...] = ("pydantic", "msgspec", "packaging")
#: distributions some strategy of a library imports besides the library (pika-retry-decorator:
#: retry), installed in every environment of that library
LIBRARY_EXTRAS: dict[str, tuple[str, ...]] = {"pika": ("retry",)}
MANIFEST = "rabbit-chaos-venv.json"
#: what the check prints about an environment: the library's installed version, whether the
#: client-side imports work ("broken" otherwise), whether the strategy module loads
_CHECK = """
import importlib, importlib.metadata as m, json, sys
out = {}
try:
    out["version"] = m.version(sys.argv[1])
    for name in sys.argv[3:]:
        importlib.import_module(name)
except Exception as exc:
    out["broken"] = f"{type(exc).__name__}: {exc}"
else:
    try:
        from harness.clients.registry import get
        get(sys.argv[2]).load()
    except Exception as exc:
        out["load_error"] = f"{type(exc).__name__}: {exc}"
print(json.dumps(out))
"""


class BuildFailed(Exception):
    """pip (or venv) failed; ``output`` is what it printed."""

    def __init__(self, output: str) -> None:
        super().__init__(output.strip().splitlines()[-1] if output.strip() else "no output")
        self.output = output


@dataclass(frozen=True)
class Health:
    """What :data:`_CHECK` found in an environment."""

    version: str | None = None
    broken: str | None = None
    load_error: str | None = None


class Builder(Protocol):
    """Makes and inspects environments (the real one runs venv and pip; tests pass a fake)."""

    def build(self, target: Path, requirements: Sequence[str], log: Path) -> None:
        """Create the environment at ``target`` with ``requirements``; raise BuildFailed."""

    def check(self, target: Path, library: str, strategy: str, modules: Sequence[str], pythonpath: Path) -> Health:
        """Inspect the environment at ``target`` (it exists and has a manifest), with the
        harness importable from ``pythonpath`` (:func:`shim`)."""


class PipBuilder:
    """``python -m venv`` + ``pip install``, with the Python that runs the harness."""

    def build(self, target: Path, requirements: Sequence[str], log: Path) -> None:
        steps = [[sys.executable, "-m", "venv", str(target)],
                 [str(python_of(target)), "-m", "pip", "install", "--disable-pip-version-check", "--no-input",
                  *requirements]]
        with open(log, "w") as out:
            for cmd in steps:
                out.write("$ " + " ".join(cmd) + "\n")
                out.flush()
                code = subprocess.run(cmd, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                      check=False).returncode
                if code != 0:
                    raise BuildFailed(log.read_text(errors="replace"))

    def check(self, target: Path, library: str, strategy: str, modules: Sequence[str], pythonpath: Path) -> Health:
        env = {**os.environ, "PYTHONPATH": str(pythonpath)}
        try:
            proc = subprocess.run([str(python_of(target)), "-P", "-c", _CHECK, library, strategy, *modules],
                                  stdin=subprocess.DEVNULL, capture_output=True, text=True, env=env, check=False)
        except OSError as exc:  # its python is gone (the base interpreter was removed or moved)
            return Health(broken=f"the environment's python does not start: {exc}")
        try:
            doc = json.loads(proc.stdout.strip().splitlines()[-1])
        except (ValueError, IndexError):
            why = proc.stderr.strip()[-300:] or f"exit {proc.returncode}"
            return Health(broken=f"the environment's python did not run: {why}")
        return Health(version=doc.get("version"), broken=doc.get("broken"), load_error=doc.get("load_error"))


def cache_root() -> Path:
    """Where the environments live (see the module docstring)."""
    if os.environ.get("RABBIT_CHAOS_VENVS"):
        return Path(os.environ["RABBIT_CHAOS_VENVS"])
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "rabbit-chaos" / "venvs"


def python_tag() -> str:
    """``py3.12``: an environment is made with, and only runs under, one Python version."""
    return f"py{sys.version_info.major}.{sys.version_info.minor}"


def key(library: str, version: str) -> str:
    return f"{library}-{version}-{python_tag()}"


def python_of(target: Path) -> Path:
    return target / "bin" / "python"


def requirements(library: str, version: str) -> list[str]:
    """The pinned library, and the client side at the harness's own versions."""
    extras = [*CLIENT_SIDE, *LIBRARY_EXTRAS.get(library, ())]
    return [f"{library}=={version}", *(f"{d}=={metadata.version(d)}" for d in extras)]


def shim(root: Path | None = None) -> Path:
    """A directory whose only entry is ``harness`` -> this harness's package, for PYTHONPATH (one
    per checkout, named by a hash of its path, so checkouts sharing the cache never mix)."""
    package = Path(__file__).resolve().parents[1]
    base = (root or cache_root()).parent / "src" / hashlib.sha256(str(package).encode()).hexdigest()[:12]
    link = base / "harness"
    if not (link.is_symlink() and link.resolve() == package):
        base.mkdir(parents=True, exist_ok=True)
        tmp = base / f".harness.{os.getpid()}"
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        tmp.symlink_to(package, target_is_directory=True)
        os.replace(tmp, link)  # atomic: a concurrent run sees the old link or the new one
    return base


@contextlib.contextmanager
def locked(path: Path, waiting: Callable[[], None] | None = None) -> Iterator[None]:
    """Hold an exclusive ``flock`` on ``path`` (created); ``waiting`` is called once when
    another process holds it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            if waiting is not None:
                waiting()
            fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def unavailable(library: str, version: str, output: str) -> ChaosError | None:
    """pip's "Could not find a version that satisfies the requirement aio-pika==9.9.9 (from
    versions: ...)" for the library itself, as the user's error naming what the registry has."""
    pattern = re.compile(r"satisfies the requirement\s+(\S+?)==\S+\s+\(from versions:\s*([^)]*)\)")
    norm = _normal(library)
    for m in pattern.finditer(output):
        if _normal(m.group(1)) != norm:
            continue
        listed = [v.strip() for v in m.group(2).split(",") if v.strip() and v.strip() != "none"]
        if not listed:
            return ChaosError(f"{library} {version} is not available from the package registry: it lists no "
                              f"{library} release for this Python ({python_tag()})",
                              "check pip's index settings (pip config list)")
        shown = listed[-20:]
        more = f" (the newest {len(shown)} of {len(listed)})" if len(listed) > len(shown) else ""
        return ChaosError(f"{library} {version} is not available from the package registry",
                          f"pick one of: {', '.join(shown)}{more}")
    return None


def _normal(dist: str) -> str:
    return re.sub(r"[-_.]+", "-", dist).lower()


def _same_version(a: str | None, b: str) -> bool:
    from packaging.version import InvalidVersion, Version

    if a is None:
        return False
    try:
        return Version(a) == Version(b)
    except InvalidVersion:
        return a == b


#: environments checked healthy by this process: (dir, strategy) -> library version
_checked: dict[tuple[Path, str], str] = {}


def ensure(strategy: Strategy, root: Path | None = None, builder: Builder | None = None,
           say: Callable[[str], None] | None = None) -> Path:
    """The python of the pinned strategy's environment: reused when healthy, built (or rebuilt
    when broken) otherwise, under the environment's lock. Raises ChaosError for what the user
    can fix (version unavailable, strategy cannot load it, pip failing)."""
    if strategy.pinned is None:
        raise ChaosError(f"{strategy.name} is not pinned to a library version", "write NAME@VERSION")
    root = root or cache_root()
    builder = builder or PipBuilder()
    library, version = strategy.library, strategy.pinned
    target = root / key(library, version)
    if (target, strategy.base_name) in _checked:
        return python_of(target)
    tell = say or (lambda _msg: None)
    modules = [*CLIENT_SIDE, *LIBRARY_EXTRAS.get(library, ())]
    with locked(root / f"{key(library, version)}.lock",
                waiting=lambda: tell(f"waiting for another run building {target}")):
        health: Health | None = None
        if (target / MANIFEST).exists():
            health = builder.check(target, library, strategy.base_name, modules, shim(root))
            if health.broken is None and _same_version(health.version, version):
                return _accept(strategy, target, health)
            tell(f"{target} is broken ({health.broken or f'has {library} {health.version}'}): rebuilding")
        elif target.exists():
            tell(f"{target} is an unfinished build: rebuilding")
        _build(builder, target, library, version, root, tell)
        health = builder.check(target, library, strategy.base_name, modules, shim(root))
        if health.broken is not None or not _same_version(health.version, version):
            raise ChaosError(f"the environment built for {library} {version} does not work: "
                             f"{health.broken or f'it has {library} {health.version}'}",
                             f"see {root / (key(library, version) + '.build.log')}; delete {target} to retry")
        return _accept(strategy, target, health)


def _build(builder: Builder, target: Path, library: str, version: str, root: Path,
           tell: Callable[[str], None]) -> None:
    if target.exists():
        shutil.rmtree(target)
    reqs = requirements(library, version)
    log = root / f"{key(library, version)}.build.log"
    tell(f"building {target} (first use of {library} {version}): pip install {' '.join(reqs)}")
    t0 = time.monotonic()
    try:
        builder.build(target, reqs, log)
    except BuildFailed as exc:
        shutil.rmtree(target, ignore_errors=True)
        err = unavailable(library, version, exc.output)
        if err is not None:
            raise err from None
        raise ChaosError(f"cannot build the environment for {library} {version}: pip failed ({exc})",
                         f"see {log}") from None
    manifest = {"library": library, "version": version, "python": python_tag(), "requirements": reqs,
                "build_s": round(time.monotonic() - t0, 1), "harness_python": sys.executable}
    (target / MANIFEST).write_text(json.dumps(manifest, indent=1) + "\n")


def _accept(strategy: Strategy, target: Path, health: Health) -> Path:
    if health.load_error is not None:
        raise ChaosError(f"{strategy.base_name} cannot run against {strategy.library} {strategy.pinned}: "
                         f"{health.load_error}",
                         f"pick another {strategy.library} version"
                         + (f" within {strategy.supports!r}" if strategy.supports else "")
                         + f", or declare SUPPORTS in {strategy.module} to say which it supports")
    _checked[(target, strategy.base_name)] = str(health.version)
    return python_of(target)


def command(name: str, root: Path | None = None, builder: Builder | None = None) -> list[str]:
    """The command that starts strategy NAME@VERSION's process (the supervisor appends
    ``--config``): its environment's python, this harness on PYTHONPATH only."""
    strategy = get(name)
    python = ensure(strategy, root, builder)
    return [shutil.which("env") or "env", f"PYTHONPATH={shim(root)}", str(python), "-P", "-m", "harness.clients",
            strategy.name]


def prepare(names: Iterable[str], say: Callable[[str], None] | None = None) -> None:
    """Build (or check) the environments of every pinned name before anything boots, so a
    missing version is one error now rather than an ``unknown`` run later."""
    for name in names:
        if "@" in name:
            ensure(get(name), say=say)

