"""AMQP-level admin faults: force-close client connections, delete the run's queue.

Both act once at ``start`` (what the client must survive is the event itself); ``heal`` of
queue-delete re-declares the queue so the rest of the run has somewhere to publish and consume.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from harness.env import trusted
from harness.faults.base import Fault, FaultContext, Target
from harness.faults.catalogue._admin import admin, connection_name, harness_connection_names


@dataclass
class ForceClose(Fault):
    target: Target = "all"
    reason: str = "rabbit-chaos force-close"

    name: ClassVar[str] = "force-close"
    description: ClassVar[str] = ("the broker closes every client connection of the run's vhost "
                                  "(connection.close 320 CONNECTION_FORCED, management API); the client must reconnect")
    family: ClassVar[str] = "broker admin"
    needs: ClassVar[frozenset[str]] = frozenset({"admin"})

    def selects(self, conn_name: str, run_id: str) -> bool:
        """all: every connection of the vhost except the harness's own (unnamed ones too);
        publisher/consumer: the connections named ``<run_id>/<role>-<n>`` by the client protocol."""
        if conn_name in harness_connection_names(run_id):
            return False
        return self.target == "all" or conn_name.startswith(f"{run_id}/{self.target}-")

    def start(self, ctx: FaultContext) -> None:
        mgmt = admin(self, ctx, "mgmt").mgmt
        for conn in mgmt.connections(ctx.vhost):
            if self.selects(connection_name(conn), ctx.run_id):
                mgmt.close_connection(str(conn["name"]), self.reason)

    def heal(self, ctx: FaultContext) -> None:
        return None  # an instant fault: the connections are gone, reconnecting is the client's job


@dataclass
class QueueDelete(Fault):
    name: ClassVar[str] = "queue-delete"
    description: ClassVar[str] = ("the run's queue is deleted while consumed (consumers get basic.cancel) and "
                                  "re-declared durable at heal; messages in it are gone by design, "
                                  "so the checker reports them as lost")
    family: ClassVar[str] = "broker admin"
    needs: ClassVar[frozenset[str]] = frozenset({"admin"})

    def start(self, ctx: FaultContext) -> None:
        admin(self, ctx, "mgmt").mgmt.delete_queue(ctx.vhost, ctx.queue)

    def heal(self, ctx: FaultContext) -> None:
        # queue.declare of an existing durable queue with the same properties is a no-op: idempotent
        url = admin(self, ctx, "amqp_url").amqp_url(ctx.vhost)
        trusted.declare_queue(url, ctx.queue, f"{ctx.run_id}/harness")
