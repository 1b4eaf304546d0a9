"""Benchmarks: how fast the checker is, how transparent the proxy is, what a matrix cost.

Kept apart from the product packages on purpose: ``harness/checker/`` holds only the pure
functions that judge a history, and ``harness/proxy/`` only the server, so nothing a run
imports pulls in timing loops, synthetic histories or soak drivers. None of this is part of
CI; ``rabbit-chaos bench ...`` (harness/cli.py) is the door:

* :mod:`harness.bench.checker` — checker throughput on synthetic histories (``bench checker``;
  ``synthetic`` is also what the checker's equivalence tests feed it)
* :mod:`harness.bench.proxy` — AMQP and bulk TCP through the proxy vs direct, and the soak
  (``bench proxy``, ``bench soak``); :mod:`harness.bench.proxy_amqp` — its two publishers
* :mod:`harness.bench.matrix` — a finished matrix's wall time against its fault timelines
  (``bench matrix``)
"""
