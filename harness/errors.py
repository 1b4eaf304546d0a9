"""The one user-facing error type.

Every problem a user can fix (unknown client or fault, bad parameter, broker binary missing,
port in use) is raised as :class:`ChaosError` with the problem and the fix, so the CLI and the
pytest plugin can print one clear message instead of a traceback.
"""

from __future__ import annotations


class ChaosError(Exception):
    """A problem the user can fix. ``str()`` gives "problem\\n  fix: ..."."""

    def __init__(self, problem: str, fix: str | None = None) -> None:
        self.problem = problem
        self.fix = fix
        super().__init__(problem if fix is None else f"{problem}\n  fix: {fix}")


class HarnessFailure(Exception):
    """The harness itself broke (broker never came back, a client could not start...).

    Not a user error and not a finding about the client under test: a run that meets one
    ends with verdict ``unknown`` and this message as its reason.
    """


class FaultUnavailable(ChaosError):
    """The fault cannot run in this environment (no root for kernel faults, no broker process to
    restart on an external broker, ...). The CLI reports it; the pytest plugin skips with it."""


class Interrupted(KeyboardInterrupt):
    """The user stopped the harness: Ctrl-C (SIGINT) or SIGTERM (the CLI turns SIGTERM into this).

    A KeyboardInterrupt, so every ``except KeyboardInterrupt`` / ``finally`` that heals faults and
    stops processes on Ctrl-C does the same on SIGTERM. ``signame`` says which signal it was, so
    results can record "interrupted by SIGTERM" and the CLI exits 128 + the signal number.
    """

    def __init__(self, signame: str = "SIGINT") -> None:
        self.signame = signame
        super().__init__(f"interrupted by {signame}")

    @property
    def exit_code(self) -> int:
        return 143 if self.signame == "SIGTERM" else 130


def signal_name(exc: BaseException) -> str:
    """"SIGTERM" for an :class:`Interrupted` from SIGTERM, "SIGINT" for any other KeyboardInterrupt."""
    return getattr(exc, "signame", "SIGINT")
