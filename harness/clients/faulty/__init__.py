"""Deliberately faulty clients: each makes a checker finding fire on a real run (or, for the
correct ones, must not), so the checker can be seen to work.

These are not reference strategies (the registry only discovers :mod:`harness.clients.strategies`);
they ship with the harness so that anyone can self-test the checker against their own broker::

    rabbit-chaos run --client harness.clients.faulty:lying_publisher --fault none
    rabbit-chaos run --client harness.clients.faulty:silent_blocker --fault memory-alarm --fault-for 20

Each submodule has ``publisher(ctx)`` and ``consumer(ctx)`` (the role that is not faulty is
pika-recover's, so only the bug under test differs from a correct client), ``LIBRARY``,
``PARAMS``, ``DESCRIPTION`` (which finding it must trigger and how) and ``RULE``: the finding,
spelled as its headline with underscores (``gave_up``, ``blocked``, ``stalled``, ...).
Several clients may share a rule (a silent blocker under an alarm, a hang with no fault);
:data:`BY_RULE` maps each rule to its first client here, :data:`ENTRIES` every client to its
entry ("package.module:attr", what ``--client`` takes).
tests/integration/test_checker_rules.py runs every one of them and asserts its rule fires.
"""

from __future__ import annotations

from harness.clients.faulty import (
    busy_consumer,
    crashing_consumer,
    double_publisher,
    dropping_consumer,
    giver_up,
    hanging_publisher,
    inline_consumer,
    lying_publisher,
    requeueing_consumer,
    shuffling_publisher,
    silent_blocker,
    stuck_consumer,
    untracked_publisher,
)

__all__ = ["BY_RULE", "CLIENTS", "ENTRIES"]

#: every faulty client module, by its attribute name in this package; for a rule two clients
#: share, the one listed first is its main example (silent_blocker before hanging_publisher)
CLIENTS = {
    m.__name__.rpartition(".")[2]: m
    for m in (lying_publisher, untracked_publisher, requeueing_consumer, double_publisher, shuffling_publisher,
              stuck_consumer, dropping_consumer, silent_blocker, hanging_publisher, giver_up, crashing_consumer,
              busy_consumer, inline_consumer)
}

#: client name -> its entry ("harness.clients.faulty:<name>")
ENTRIES = {name: f"{__name__}:{name}" for name in CLIENTS}

#: rule -> the entry of its main client (the first in CLIENTS with that RULE)
BY_RULE: dict[str, str] = {}
for _name, _module in CLIENTS.items():
    BY_RULE.setdefault(_module.RULE, ENTRIES[_name])
