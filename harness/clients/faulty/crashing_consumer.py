"""A consumer that crashes: after acking N messages it calls ``os._exit(3)`` (a segfaulting C
extension, an OOM kill): no ``client.exit``, no SIGTERM.

The harness records ``proc.exit`` with ``expected: false`` and the checker names the crash. A
crash alone proves nothing about the messages, so with ``crash_after`` = count (nothing left to
consume) the verdict must be **unknown** ("consumer-0 exited at … with code 3: no client.exit
written"); with a smaller ``crash_after`` the rest is stranded, which is proven, so the verdict
is ``fail`` with the crash listed as well.
"""

from __future__ import annotations

import os
from typing import Any

from pika.adapters.blocking_connection import BlockingChannel

from harness.clients.faulty import _base
from harness.clients.protocol import ClientContext
from harness.clients.strategies import _pika

RULE = "client_crash"
LIBRARY = _base.LIBRARY
DESCRIPTION = ("faulty (rule: client crash): the consumer os._exit(3)s after acking `crash_after` messages "
               "(default: all of them); the checker must say unknown, naming the crash, unless what it "
               "left behind proves a failure")
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
