"""Shared access to the broker's admin interfaces (private: no fault lives here).

Admin faults act through the management HTTP API (~20 ms a call) where it has the operation and
through ``rabbitmqctl`` (~1 s a call) where it does not. Both are part of the backend contract
(harness/env/backend.py): every backend has a management API (``broker.mgmt``), and
``capabilities.ctl`` says whether ``ctl`` works, so a fault asks the contract rather than
probing attributes, and a backend without rabbitmqctl is one clear error, not an AttributeError
mid-run.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from harness.errors import FaultUnavailable

if TYPE_CHECKING:
    from harness.env.backend import Backend
    from harness.faults.base import Fault, FaultContext

#: the old attribute-probing names that are now always part of the contract
_ALWAYS = frozenset({"mgmt", "amqp_url"})


def admin(fault: Fault, ctx: FaultContext, *uses: str) -> Backend:
    """The context's backend, after checking it gives ``uses``: "ctl" needs
    ``capabilities.ctl``; "mgmt" and "amqp_url" every backend has. FaultUnavailable (a ChaosError:
    the user can pick another backend or fault) names what is missing and where to get it."""
    unknown = [u for u in uses if u != "ctl" and u not in _ALWAYS]
    if unknown:  # a fault asking for something outside the contract is a bug in that fault
        raise ValueError(f"fault {fault.name!r} asks the backend for {unknown}, which the contract does not offer")
    if "ctl" in uses and not ctx.broker.capabilities.ctl:
        raise FaultUnavailable(f"fault {fault.name!r} needs the broker's admin interface (rabbitmqctl), "
                               f"which the {ctx.broker.kind} backend does not offer",
                               "use the local or compose backend (--backend local)")
    return ctx.broker


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
