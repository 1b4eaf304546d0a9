"""A consumer that crashes: after acking N messages it calls ``os._exit(3)`` (a segfaulting C
extension, an OOM kill): no ``client.exit``, no SIGTERM.

The harness records ``proc.exit`` with ``expected: false`` and no ``proc.signal`` before it: the
process exited on its own before its workload was over (the consumer's workload lasts until the
harness stops it), so the checker must report **gave up** (``fail``), naming the exit code, even
with ``crash_after`` = count and nothing left in the queue. With a smaller ``crash_after`` the
rest is stranded too (``fail``: gave up + stranded). Only a client that never started, or one the
harness aborted, is ``unknown``. :mod:`.giver_up` is the same finding reached through a fault.
"""

from __future__ import annotations

import os
from typing import Any

from pika.adapters.blocking_connection import BlockingChannel

from harness.clients.faulty import _base
from harness.clients.protocol import ClientContext
from harness.clients.strategies import _pika

RULE = "gave_up"
LIBRARY = _base.LIBRARY
DESCRIPTION = ("faulty (rule: gave up, by a crash): the consumer os._exit(3)s after acking `crash_after` "
               "messages (default: all of them), with no fault; the checker must report gave up (fail) naming "
               "the crash, and what it stranded")
#: crash_after None = after the last message (count)
PARAMS = {**_base.BASE_PARAMS, "crash_after": None, "exit_code": 3}

publisher = _base.correct_publisher


def consumer(ctx: ClientContext) -> None:
    after = ctx.cfg.param("crash_after", PARAMS["crash_after"])
    crash_after = ctx.cfg.count if after is None else int(after)
    code = int(ctx.cfg.param("exit_code", PARAMS["exit_code"]))
    done = 0
    ack = _pika.acking_callback(ctx)

    def on_message(channel: BlockingChannel, method: Any, props: Any, body: bytes) -> None:
        nonlocal done
        ack(channel, method, props, body)  # basic_ack flushes the frame before returning
        done += 1
        if done >= crash_after:
            os._exit(code)  # the crash: no client.exit, no cleanup

    _base.consume_with(ctx, on_message)
