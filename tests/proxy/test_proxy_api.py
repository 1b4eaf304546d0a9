"""The HTTP API: paths, status codes and error bodies as Toxiproxy 2.x answers them."""

from __future__ import annotations

import json
import socket

import httpx
import pytest
from proxy_testkit import closed_how, connect, round_trip

from harness.env.toxiproxy import (
    BadRequestError,
    NotFoundError,
    ProxyExistsError,
    ToxiproxyClient,
    ToxiproxyServer,
)


def raw(server: ToxiproxyServer, method: str, path: str, body: object = None) -> httpx.Response:
    kwargs = {"json": body} if body is not None else {}
    return httpx.request(method, server.url + path, timeout=10, **kwargs)


def error_body(resp: httpx.Response) -> dict[str, object]:
    return json.loads(resp.text)


def test_version(toxiproxy_server: ToxiproxyServer, api: ToxiproxyClient) -> None:
    resp = raw(toxiproxy_server, "GET", "/version")
    assert resp.status_code == 200
    assert isinstance(resp.json()["version"], str)
    assert api.version() == toxiproxy_server.version


def test_create_show_list_delete(api: ToxiproxyClient, toxiproxy_server: ToxiproxyServer, echo) -> None:
    name = "rc_conformance_crud"
    created = api.create_proxy(name, "127.0.0.1:0", echo.addr)
    assert created["name"] == name and created["upstream"] == echo.addr
    assert created["enabled"] is True and created["toxics"] == []
    host, port = created["listen"].rsplit(":", 1)
    assert host == "127.0.0.1" and int(port) > 0  # port 0 became a real port
    assert api.proxies()[name]["listen"] == created["listen"]
    assert api.proxy(name) == created
    with connect(int(port)) as s:
        assert round_trip(s) < 1
    resp = raw(toxiproxy_server, "DELETE", f"/proxies/{name}")
    assert resp.status_code == 204
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", int(port)), timeout=2)


def test_duplicate_proxy_409(api: ToxiproxyClient, toxiproxy_server: ToxiproxyServer, make_proxy, echo) -> None:
    name, _ = make_proxy()
    resp = raw(toxiproxy_server, "POST", "/proxies", {"name": name, "listen": "127.0.0.1:0",
                                                       "upstream": echo.addr})
    assert resp.status_code == 409
    assert error_body(resp) == {"error": "proxy already exists", "status": 409}
    with pytest.raises(ProxyExistsError) as info:
        api.create_proxy(name, "127.0.0.1:0", echo.addr)
    assert info.value.status == 409


def test_missing_fields_400(toxiproxy_server: ToxiproxyServer) -> None:
    resp = raw(toxiproxy_server, "POST", "/proxies", {"listen": "127.0.0.1:0", "upstream": "127.0.0.1:1"})
    assert resp.status_code == 400
    assert error_body(resp) == {"error": "missing required field: name", "status": 400}
    resp = raw(toxiproxy_server, "POST", "/proxies", {"name": "rc_conformance_x", "listen": "127.0.0.1:0"})
    assert error_body(resp) == {"error": "missing required field: upstream", "status": 400}


def test_missing_proxy_and_toxic_404(api: ToxiproxyClient, toxiproxy_server: ToxiproxyServer,
                                     make_proxy) -> None:
    for method, path in [("GET", "/proxies/rc_conformance_nope"), ("DELETE", "/proxies/rc_conformance_nope"),
                         ("GET", "/proxies/rc_conformance_nope/toxics")]:
        resp = raw(toxiproxy_server, method, path)
        assert resp.status_code == 404, path
        assert error_body(resp) == {"error": "proxy not found", "status": 404}
    name, _ = make_proxy()
    for method in ("GET", "DELETE"):
        resp = raw(toxiproxy_server, method, f"/proxies/{name}/toxics/nope")
        assert resp.status_code == 404
        assert error_body(resp) == {"error": "toxic not found", "status": 404}
    with pytest.raises(NotFoundError):
        api.remove_toxic(name, "nope")
    api.remove_toxic(name, "nope", missing_ok=True)


