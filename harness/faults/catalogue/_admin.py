"""Shared access to the broker's admin interfaces (private: no fault lives here).

Admin faults act through the management HTTP API (~20 ms a call) where it has the operation and
through ``rabbitmqctl`` (~1 s a call) where it does not. The base ``Broker`` protocol covers only
process control, so these faults check for what they use and raise one clear ChaosError on a
backend without it, rather than an AttributeError mid-run.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol, cast

from harness.errors import ChaosError

if TYPE_CHECKING:
    from harness.env.management import Management
    from harness.faults.base import Fault, FaultContext


class AdminBroker(Protocol):
    mgmt: Management

    def ctl(self, *args: str, timeout: float = ...) -> str: ...
    def amqp_url(self, vhost: str, host: str | None = ..., port: int | None = ...) -> str: ...


def admin(fault: Fault, ctx: FaultContext, *uses: str) -> AdminBroker:
    """The context's broker as an AdminBroker, after checking it has ``uses`` (attribute names)."""
    missing = [u for u in uses if not hasattr(ctx.broker, u)]
    if missing:
        raise ChaosError(f"fault {fault.name!r} needs the broker's admin interface ({', '.join(missing)}), "
                         "which this backend does not offer", "use the local backend (--backend local)")
    return cast("AdminBroker", ctx.broker)


def harness_connection_names(run_id: str) -> frozenset[str]:
    """The harness's own connections in a run's vhost: admin faults must never touch them."""
    return frozenset(f"{run_id}/{role}" for role in ("harness", "drain", "settle"))


def connection_name(conn: dict[str, object]) -> str:
    """The client-given name (``connection_name`` property); empty when the client gave none."""
    name = conn.get("user_provided_name")
    if not name:
        props = conn.get("client_properties")
        name = props.get("connection_name") if isinstance(props, dict) else None
    return str(name or "")
