"""kombu helpers shared by the kombu strategies: one way to build the Connection, the queue, the
message callback, and the publisher (Producer.publish with a retry policy and confirms).

kombu retries inside the library (``Connection.ensure``), so the history hooks are kombu's own
callbacks: ``errback`` (an error; also our chance to stop on SIGTERM, since the retry sleep is
otherwise uninterruptible), ``on_revive`` (reconnected; the re-send follows at once) and
``callback`` (called about once a second while it waits to reconnect).

What kombu / py-amqp tells the application, and the event each becomes:

* ``Connection(on_blocked=..., on_unblocked=...)`` (py-amqp's, passed through kombu's
  ``transport_options``) -> ``conn.blocked`` / ``conn.unblocked``. py-amqp calls them while it
  reads frames, including while a confirmed publish waits for its ack, so a blocked publisher
  is told at once; py-amqp's reason is its own fixed text ("connection blocked, see broker
  logs"), not the broker's.
* ConsumerCancelled raised from ``drain_events`` (basic.cancel; kombu registers no on_cancel)
  -> ``consume.cancelled``.
* a ChannelError raised from a channel call (404 NOT_FOUND, 406 PRECONDITION_FAILED, ...) ->
  ``channel.closed`` with its reply code and text; a connection error -> ``conn.lost``.
* ``confirm_timeout_s`` (kombu's ``Producer.publish(confirm_timeout=...)``; unset = wait
  forever, kombu's default) running out -> ``publish.info`` naming that timeout.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import amqp.exceptions
import kombu
from kombu import Connection, Producer, Queue

from harness.clients.protocol import ClientContext
from harness.clients.strategies._common import LossTracker, Outbox, describe, queue_arguments, record_delivery

#: knobs shared by the kombu strategies. heartbeat: kombu's own default is 0 (off); 60 is what
#: RabbitMQ proposes and what the drain-loop pattern exists to service. The retry policy values
#: are Connection.ensure's defaults (retry forever, 1 s apart).
KOMBU_PARAMS: dict[str, Any] = {"heartbeat": 60, "prefetch": 100, "confirm_publish": True,
                                "confirm_timeout_s": None, "max_retries": None, "interval_start": 1.0,
                                "interval_step": 1.0, "interval_max": 1.0}


class Stopped(Exception):
    """Raised from a kombu callback to leave a retry loop on SIGTERM."""


def connection(ctx: ClientContext, defaults: Mapping[str, Any] = KOMBU_PARAMS,
               urls: list[str] | None = None) -> Connection:
    """The run's kombu Connection: heartbeat and confirms from the knobs (``defaults``: the
    strategy's own), named ``<run_id>/<proc>``, connection.blocked recorded. ``urls`` (a failing-
    over client on a cluster: every node, the first one to try first): kombu's own failover,
    ``alternates`` with the round-robin ``failover_strategy``: ``ensure_connection`` moves to the
    next node after each refused attempt. Without them: the run's ``amqp_url`` alone."""
    p = ctx.cfg.param
    failover: dict[str, Any] = {}
    if urls and len(urls) > 1:
        failover = {"alternates": list(urls), "failover_strategy": "round-robin"}
    return Connection(urls[0] if urls else ctx.cfg.amqp_url, heartbeat=float(p("heartbeat", defaults["heartbeat"])),
                      **failover,
                      transport_options={
                          "confirm_publish": bool(p("confirm_publish", defaults["confirm_publish"])),
                          "client_properties": {"connection_name": ctx.cfg.connection_name},
                          # py-amqp's connection.blocked hooks (kombu passes transport_options on)
                          "on_blocked": ctx.blocked,
                          "on_unblocked": ctx.unblocked,
                      })


def notice(ctx: ClientContext, tracker: LossTracker, exc: BaseException) -> None:
    """What an error kombu raised tells: a consumer the broker cancelled, a channel it closed
    (the connection may be fine), or a lost connection (once per outage)."""
    if isinstance(exc, amqp.exceptions.ConsumerCancelled):
        ctx.consume_cancelled(f"basic.cancel from the broker (consumer {exc.reply_text}: queue deleted, "
                              "or consumer timeout)")
    elif isinstance(exc, amqp.exceptions.ChannelError):
        ctx.channel_closed(exc.reply_text or describe(exc), exc.reply_code)
    else:
        tracker.lost(exc)


