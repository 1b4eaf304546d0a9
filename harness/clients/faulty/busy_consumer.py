"""A busy but correct consumer: pika's documented pattern for slow work. Prefetch 1, each job runs
in a worker thread, the ack is handed back to the connection's thread with
``connection.add_callback_threadsafe``, and the main thread keeps pumping the I/O loop, so
heartbeats are served however long a job takes.

Some messages take a long job (``job_s``, e.g. 25 s): the one at sequence number ``job_at``
(a list of them is allowed, negative counts from the end, -1 = the last message; ``job_s`` may
then be a list too, one duration per entry) or every ``job_every``-th one; the others take
``short_s``. While a long job runs the client holds one
unacknowledged delivery and, with prefetch 1, every other message waits ready in the queue: the
queue samples look like a stall (ready > 0, a consumer, nothing delivered), but the client is
*busy*, which is never a stall. So this client must NOT trip the stall rule: the verdict is
``pass`` with no finding. And the run must wait for it: settle does not end while the long job
holds its delivery, so a long job on the last message is acked inside the run.

It is the negative control of the "busy" finding (the rule that fires only when the user sets
``max_busy_s``); the publisher is pika-recover's.
"""

from __future__ import annotations

import contextlib
import functools
import threading
from collections.abc import Callable
from typing import Any

import pika
import pika.exceptions
from pika.adapters.blocking_connection import BlockingChannel

from harness.clients.faulty import _base
from harness.clients.protocol import ClientContext
from harness.clients.strategies import _pika
from harness.clients.strategies._common import record_delivery

RULE = "busy"
LIBRARY = _base.LIBRARY
DESCRIPTION = ("busy but correct (rule: busy, must NOT fire a stall): prefetch 1, the job runs in a worker "
               "thread and is acked through add_callback_threadsafe while the I/O loop serves heartbeats; "
               "message `job_at` (or every `job_every`-th) takes `job_s`, the rest `short_s`; the verdict "
               "must be pass")
#: job_at: sequence number(s) of the long job (negative: from the end); job_s: its duration, or a
#: list of one per job_at entry; job_every: every Nth message (sequence N-1, 2N-1, ...) takes
#: job_s instead (None: only job_at)
PARAMS = {**_base.BASE_PARAMS, "prefetch": 1, "job_s": 25.0, "job_at": [0], "job_every": None,
          "short_s": 0.005}

publisher = _base.correct_publisher


def job_seconds(ctx: ClientContext) -> Callable[[str], float]:
    """How long the job for a message id takes, from its sequence number (the id's digits after
    the publisher's prefix)."""
    job = ctx.cfg.param("job_s", PARAMS["job_s"])
    short_s = float(ctx.cfg.param("short_s", PARAMS["short_s"]))
    every = ctx.cfg.param("job_every", PARAMS["job_every"])
    at = ctx.cfg.param("job_at", PARAMS["job_at"])
    at_list = [at] if isinstance(at, int) else list(at or [])
    durations = [float(d) for d in job] if isinstance(job, list) else [float(job)] * len(at_list)
    if len(durations) != len(at_list):
        raise ValueError(f"busy_consumer: job_s has {len(durations)} durations for {len(at_list)} job_at entries")
    long_s = max(durations, default=0.0) if isinstance(job, list) else float(job)  # job_every's duration
    count = ctx.cfg.count
    long_seqs = {(a % count if count else a): d for a, d in zip(at_list, durations, strict=True)}

    def seconds(mid: str) -> float:
        digits = mid.rpartition("-")[2]
        if not digits.isdigit():
            return short_s  # an id this consumer does not know how to read: no long job
        seq = int(digits)
        if every:
            return long_s if (seq + 1) % int(every) == 0 else short_s
        return long_seqs.get(seq, short_s)

    return seconds


def consumer(ctx: ClientContext) -> None:
    """pika's ``basic_consumer_threaded`` example with prefetch 1 (pika-threaded-ack's recovery
    loop): deliver, a worker thread does the job, the ack goes back through the I/O thread."""
    # the documented pattern's prefetch (1) unless the run sets its own
    ctx.cfg.params.setdefault("prefetch", PARAMS["prefetch"])
    seconds = job_seconds(ctx)
    workers: list[threading.Thread] = []

    def ack_message(channel: BlockingChannel, tag: int, mid: str) -> None:
        if channel.is_open:  # the channel died meanwhile: the broker redelivers, nothing to ack
            channel.basic_ack(delivery_tag=tag)
            ctx.event("ack", id=mid)

    def work(conn: pika.BlockingConnection, channel: BlockingChannel, tag: int, mid: str) -> None:
        if ctx.stopping.wait(seconds(mid)):
            return  # stopped mid-job: unfinished work is not acked, the broker requeues it
        with contextlib.suppress(pika.exceptions.AMQPError, AttributeError):  # connection gone
            conn.add_callback_threadsafe(functools.partial(ack_message, channel, tag, mid))

    def on_message(conn: pika.BlockingConnection) -> Callable[..., None]:
        def callback(channel: BlockingChannel, method: Any, _props: Any, body: bytes) -> None:
            mid = record_delivery(ctx, body, method.redelivered, work=False)
            t = threading.Thread(target=work, args=(conn, channel, method.delivery_tag, mid), daemon=True,
                                 name=f"job-{mid}")
            t.start()
            workers[:] = [w for w in workers if w.is_alive()] + [t]

        return callback

    def join_workers() -> None:
        for w in workers:
            w.join(timeout=1.0)  # a worker wakes at once on SIGTERM; after a loss it only skips its ack
        workers.clear()

    _pika.consume_loop(ctx, delay=float(ctx.cfg.param("retry_delay_s", PARAMS["retry_delay_s"])),
                       reconnect_on=(pika.exceptions.AMQPConnectionError, OSError),
                       on_message=on_message, after_close=join_workers)
