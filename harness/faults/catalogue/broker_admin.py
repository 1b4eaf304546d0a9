"""AMQP-level admin faults: force-close client connections, delete the run's queue.

Both act once at ``start`` (what the client must survive is the event itself); ``heal`` of
queue-delete re-declares the queue so the rest of the run has somewhere to publish and consume.

Effects: force-close records "connections closed" with how many (observed: the broker's own
answer names them; through the management API fallback only the calls are known); its heal has
nothing to undo ("nothing to heal"). queue-delete records "queue deleted" once the management API
no longer lists the queue, and "queue declared" once the broker answered queue.declare-ok; the
checker reports a message confirmed between the two as "confirmed but unroutable".
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import ClassVar

from harness.env import trusted
from harness.errors import ChaosError, HarnessFailure
from harness.faults.base import Fault, FaultContext, Scope, Target
from harness.faults.catalogue._admin import admin, connection_name, harness_connection_names


def closed_count(out: str) -> int:
    """How many connection names the force-close eval printed (a list of binaries)."""
    return out.count("<<")


def _until_absent(gone: Callable[[], bool], timeout: float = 5.0) -> bool:
    """Poll ``gone`` (the management API's view, which follows the deletion within a call or
    two) until true; False when it did not turn true in ``timeout``."""
    deadline = time.monotonic() + timeout
    while not gone():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)
    return True


@dataclass
class ForceClose(Fault):
    target: Target = "all"
    reason: str = "rabbit-chaos force-close"

    name: ClassVar[str] = "force-close"
    description: ClassVar[str] = ("the broker closes every client connection of the run's vhost "
                                  "(connection.close 320 CONNECTION_FORCED, management API); the client must reconnect")
    family: ClassVar[str] = "broker admin"
    needs: ClassVar[frozenset[str]] = frozenset({"admin"})
    scope: ClassVar[Scope] = "run"  # closes only connections of the run's own vhost (see erlang())

    def selects(self, conn_name: str, run_id: str) -> bool:
        """all: every connection of the vhost except the harness's own (unnamed ones too);
        publisher/consumer: the connections named ``<run_id>/<role>-<n>`` by the client protocol."""
        if conn_name in harness_connection_names(run_id):
            return False
        return self.target == "all" or conn_name.startswith(f"{run_id}/{self.target}-")

    def start(self, ctx: FaultContext) -> None:
        """Close through ``rabbitmqctl eval`` where we have it: the management API lists a new
        connection only after its statistics are emitted (seconds after it opens, measured here),
        so selecting from that list silently misses young connections, and a fault that closes
        nothing would make a run pass for the wrong reason. The management API is the fallback
        for backends without rabbitmqctl (external)."""
        if ctx.broker.capabilities.ctl:
            out = admin(self, ctx, "ctl").ctl("eval", self.erlang(ctx.vhost, ctx.run_id))
            if not out.strip().startswith("["):
                raise ChaosError(f"force-close: unexpected rabbitmqctl output: {out[:200]}")
            ctx.effect("connections closed", observed=True, count=closed_count(out))
            return
        mgmt = admin(self, ctx, "mgmt").mgmt
        roles = ("publisher", "consumer") if self.target == "all" else (self.target,)
        deadline = time.monotonic() + 15
        while True:  # wait for the statistics to list every targeted client connection
            chosen = [c for c in mgmt.connections(ctx.vhost) if self.selects(connection_name(c), ctx.run_id)]
            names = {connection_name(c) for c in chosen}
            if all(any(n.startswith(f"{ctx.run_id}/{r}-") for n in names) for r in roles):
                break
            if time.monotonic() > deadline:
                # closing nothing would let the run pass for the wrong reason: fail closed instead
                raise HarnessFailure(f"force-close: the management API did not list the {'/'.join(roles)} "
                                     f"connection(s) of run {ctx.run_id} within 15 s (are they named "
                                     "<run_id>/<proc> as the client protocol asks?)")
            time.sleep(0.25)
        for conn in chosen:
            mgmt.close_connection(str(conn["name"]), self.reason)
        ctx.effect("connections closed", observed=False, count=len(chosen))

    def erlang(self, vhost: str, run_id: str) -> str:
        """One expression: close the vhost's connections this fault selects; returns their names.
        Unnamed connections count as clients for target=all (a user's client may not name them)."""
        def binary(text: str) -> str:
            return "<<" + ",".join(str(b) for b in text.encode()) + ">>"

        harness = "[" + ",".join(binary(n) for n in sorted(harness_connection_names(run_id))) + "]"
        prefix = binary(f"{run_id}/{self.target}-" if self.target != "all" else "")
        return (
            f"VHost = {binary(vhost)}, Harness = {harness}, Prefix = {prefix}, "
            f"Reason = {json.dumps(self.reason)}, "
            "Name = fun(CP) -> case lists:keyfind(<<\"connection_name\">>, 1, CP) of "
            "{_, longstr, N} -> N; _ -> <<>> end end, "
            "[begin rabbit_networking:close_connection(P, Reason), N end || P <- rabbit_networking:connections(), "
            "[{vhost, V}, {client_properties, CP}] <- [catch rabbit_networking:connection_info(P, "
            "[vhost, client_properties])], V =:= VHost, N <- [Name(CP)], not lists:member(N, Harness), "
            "binary:longest_common_prefix([N, Prefix]) =:= byte_size(Prefix)].")

    def heal(self, ctx: FaultContext) -> None:
        # an instant fault: the connections are gone, reconnecting is the client's job
        ctx.effect("nothing to heal", observed=True)


@dataclass
class QueueDelete(Fault):
    name: ClassVar[str] = "queue-delete"
    description: ClassVar[str] = ("the run's queue is deleted while consumed (consumers get basic.cancel) and "
                                  "re-declared durable at heal; messages in it are gone by design, "
                                  "so the checker reports them as lost")
    family: ClassVar[str] = "broker admin"
    needs: ClassVar[frozenset[str]] = frozenset({"admin"})
    scope: ClassVar[Scope] = "run"  # the run's own queue in its own vhost

    def start(self, ctx: FaultContext) -> None:
        mgmt = admin(self, ctx, "mgmt").mgmt
        mgmt.delete_queue(ctx.vhost, ctx.queue)
        gone = _until_absent(lambda: mgmt.queue(ctx.vhost, ctx.queue) is None)
        ctx.effect("queue deleted", observed=gone)

    def heal(self, ctx: FaultContext) -> None:
        # queue.declare of an existing durable queue with the same properties is a no-op: idempotent
        url = admin(self, ctx, "amqp_url").amqp_url(ctx.vhost)
        trusted.declare_queue(url, ctx.queue, f"{ctx.run_id}/harness", ctx.queue_type)
        ctx.effect("queue declared", observed=True)  # the broker answered queue.declare-ok
