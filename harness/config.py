"""One configuration model: ``[tool.rabbit-chaos]`` in pyproject.toml, or a TOML file given with
``--config``, overridden by command-line flags (flags win). Unknown keys are an error naming the
key, so a typo never silently falls back to a default.

    [tool.rabbit-chaos]
    clients = ["pika-naive", "pika-recover"]      # default: the curated rows (docs/matrix.md)
    faults = ["none", "broker-restart", "connection-cut"]   # default: the curated columns
    count = 1000
    rate = 100.0
    backend = "local"
    max_block_s = 5.0        # the scenario's expectations: the checker's deadlines
    queue_type = "quorum"    # or ["classic", "quorum"]: a matrix row per client and queue type
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from harness.errors import ChaosError


class ChaosConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    # the default matrix (harness/matrix_defaults.py, docs/matrix.md): one best-practice and one
    # baseline strategy per library plus chat-app, and the curated, calibrated columns
    clients: list[str] = Field(default_factory=lambda: _default_clients())
    faults: list[str] = Field(default_factory=lambda: _default_faults())
    count: int = Field(1000, ge=1, le=10_000_000)
    rate: float = Field(100.0, ge=0, le=100_000, allow_inf_nan=False)
    warmup: float = Field(2.0, ge=0, le=3600, allow_inf_nan=False)
    fault_for: float | None = Field(None, gt=0, le=3600, allow_inf_nan=False,
                                    description="seconds a bare fault is held; None: the fault's default "
                                                "(4 s; alarms 20 s; a silent fault: the clients' detection window)")
    # the scenario's expectations (the checker's deadlines, CheckOptions fields); None: its default
    max_stall_s: float | None = Field(None, gt=0, le=86400, allow_inf_nan=False)
    max_busy_s: float | None = Field(None, gt=0, le=86400, allow_inf_nan=False)
    max_block_s: float | None = Field(None, gt=0, le=86400, allow_inf_nan=False)
    max_detection_s: float | None = Field(None, gt=0, le=86400, allow_inf_nan=False)
    max_recovery_s: float | None = Field(None, gt=0, le=86400, allow_inf_nan=False)
    max_failover_s: float | None = Field(None, gt=0, le=86400, allow_inf_nan=False)
    work: float = Field(0.015, ge=0, le=60, allow_inf_nan=False,
                        description="consumer processing time per message, seconds: 15 ms "
                        "(~66 msg/s) is a bit slower than the default 100 msg/s, so a fault meets a backlog")
    repeat: int = Field(1, ge=1, le=1000)
    seed: int | None = None
    reports_dir: Path = Path("reports")
    state_dir: Path | None = None
    base_port: int | None = Field(None, ge=1024, le=65000)
    backend: Literal["local", "external", "compose"] = "local"
    nodes: int = Field(1, ge=1, le=7, description="broker nodes: 1, or a local cluster of this many (local backend)")
    amqp_url: str | None = Field(None, description="external backend; credentials may come from the environment")
    management_url: str | None = None
    params: dict[str, Any] = Field(default_factory=dict, description="client strategy knobs")
    queue_type: list[str] = Field(default_factory=lambda: ["classic"],
                                  description="the run queue's type(s): classic, quorum; a matrix runs a row per "
                                              "client and queue type, `run` takes exactly one")
    client_cmds: dict[str, str] = Field(default_factory=dict,
                                        description="label -> command line of a user's own client (any language)")


    def check_options(self) -> dict[str, float]:
        """The deadlines the user set, as RunSpec.check_options (CheckOptions field names)."""
        return {k: v for k in DEADLINES if (v := getattr(self, k)) is not None}


def _default_clients() -> list[str]:
    from harness.matrix_defaults import default_clients

    return default_clients()


def _default_faults() -> list[str]:
    from harness.matrix_defaults import default_faults

    return default_faults()


#: every queue type a run may declare (x-queue-type), and the ones the harness can run today
QUEUE_TYPES = ("classic", "quorum", "stream")
#: strategies that can consume a stream queue: none yet. A stream is read with basic.qos and
#: basic.consume(x-stream-offset=...), is never emptied by acks, and refuses basic.get, which the
#: harness's own drain uses to decide what was stranded; stream support needs all of that.
STREAM_CLIENTS: frozenset[str] = frozenset()


def queue_types(value: str | list[str] | tuple[str, ...] | None) -> list[str]:
    """``--queue-type classic,quorum`` / TOML ``queue_type = "quorum"`` or a list, as a list
    without repeats (first spelling wins). Unknown names are a ChaosError naming them and the
    valid ones, raised before anything boots."""
    if value is None:
        return ["classic"]
    if not isinstance(value, str | list | tuple):
        raise ChaosError(f"queue_type = {value!r} is not a queue type",
                         'write queue_type = "quorum" or ["classic", "quorum"]')
    items = [x.strip() for x in value.split(",")] if isinstance(value, str) else [str(x).strip() for x in value]
    out = list(dict.fromkeys(x.lower() for x in items if x))
    if not out:
        raise ChaosError("no queue type given", "pass --queue-type classic, quorum or classic,quorum")
    unknown = [x for x in out if x not in QUEUE_TYPES]
    if unknown:
        raise ChaosError(f"unknown queue type {unknown[0]!r}",
                         "use classic or quorum (x-queue-type): --queue-type quorum, --queue-type classic,quorum")
    return out


def check_queue_types(types: list[str], clients: list[str]) -> None:
    """Refuse, before any broker boots, a queue type the run's clients cannot be tested on: a
    stream with any client that does not consume streams (which is every one today, and the
    harness's drain cannot read a stream either). The error says which strategies do."""
    if "stream" not in types:
        return
    lacking = [c for c in clients if c.split("@", 1)[0] not in STREAM_CLIENTS]
    if lacking or not STREAM_CLIENTS:
        who = ", ".join(sorted(STREAM_CLIENTS)) or "none yet"
        raise ChaosError(
            f"queue type 'stream' is not supported by {', '.join(lacking) or 'the harness'} "
            f"(strategies that support streams: {who})",
            "a stream is consumed with prefetch and an x-stream-offset, is never emptied by acks, and refuses "
            "the basic.get the harness drains with; use --queue-type classic or quorum")


#: the checker's deadlines a scenario may set (CLI --max-stall ..., TOML max_stall_s ..., chaos_run(...))
DEADLINES = ("max_stall_s", "max_busy_s", "max_block_s", "max_detection_s", "max_recovery_s", "max_failover_s")


def check_deadlines(options: dict[str, Any]) -> dict[str, Any]:
    """Validate deadlines given as keywords (pytest ``chaos_run(..., max_stall_s=5)``): each finite
    and > 0, or None (the checker's default). One ChaosError naming the first bad one."""
    import math

    for key in DEADLINES:
        value = options.get(key)
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) or value <= 0:
            raise ChaosError(f"{key}={value!r} is not a deadline", f"give {key} as seconds > 0, e.g. {key}=10")
    return options