def error_text(ctx: ClientContext, exc: BaseException) -> str:
    """``describe(exc)``, naming the confirm deadline when that is what ran out."""
    limit = ctx.cfg.param("confirm_timeout_s", KOMBU_PARAMS["confirm_timeout_s"])
    if limit is not None and isinstance(exc, TimeoutError):
        return f"confirm timed out: no broker ack within confirm_timeout_s={limit} s (outcome unknown)"
    return describe(exc)


def queue(ctx: ClientContext) -> Queue:
    """The run's queue as the harness declares it (durable, the run's queue type), on the default
    exchange."""
    return Queue(ctx.cfg.queue, durable=True, routing_key=ctx.cfg.queue, queue_arguments=queue_arguments(ctx.cfg))


def retry_policy(ctx: ClientContext) -> dict[str, Any]:
    p = ctx.cfg.param
    return {k: p(k, KOMBU_PARAMS[k]) for k in ("max_retries", "interval_start", "interval_step", "interval_max")}


def check_stopping(ctx: ClientContext) -> Callable[..., None]:
    def check(*_a: Any) -> None:
        if ctx.stopping.is_set():
            raise Stopped("SIGTERM")
    return check


def acking_on_message(ctx: ClientContext) -> Callable[[kombu.Message], None]:
    """Raw-message callback (no deserialisation: the body is the id): deliver, ack."""

    def on_message(message: kombu.Message) -> None:
        mid = record_delivery(ctx, message.body, bool(message.delivery_info.get("redelivered")))
        message.ack()
        ctx.event("ack", id=mid)

    return on_message


def publisher(ctx: ClientContext) -> None:
    """Producer.publish(retry=True, retry_policy=...) with confirm_publish: kombu reconnects and
    re-sends inside publish(); errback/on_revive write the unknown outcome, the loss, the reopen
    and the re-send's invoke. A nack (amqp's MessageNacked) is a publish.fail and is re-sent; a
    retry policy that runs out (max_retries) ends the process."""
    confirmed = bool(ctx.cfg.param("confirm_publish", KOMBU_PARAMS["confirm_publish"]))
    conn = connection(ctx)
    tracker = LossTracker(ctx)
    stop = check_stopping(ctx)
    outbox = Outbox(ctx)
    current: list[str] = []  # the id inside publish(), for the callbacks
    limit = ctx.cfg.param("confirm_timeout_s", KOMBU_PARAMS["confirm_timeout_s"])
    # only when set: older kombu releases have no confirm_timeout keyword
    deadline: dict[str, Any] = {} if limit is None else {"confirm_timeout": float(limit)}

    def errback(exc: BaseException, _interval: float) -> None:
        if tracker.lost(exc) and current:
            ctx.event("publish.info", id=current[0], error=error_text(ctx, exc))
        stop()

    def on_revive(_channel: Any) -> None:
        tracker.opened()
        if current:
            ctx.event("publish.invoke", id=current[0])

    try:
        conn.ensure_connection(errback=errback, callback=stop, **retry_policy(ctx))
        tracker.opened()
        producer = Producer(conn)
        q = queue(ctx)
        while (mid := outbox.next()) is not None:
            current[:] = [mid]
            ctx.event("publish.invoke", id=mid)
            try:
                producer.publish(mid.encode(), routing_key=ctx.cfg.queue, declare=[q], delivery_mode=2,
                                 content_type="application/octet-stream", content_encoding="binary",
                                 retry=True, retry_policy={**retry_policy(ctx), "errback": errback,
                                                           "on_revive": on_revive}, **deadline)
            except Stopped:
                ctx.event("publish.info", id=mid, error="stopped by SIGTERM while reconnecting")
                return
            except Exception as exc:
                if type(exc).__name__ == "MessageNacked":
                    ctx.event("publish.fail", id=mid, error=describe(exc))
                    outbox.retry_first(mid)
                    continue
                ctx.event("publish.info", id=mid, error=error_text(ctx, exc))
                notice(ctx, tracker, exc)
                raise
            ctx.event("publish.ok", id=mid, confirmed=confirmed)
    except Stopped:
        return
    finally:
        conn.release()
