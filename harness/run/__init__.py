"""One run, as named phases (see :mod:`harness.engine` for the shape in one screen).

* :mod:`harness.run.spec`   — RunSpec: what a run is asked to do
* :mod:`harness.run.holds`  — how long a bare fault is held (per-fault defaults, silent faults)
* :mod:`harness.run.settle` — when the settle phase may end (never while the client holds work)
* :mod:`harness.run.phases` — setup, warmup, nemesis, heal, settle, drain, teardown, check
"""
