"""The harness's only door to Toxiproxy, real or ours: find or start a server, and a client.

``find_or_start_server`` prefers what the user gives: ``TOXIPROXY_URL`` (a running server we
never stop), then ``TOXIPROXY_SERVER`` (path to a binary) or ``toxiproxy-server`` on PATH, and
only then our embedded ``python -m harness.proxy``. Whatever it starts runs in its own process
group with a pid file in the state directory, so ``reap_stale`` can clean up after a killed run.

Why httpx rather than toxiproxy-python (0.1.1) for the calls: its host and port are class
attributes of ``APIConsumer`` shared by the whole process (one client could not talk to two
servers, as the conformance suite does), its high-level calls pass no timeout (a wedged server
would hang a fault's heal forever), it ignores every status but 400/404/409 (a 500 from a failed
listen passes silently), it cannot update a toxic or a proxy with PATCH, and ``create`` does an
extra GET first. Our exceptions still subclass its ``ProxyExists``/``NotFound``/``InvalidToxic``
so code written against it keeps catching the same errors.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from types import TracebackType
from typing import Any, Literal
from urllib.parse import quote, urlsplit

import httpx

from harness.env import procs

try:  # only for exception compatibility; see the module docstring
    from toxiproxy import exceptions as _tp_exc
except ImportError:  # pragma: no cover - the library is a declared dependency
    _tp_exc = None

DEFAULT_TIMEOUT = 10.0
READY_TIMEOUT = 15.0
PID_FILE = "toxiproxy.pid"
#: What /proc/<pid>/cmdline must contain for reap_stale to kill a process.
_OURS = ("harness.proxy", "toxiproxy-server")

Kind = Literal["real", "embedded"]

#: Toxic types only our embedded proxy implements (Toxiproxy 2.12.0 has none of them): the
#: faults built on them (partition, packet-loss) cannot run against a real server.
EMBEDDED_ONLY_TOXICS = frozenset({"hold", "packet_loss"})


class ToxiproxyError(Exception):
    """A Toxiproxy API call failed: carries the method, path, HTTP status and response body."""

    def __init__(self, method: str, path: str, status: int | None, body: str) -> None:
        self.method, self.path, self.status, self.body = method, path, status, body
        where = f"{method} {path}"
        what = f"HTTP {status}: {body.strip()}" if status is not None else body
        super().__init__(f"Toxiproxy {where} failed: {what}")


def _compat(name: str) -> type[Exception]:
    base = getattr(_tp_exc, name, None) if _tp_exc is not None else None
    return base if isinstance(base, type) and issubclass(base, Exception) else Exception


class ProxyExistsError(ToxiproxyError, _compat("ProxyExists")):  # type: ignore[misc]
    """409: a proxy (or toxic) of that name already exists."""


class NotFoundError(ToxiproxyError, _compat("NotFound")):  # type: ignore[misc]
    """404: no such proxy or toxic."""


class BadRequestError(ToxiproxyError, _compat("InvalidToxic")):  # type: ignore[misc]
    """400: bad toxic type, stream, attributes or body."""


class ToxiproxyUnavailable(ToxiproxyError):
    """The server did not answer (connection refused, timeout)."""


_BY_STATUS: dict[int, type[ToxiproxyError]] = {409: ProxyExistsError, 404: NotFoundError,
                                               400: BadRequestError}


class ToxiproxyClient:
    """Toxiproxy 2.x HTTP API client. Every call has a timeout; failures raise ToxiproxyError
    (or a subclass by status) naming the call, the status and the body."""

    def __init__(self, url: str, timeout: float = DEFAULT_TIMEOUT) -> None:
        self.url = url.rstrip("/")
        self._http = httpx.Client(base_url=self.url, timeout=timeout,
                                  headers={"User-Agent": "rabbit-chaos"})

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> ToxiproxyClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- plumbing --------------------------------------------------------------------------
    def request(self, method: str, path: str, json: Any = None, expect: tuple[int, ...] = (200,),
                timeout: float | None = None) -> Any:
        """One API call; returns the decoded JSON body (None for an empty body)."""
        kwargs: dict[str, Any] = {}
        if json is not None:
            kwargs["json"] = json
        if timeout is not None:
            kwargs["timeout"] = timeout
        try:
            resp = self._http.request(method, path, **kwargs)
        except httpx.HTTPError as exc:
            raise ToxiproxyUnavailable(method, path, None, f"{type(exc).__name__}: {exc}") from exc
        if resp.status_code not in expect:
            cls = _BY_STATUS.get(resp.status_code, ToxiproxyError)
            raise cls(method, path, resp.status_code, resp.text)
        if not resp.content.strip():
            return None
        try:
            return resp.json()
        except ValueError as exc:
            raise ToxiproxyError(method, path, resp.status_code, f"not JSON: {resp.text[:200]}") from exc

    @staticmethod
    def _p(name: str) -> str:
        return quote(name, safe="")

    # -- the API ---------------------------------------------------------------------------
    def version(self) -> str:
        body = self.request("GET", "/version")
        return str(body.get("version", "")) if isinstance(body, dict) else str(body)

    def proxies(self) -> dict[str, dict[str, Any]]:
        return dict(self.request("GET", "/proxies"))

    def proxy(self, name: str) -> dict[str, Any]:
        return dict(self.request("GET", f"/proxies/{self._p(name)}"))

    def create_proxy(self, name: str, listen: str, upstream: str, enabled: bool = True) -> dict[str, Any]:
        """Create a proxy; ``listen`` "127.0.0.1:0" picks a free port, reported in the result."""
        body = {"name": name, "listen": listen, "upstream": upstream, "enabled": enabled}
        return dict(self.request("POST", "/proxies", json=body, expect=(201,)))

    def delete_proxy(self, name: str, missing_ok: bool = False) -> None:
        try:
            self.request("DELETE", f"/proxies/{self._p(name)}", expect=(204,))
        except NotFoundError:
            if not missing_ok:
                raise

    def update_proxy(self, name: str, **fields: Any) -> dict[str, Any]:
        return dict(self.request("PATCH", f"/proxies/{self._p(name)}", json=fields))

    def set_enabled(self, name: str, enabled: bool) -> dict[str, Any]:
        """Disable: close its connections and stop listening. Enable: listen again."""
        return self.update_proxy(name, enabled=enabled)

    def populate(self, proxies: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return list(self.request("POST", "/populate", json=proxies, expect=(201,))["proxies"])

    def toxics(self, proxy: str) -> list[dict[str, Any]]:
        return list(self.request("GET", f"/proxies/{self._p(proxy)}/toxics"))

    def add_toxic(self, proxy: str, type: str, attributes: dict[str, Any] | None = None,
                  stream: str = "downstream", toxicity: float = 1.0, name: str | None = None) -> dict[str, Any]:
        """Add a toxic; its name defaults to "<type>_<stream>" as in Toxiproxy."""
        body: dict[str, Any] = {"type": type, "stream": stream, "toxicity": toxicity,
                                "attributes": attributes or {}}
        if name:
            body["name"] = name
        return dict(self.request("POST", f"/proxies/{self._p(proxy)}/toxics", json=body))

    def update_toxic(self, proxy: str, name: str, attributes: dict[str, Any] | None = None,
                     toxicity: float | None = None) -> dict[str, Any]:
        body: dict[str, Any] = {}
        if attributes is not None:
            body["attributes"] = attributes
        if toxicity is not None:
            body["toxicity"] = toxicity
        return dict(self.request("PATCH", f"/proxies/{self._p(proxy)}/toxics/{self._p(name)}", json=body))

    def remove_toxic(self, proxy: str, name: str, missing_ok: bool = False) -> None:
        try:
            self.request("DELETE", f"/proxies/{self._p(proxy)}/toxics/{self._p(name)}", expect=(204,))
        except NotFoundError:
            if not missing_ok:
                raise

    def reset(self) -> None:
        """Re-enable every proxy and remove every toxic."""
        self.request("POST", "/reset", expect=(204,))

    def stats(self) -> dict[str, Any] | None:
        """Our embedded server's task/connection/fd counts (``GET /__debug/stats``); None on a
        real Toxiproxy, which has no such endpoint."""
        try:
            body = self.request("GET", "/__debug/stats")
        except ToxiproxyError:
            return None
        return body if isinstance(body, dict) else None


# -- servers -----------------------------------------------------------------------------
class ToxiproxyServer:
    """A Toxiproxy server the harness talks to. ``stop()`` only stops what we started."""

    def __init__(self, url: str, kind: Kind, version: str, proc: subprocess.Popen[bytes] | None = None,
                 pid_file: Path | None = None) -> None:
        self.url = url
        self.kind: Kind = kind
        self.version = version
        self.proc = proc
        self.pid_file = pid_file

    @property
    def owned(self) -> bool:
        return self.proc is not None

    def client(self, timeout: float = DEFAULT_TIMEOUT) -> ToxiproxyClient:
        return ToxiproxyClient(self.url, timeout=timeout)

    def stop(self, grace: float = 5.0) -> None:
        """SIGTERM our process group, SIGKILL after ``grace`` s. Idempotent; no-op if not ours."""
        proc, self.proc = self.proc, None
        if proc is not None:
            _stop_group(proc, grace)
        if self.pid_file is not None:
            with contextlib.suppress(FileNotFoundError):
                self.pid_file.unlink()
            self.pid_file = None

    def __enter__(self) -> ToxiproxyServer:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"ToxiproxyServer({self.url!r}, kind={self.kind!r}, version={self.version!r})"


def kind_of(version: str) -> Kind:
    """Ours reports "<toxiproxy version>+rabbit-chaos"."""
    return "embedded" if "rabbit-chaos" in version else "real"


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def embedded_command(host: str, port: int) -> list[str]:
    return [sys.executable, "-m", "harness.proxy", "-host", host, "-port", str(port)]


def find_or_start_server(state_dir: Path, port: int | None = None,
                         prefer: Literal["auto", "real", "embedded"] = "auto") -> ToxiproxyServer:
    """The server to use: ``TOXIPROXY_URL`` if set (never stopped by us); else a real binary
    (``TOXIPROXY_SERVER`` or ``toxiproxy-server`` on PATH) started by us; else ours. ``prefer``
    "embedded" skips the first two (tests of our proxy); "real" refuses to fall back to ours."""
    state_dir = Path(state_dir)
    if prefer != "embedded":
        url = os.environ.get("TOXIPROXY_URL")
        if url:
            version = wait_ready(url, READY_TIMEOUT)
            return ToxiproxyServer(url, kind_of(version), version)
        binary = os.environ.get("TOXIPROXY_SERVER") or shutil.which("toxiproxy-server")
        if binary:
            return start_server([binary], state_dir, port)
        if prefer == "real":
            raise FileNotFoundError("no real Toxiproxy: set TOXIPROXY_URL or TOXIPROXY_SERVER, "
                                    "or put toxiproxy-server on PATH")
    return start_server(None, state_dir, port)


def planned_server(backend: str = "local") -> str | None:
    """Which Toxiproxy :func:`find_or_start_server` would use, found without starting anything:
    None for our embedded proxy, else a description of the real server (for error messages).
    A ``TOXIPROXY_URL`` that does not answer is a ChaosError here, before any broker boots."""
    from harness.errors import ChaosError

    url = os.environ.get("TOXIPROXY_URL")
    if url:
        try:
            with httpx.Client(timeout=3.0) as http:
                resp = http.get(url.rstrip("/") + "/version")
            body = resp.text.strip()
            try:
                version = str(resp.json().get("version", body))
            except (ValueError, AttributeError):
                version = body
        except httpx.HTTPError as exc:
            raise ChaosError(f"TOXIPROXY_URL={url} does not answer ({type(exc).__name__})",
                             "start that Toxiproxy server, or unset TOXIPROXY_URL to use the embedded proxy"
                             ) from None
        return None if kind_of(version) == "embedded" else f"TOXIPROXY_URL={url}, version {version}"
    if backend == "compose":
        return "the compose backend's toxiproxy container"
    binary = os.environ.get("TOXIPROXY_SERVER") or shutil.which("toxiproxy-server")
    if binary:
        return f"{binary}, from {'TOXIPROXY_SERVER' if os.environ.get('TOXIPROXY_SERVER') else 'PATH'}"
    return None


def start_server(binary: list[str] | None, state_dir: Path, port: int | None = None,
                 host: str = "127.0.0.1") -> ToxiproxyServer:
    """Start ``binary`` (toxiproxy-server's flags) or, if None, our embedded proxy, on
    host:port (a free port if None), in its own process group; ready when /version answers."""
    state_dir = Path(state_dir)
    state_dir.mkdir(parents=True, exist_ok=True)
    reap_stale(state_dir)
    attempts = 1 if port is not None else 3  # a free port can be taken before the child binds
    last: Exception | None = None
    for _ in range(attempts):
        p = port if port is not None else free_port(host)
        cmd = [*binary, "-host", host, "-port", str(p)] if binary else embedded_command(host, p)
        log_path = state_dir / "toxiproxy.log"
        with open(log_path, "ab") as log_fh:
            proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log_fh, stderr=log_fh,
                                    start_new_session=True, cwd=_repo_root() if not binary else None,
                                    preexec_fn=procs.die_with_parent)
        pid_file = state_dir / PID_FILE
        pid_file.write_text(f"{proc.pid} {os.getpid()}\n")  # the proxy, and who owns it
        url = f"http://{host}:{p}"
        try:
            version = wait_ready(url, READY_TIMEOUT, proc)
        except (RuntimeError, TimeoutError) as exc:
            last = exc
            _stop_group(proc, 2.0)
            with contextlib.suppress(FileNotFoundError):
                pid_file.unlink()
            continue
        return ToxiproxyServer(url, "real" if binary else "embedded", version, proc, pid_file)
    raise RuntimeError(f"Toxiproxy server {' '.join(binary or ['harness.proxy'])} did not become ready: "
                       f"{last}; see {state_dir / 'toxiproxy.log'}")


def wait_ready(url: str, timeout: float, proc: subprocess.Popen[bytes] | None = None) -> str:
    """Poll ``GET /version`` (the protocol handshake) until it answers; returns the version."""
    deadline = time.monotonic() + timeout
    last = ""
    with httpx.Client(base_url=url, timeout=1.0) as http:
        while time.monotonic() < deadline:
            if proc is not None and proc.poll() is not None:
                raise RuntimeError(f"exited with status {proc.returncode} before answering")
            try:
                resp = http.get("/version")
                if resp.status_code == 200:
                    try:
                        return str(resp.json().get("version", ""))
                    except ValueError:
                        return resp.text.strip()  # Toxiproxy < 2.7 sent invalid JSON here
                last = f"HTTP {resp.status_code}"
            except httpx.HTTPError as exc:
                last = f"{type(exc).__name__}: {exc}"
            time.sleep(0.05)
    raise TimeoutError(f"{url}/version did not answer within {timeout:.0f} s ({last})")


def reap_stale(state_dir: Path) -> bool:
    """Kill a proxy that a killed earlier run left behind: its pid file is still there, the
    process's /proc/<pid>/cmdline shows it is a Toxiproxy of ours, and the harness process that
    started it (second field of the pid file) is gone, so a run sharing the state directory is
    never robbed of its live proxy. Returns True if one was killed."""
    pid_file = Path(state_dir) / PID_FILE
    try:
        fields = pid_file.read_text().split()
        pid = int(fields[0])
        owner = int(fields[1]) if len(fields) > 1 else None
    except (OSError, ValueError, IndexError):
        return False
    if owner is not None and owner != os.getpid() and _alive(owner):
        return False  # a live run's proxy, not a leftover
    reaped = False
    if _is_ours(pid):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pid, signal.SIGTERM)  # we started it as a session (group) leader
        if not _wait_gone(pid, 3.0):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pid, signal.SIGKILL)
            _wait_gone(pid, 3.0)
        reaped = True
    with contextlib.suppress(FileNotFoundError):
        pid_file.unlink()
    return reaped


def _alive(pid: int) -> bool:
    return _proc_state(pid) not in (None, "Z")


def _proc_state(pid: int) -> str | None:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return None


def _is_ours(pid: int) -> bool:
    try:
        cmd = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return False
    return any(mark in cmd for mark in _OURS)


def _wait_gone(pid: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not _alive(pid):
            return True
        time.sleep(0.02)
    return False


def _stop_group(proc: subprocess.Popen[bytes], grace: float) -> None:
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(grace)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(5)


def _repo_root() -> str:
    """Run ``-m harness.proxy`` from where ``harness`` is importable even if not installed."""
    return str(Path(__file__).resolve().parents[2])


def url_host_port(url: str) -> tuple[str, int]:
    parts = urlsplit(url)
    return parts.hostname or "127.0.0.1", parts.port or 8474
