"""The ``toxiproxy`` fixture hands a scenario a toxiproxy-python client bound to the session's
Toxiproxy server. Driven here against our embedded server (the session's ``chaos_env`` overridden
by one that starts only the proxy server, so no broker boots): create a proxy, add a toxic, list,
remove, and the data path still works through it."""

from __future__ import annotations

import pytest

CONFTEST = """
import types

import pytest

from harness.env.toxiproxy import find_or_start_server


@pytest.fixture(scope="session")
def chaos_env(tmp_path_factory):
    with find_or_start_server(tmp_path_factory.mktemp("proxy"), prefer="embedded") as server:
        yield types.SimpleNamespace(proxy_server=server)
"""

SCENARIO = """
import socket
import threading

from toxiproxy.api import APIConsumer


def echo_server():
    srv = socket.create_server(("127.0.0.1", 0))

    def serve():
        conn, _ = srv.accept()
        with conn:
            while data := conn.recv(65536):
                conn.sendall(data)

    threading.Thread(target=serve, daemon=True).start()
    return srv


def test_drive_the_session_server(toxiproxy, chaos_env):
    assert f"http://{APIConsumer.host}:{APIConsumer.port}" == chaos_env.proxy_server.url
    assert toxiproxy.running() and toxiproxy.version()
    upstream = echo_server()
    proxy = toxiproxy.create(upstream="127.0.0.1:%d" % upstream.getsockname()[1], name="user_db")
    assert "user_db" in toxiproxy.proxies()

    proxy.add_toxic(type="latency", attributes={"latency": 50}, stream="upstream")
    toxics = proxy.toxics()
    assert list(toxics) == ["latency_upstream"]
    assert toxics["latency_upstream"].attributes == {"latency": 50, "jitter": 0}

    port = int(proxy.listen.rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(b"ping")
        assert s.recv(4) == b"ping"  # through the toxic

    proxy.destroy_toxic("latency_upstream")
    assert proxy.toxics() == {}
    with proxy.down():
        assert toxiproxy.get_proxy("user_db").enabled is False
    assert toxiproxy.get_proxy("user_db").enabled is True


def test_proxies_of_a_test_are_deleted_after_it(toxiproxy):
    assert "user_db" not in toxiproxy.proxies()
    toxiproxy.create(upstream="127.0.0.1:9", name="left_behind")


def test_the_next_test_starts_clean(toxiproxy):
    assert "left_behind" not in toxiproxy.proxies()


def test_the_library_defaults_are_restored_after():
    assert (APIConsumer.host, APIConsumer.port) == ("127.0.0.1", 8474)
"""


def test_toxiproxy_fixture_drives_the_embedded_server(pytester: pytest.Pytester) -> None:
    pytester.makeconftest(CONFTEST)
    pytester.makepyfile(test_user_scenario=SCENARIO)
    res = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-q")
    res.assert_outcomes(passed=4)