def test_bad_toxics_400_and_duplicate_409(api: ToxiproxyClient, toxiproxy_server: ToxiproxyServer,
                                          make_proxy) -> None:
    name, _ = make_proxy()
    path = f"/proxies/{name}/toxics"
    resp = raw(toxiproxy_server, "POST", path, {"type": "no_such_toxic"})
    assert resp.status_code == 400
    assert error_body(resp) == {"error": "invalid toxic type", "status": 400}
    resp = raw(toxiproxy_server, "POST", path, {"type": "latency", "stream": "sideways"})
    assert resp.status_code == 400
    assert error_body(resp) == {"error": "stream was invalid, can be either upstream or downstream",
                                "status": 400}
    resp = raw(toxiproxy_server, "POST", path, {"type": "latency", "attributes": {"latency": "slow"}})
    assert resp.status_code == 400
    assert str(error_body(resp)["error"]).startswith("bad request body")
    with pytest.raises(BadRequestError):
        api.add_toxic(name, "latency", {"latency": 1.5})
    api.add_toxic(name, "latency", {"latency": 1})
    resp = raw(toxiproxy_server, "POST", path, {"type": "latency"})
    assert resp.status_code == 409
    assert error_body(resp) == {"error": "toxic already exists", "status": 409}


def test_toxic_defaults_show_update(api: ToxiproxyClient, toxiproxy_server: ToxiproxyServer,
                                    make_proxy) -> None:
    name, _ = make_proxy()
    resp = raw(toxiproxy_server, "POST", f"/proxies/{name}/toxics",
               {"type": "latency", "attributes": {"latency": 100}})
    assert resp.status_code == 200
    toxic = resp.json()
    assert toxic["name"] == "latency_downstream"
    assert toxic["stream"] == "downstream" and toxic["toxicity"] == 1
    assert toxic["attributes"] == {"latency": 100, "jitter": 0}
    up = api.add_toxic(name, "bandwidth", {"rate": 5}, stream="upstream", toxicity=0.5)
    assert up["name"] == "bandwidth_upstream" and up["toxicity"] == 0.5
    listed = api.toxics(name)
    assert {t["name"] for t in listed} == {"latency_downstream", "bandwidth_upstream"}
    assert api.proxy(name)["toxics"] == listed
    assert raw(toxiproxy_server, "GET", f"/proxies/{name}/toxics/latency_downstream").json() == toxic
    updated = api.update_toxic(name, "latency_downstream", {"jitter": 7})
    assert updated["attributes"] == {"latency": 100, "jitter": 7}  # partial update keeps latency
    assert updated["toxicity"] == 1  # toxicity unchanged when not given
    resp = raw(toxiproxy_server, "DELETE", f"/proxies/{name}/toxics/latency_downstream")
    assert resp.status_code == 204
    assert [t["name"] for t in api.toxics(name)] == ["bandwidth_upstream"]


def test_reset_reenables_and_clears(api: ToxiproxyClient, toxiproxy_server: ToxiproxyServer,
                                    make_proxy) -> None:
    name, port = make_proxy()
    api.add_toxic(name, "latency", {"latency": 1000})
    api.set_enabled(name, False)
    assert raw(toxiproxy_server, "POST", "/reset").status_code == 204
    shown = api.proxy(name)
    assert shown["enabled"] is True and shown["toxics"] == []
    with connect(port) as s:
        assert round_trip(s) < 0.5


def test_populate(api: ToxiproxyClient, toxiproxy_server: ToxiproxyServer, echo) -> None:
    body = [{"name": "rc_conformance_pop1", "listen": "127.0.0.1:0", "upstream": echo.addr},
            {"name": "rc_conformance_pop2", "listen": "127.0.0.1:0", "upstream": echo.addr,
             "enabled": False}]
    resp = raw(toxiproxy_server, "POST", "/populate", body)
    assert resp.status_code == 201
    got = {p["name"]: p for p in resp.json()["proxies"]}
    assert got["rc_conformance_pop1"]["enabled"] is True
    assert got["rc_conformance_pop2"]["enabled"] is False
    resp = raw(toxiproxy_server, "POST", "/populate", [{"listen": "127.0.0.1:0", "upstream": echo.addr}])
    assert resp.status_code == 400
    assert resp.json()["error"] == "missing required field: name at proxy 1"


def test_disable_closes_and_refuses_then_reenable(api: ToxiproxyClient, make_proxy) -> None:
    name, port = make_proxy()
    s = connect(port)
    assert round_trip(s) < 1
    shown = api.set_enabled(name, False)
    assert shown["enabled"] is False
    assert closed_how(s, timeout=5) in ("eof", "reset")  # open connection closed
    s.close()
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port), timeout=2)
    assert api.set_enabled(name, True)["listen"] == f"127.0.0.1:{port}"  # same address again
    with connect(port) as s2:
        assert round_trip(s2) < 1


def test_update_upstream_restarts(api: ToxiproxyClient, make_proxy, closer) -> None:
    name, port = make_proxy()
    s = connect(port)
    assert round_trip(s) < 1
    shown = api.update_proxy(name, upstream=closer.addr)
    assert shown["upstream"] == closer.addr and shown["enabled"] is True
    assert closed_how(s, timeout=5) in ("eof", "reset")
    s.close()