def _table_from(path: Path) -> dict[str, Any]:
    try:
        data = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as exc:
        raise ChaosError(f"{path} is not valid TOML: {exc}", "fix the syntax at the line named") from None
    if path.name == "pyproject.toml":
        return data.get("tool", {}).get("rabbit-chaos", {})
    return data.get("tool", {}).get("rabbit-chaos", data)


def load(config_file: Path | None = None, overrides: dict[str, Any] | None = None,
         cwd: Path | None = None) -> ChaosConfig:
    """Defaults < file (``config_file`` or ./pyproject.toml) < ``overrides`` (non-None flags)."""
    values: dict[str, Any] = {}
    if config_file is not None:
        if not config_file.exists():
            raise ChaosError(f"config file {config_file} does not exist", "give the path of a TOML file")
        values.update(_table_from(config_file))
    else:
        pp = (cwd or Path.cwd()) / "pyproject.toml"
        if pp.exists():
            values.update(_table_from(pp))
    values.update({k: v for k, v in (overrides or {}).items() if v is not None})
    if isinstance(values.get("clients"), str):
        values["clients"] = [x.strip() for x in values["clients"].split(",") if x.strip()]
    if "queue_type" in values:
        values["queue_type"] = queue_types(values["queue_type"])
    if isinstance(values.get("faults"), str):
        from harness.matrix import split_faults  # the --faults rule: a comma before key= continues a fault

        values["faults"] = split_faults(values["faults"])
    try:
        return ChaosConfig.model_validate(values)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "config"
        raise ChaosError(f"bad configuration value for {where!r}: {first['msg']}",
                         "fix it in [tool.rabbit-chaos] / the --config file, or pass the flag") from None
