"""The local node speaks the Backend contract (harness/env/backend.py) without booting: its
capabilities, its one node, and node operations that refuse another node's name instead of
silently acting on the only node there is."""

from pathlib import Path

import pytest

from harness.env.backend import Backend, Capabilities, NodeInfo
from harness.env.local import LocalBroker
from harness.errors import HarnessFailure


def test_local_broker_is_a_backend(tmp_path: Path) -> None:
    b = LocalBroker(tmp_path, base_port=25400)
    assert isinstance(b, Backend)
    assert b.capabilities == Capabilities(process=True, ctl=True, nodes=1)
    assert b.nodes() == [NodeInfo("rabbit_chaos_25400@localhost", "127.0.0.1:25400")]


@pytest.mark.parametrize("op", ["stop_node", "start_node", "kill_node", "pause", "resume"])
def test_node_ops_refuse_another_node(tmp_path: Path, op: str) -> None:
    b = LocalBroker(tmp_path, base_port=25400)
    with pytest.raises(HarnessFailure, match="one node"):
        getattr(b, op)(node="rabbit@elsewhere")
    with pytest.raises(HarnessFailure, match="one node"):
        b.ctl("status", node="rabbit@elsewhere")


def test_node_ops_accept_own_name_and_none(tmp_path: Path) -> None:
    """No beam runs here: kill, pause-less resume and stop are no-ops on an absent node."""
    b = LocalBroker(tmp_path, base_port=25400)
    b.kill_node()
    b.kill_node(node=b.node)
    b.resume(node=None)
    b.stop_node(b.node, timeout=1)


def test_a_boot_under_way_is_waited_for_not_doubled(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Ctrl-C during a heal's start_node, then the teardown heals again: the second start waits
    for the first wrapper instead of starting another (which would orphan the first beam)."""
    import subprocess

    b = LocalBroker(tmp_path, base_port=25400)
    spawned: list[int] = []
    monkeypatch.setattr(b, "_spawn", lambda: spawned.append(1))
    monkeypatch.setattr(b, "wait_ready", lambda timeout: None)
    b._wrapper = subprocess.Popen(["sleep", "30"])
    try:
        b.start_node()
        assert spawned == []  # the running wrapper's boot is awaited
        b._wrapper.kill()
        b._wrapper.wait()
        b.start_node()
        assert spawned == [1]  # the wrapper is gone: a fresh boot
    finally:
        b._wrapper.kill()
