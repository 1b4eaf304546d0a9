"""Our embedded Toxiproxy: a server that speaks Toxiproxy 2.x's HTTP API and reproduces its toxics.

Why it exists: no registry these machines reach ships ``toxiproxy-server``, yet fault timelines
are written against the Toxiproxy API. ``python -m harness.proxy -host 127.0.0.1 -port 8474``
starts it exactly as ``toxiproxy-server`` would be started, and ``harness.env.toxiproxy`` drives
either through the same client. One file per toxic lives in ``toxics/``; ``hold`` is ours, not
Toxiproxy's (see docs/proxy.md).
"""

#: Reported by ``GET /version``. The Toxiproxy release whose API we follow, plus build metadata
#: that lets a client tell ours from a real one (semver: "+..." does not change precedence).
TOXIPROXY_API_VERSION = "2.12.0"
VERSION = f"{TOXIPROXY_API_VERSION}+rabbit-chaos"
