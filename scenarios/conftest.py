"""Shared settings for the scenario files: a small, fast workload so the suite fits CI.

Copy a scenario file and change the clients, faults and expectations to write your own.

Faults are held for their own default duration (no ``fault_s``): 4 s for a loud fault, 20 s for a
memory alarm (longer than the checker's ``max_block_s`` of 10 s, so a publisher that waits it out
silently is caught), and for a silent fault (partition, broker-pause, timeout, blackhole,
heartbeat-starvation) the client's heartbeat detection window plus a margin, so the run proves
detection instead of saying "not exercised". Silent-fault scenarios run the client at the
heartbeat of ``silent_workload`` (5 s) so that window is ~20 s, not minutes.
"""

import pytest

#: the heartbeat the silent-fault scenarios give the client (the default matrix's too): detection
#: windows of 10-20 s (pika), 18-20 s (aio-pika), 7.5-10 s (aioamqp), >= 7.5 s (kombu)
SILENT_HEARTBEAT_S = 5


@pytest.fixture
def workload() -> dict:
    """The workload every scenario uses: 500 messages at 100 msg/s, 2 s warm-up, and a consumer
    that spends 15 ms per message (~66 msg/s), so a backlog is queued when the fault hits, as in
    production when consumers fall behind. Every client gets the same workload; each fault is held
    for its own default duration (module docstring)."""
    return {"count": 500, "rate": 100.0, "warmup_s": 2.0, "work_s": 0.015}


@pytest.fixture
def silent_workload(workload: dict) -> dict:
    """The workload for faults only a heartbeat can notice: the client runs at a 5 s heartbeat
    (the engine then holds the fault for its detection window + margin, ~20-25 s)."""
    return {**workload, "params": {"heartbeat": SILENT_HEARTBEAT_S}}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        item.add_marker(pytest.mark.broker)
