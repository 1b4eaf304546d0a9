"""Deliberately faulty clients: one per checker rule, so the checker can be seen to fire on a real run.

These are not reference strategies (the registry only discovers :mod:`harness.clients.strategies`);
they ship with the harness so that anyone can self-test the checker against their own broker::

    rabbit-chaos run --client harness.clients.faulty:lying_publisher --fault none

Each submodule has ``publisher(ctx)`` and ``consumer(ctx)`` (the role that is not faulty is
pika-recover's, so only the bug under test differs from a correct client), ``LIBRARY``,
``PARAMS``, ``DESCRIPTION`` (which rule it must trigger and how) and ``RULE``. :data:`BY_RULE`
maps each rule to its client's entry ("package.module:attr", what ``--client`` takes).
tests/integration/test_checker_rules.py runs every one of them and asserts its rule fires.
"""

from __future__ import annotations

from harness.clients.faulty import (
    crashing_consumer,
    double_publisher,
    dropping_consumer,
    hanging_publisher,
    lying_publisher,
    requeueing_consumer,
    shuffling_publisher,
    stuck_consumer,
    untracked_publisher,
)

__all__ = ["BY_RULE", "CLIENTS"]

#: every faulty client module, by its attribute name in this package
CLIENTS = {
    m.__name__.rpartition(".")[2]: m
    for m in (lying_publisher, untracked_publisher, requeueing_consumer, double_publisher, shuffling_publisher,
              stuck_consumer, dropping_consumer, hanging_publisher, crashing_consumer)
}

#: rule -> the client entry that must make it fire
BY_RULE = {m.RULE: f"{__name__}:{name}" for name, m in CLIENTS.items()}
