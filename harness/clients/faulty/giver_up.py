"""A client that gives up at the first connection error, as tutorial code does: one connection,
no reconnect, the exception propagates and the process exits (``client.exit`` ok=false, exit
code 1) with ``conn.lost`` naming the error.

Under connection-cut, force-close or a broker restart the giving-up role dies while the other
(pika-recover's) carries on: a consumer that gives up strands everything published after it
died; a publisher that gives up never publishes the rest. A client that exits because of the
fault is a finding about that client, never a harness failure: the checker must report
**gave up** (``fail``), naming its last error, beside what it stranded. Under no fault it runs
to the end and passes (the negative control of the rule).
"""

from __future__ import annotations

from typing import Literal

from harness.clients.faulty import _base
from harness.clients.protocol import ClientContext
from harness.clients.strategies import _pika

RULE = "gave_up"
LIBRARY = _base.LIBRARY
DESCRIPTION = ("faulty (rule: gave up): the `gives_up` role (consumer, publisher or both) has no reconnect "
               "and exits on its first connection error; under connection-cut or force-close the checker must "
               "report gave up (fail) with its last error, and what it stranded")
PARAMS = {**_base.BASE_PARAMS, "gives_up": "consumer"}

Role = Literal["publisher", "consumer"]


def _gives_up(ctx: ClientContext, role: Role) -> bool:
    which = str(ctx.cfg.param("gives_up", PARAMS["gives_up"]))
    if which not in ("consumer", "publisher", "both"):
        raise ValueError(f"giver_up: gives_up must be consumer, publisher or both, not {which!r}")
    return which in (role, "both")


def publisher(ctx: ClientContext) -> None:
    """The tutorial publisher (confirms, one connection) or, when it is not the role that gives
    up, pika-recover's."""
    if not _gives_up(ctx, "publisher"):
        _base.correct_publisher(ctx)
        return

    def body(_channel: object, publish: _base.Publish) -> None:
        for mid in ctx.paced(ctx.ids()):
            publish(mid)

    _base.with_confirming_channel(ctx, body)  # an error: publish.info, conn.lost, raised


def consumer(ctx: ClientContext) -> None:
    """The tutorial consumer (manual ack, one connection) or, when it is not the role that gives
    up, pika-recover's."""
    if not _gives_up(ctx, "consumer"):
        _base.correct_consumer(ctx)
        return
    _base.consume_with(ctx, _pika.acking_callback(ctx))  # an error: conn.lost, raised
