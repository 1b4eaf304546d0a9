"""A deliberately broken client for the check-client integration test (stdlib only).

It breaks the protocol in the ways users' clients most often do, each of which check-client must
name: a line that is not JSON, an event missing a required field, an id outside the config's
range, no client.exit, no connection to the broker at all (so none is named), and a consumer
that ignores SIGTERM. It still writes conn.open (lying) so the harness starts the publisher.
"""

import json
import os
import signal
import sys
import time
from pathlib import Path

path = sys.argv[sys.argv.index("--config") + 1] if "--config" in sys.argv else os.environ["RABBIT_CHAOS_CONFIG"]
cfg = json.loads(Path(path).read_text())
out = open(cfg["history"], "a")  # noqa: SIM115 - held until exit


def event(kind, **fields):
    ev = {"t": time.monotonic(), "wall": time.time(), "pid": os.getpid(), "proc": cfg["proc"], "role": cfg["role"],
          "kind": kind, **fields}
    out.write(json.dumps(ev) + "\n")
    out.flush()


event("client.start", library="broken", version="0")
event("conn.open")
if cfg["role"] == "publisher":
    out.write("this is not json\n")
    event("publish.invoke", id="msg-1")
    event("publish.ok", id="msg-1")  # missing "confirmed"
    sys.exit(0)  # no client.exit
signal.signal(signal.SIGTERM, signal.SIG_IGN)
while True:
    time.sleep(1)
