"""Shared settings for the scenario files: a small, fast workload so the suite fits CI.

Copy a scenario file and change the clients, faults and expectations to write your own.
"""

import pytest


@pytest.fixture
def workload() -> dict:
    """The workload every scenario uses: 500 messages at 100 msg/s, 2 s warm-up, 3 s of fault, and a
    consumer that spends 15 ms per message (~66 msg/s), so a backlog is queued when the fault hits,
    as in production when consumers fall behind. Every client gets the same workload."""
    return {"count": 500, "rate": 100.0, "warmup_s": 2.0, "fault_s": 3.0, "work_s": 0.015}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        item.add_marker(pytest.mark.broker)
