"""A client's config: the real one (with the password) private to the harness and gone after the
client exits; the copy under reports/ has the password as ***. Clients still read amqp_url from
the file they are given (docs/client-protocol.md)."""

from __future__ import annotations

import hashlib
import json
import os
import stat
import subprocess
import sys
from pathlib import Path

from harness.clients import configfile
from harness.clients.protocol import ClientConfig
from harness.clients.supervisor import ClientProcess
from harness.env.procs import PidRecord
from harness.history import HistoryWriter

SECRET = "pa:ss@w/rd-7Q"
URL = "amqp://rcuser:pa%3Ass%40w%2Frd-7Q@127.0.0.1:5672/rc-run"

# a client in its simplest form: read the file it is given, report what it read
CLIENT = [sys.executable, "-c",
          "import hashlib, json, os, sys; p = sys.argv[sys.argv.index('--config') + 1]; "
          "url = json.load(open(p))['amqp_url'].encode(); "
          "print(json.dumps({'url': hashlib.sha256(url).hexdigest(), 'env': os.environ['RABBIT_CHAOS_CONFIG'], "
          "'path': p, 'mode': oct(os.stat(p).st_mode & 0o777)}))"]


def test_redaction_keeps_everything_but_the_password() -> None:
    assert configfile.redact_url(URL) == "amqp://rcuser:***@127.0.0.1:5672/rc-run"
    assert configfile.redact_url("amqp://guest@h:1/v") == "amqp://guest@h:1/v"
    assert configfile.redact_url("p0-a@b") == "p0-a@b"
    data = {"amqp_url": URL, "params": {"extra": [URL]}, "count": 3}
    out = configfile.redacted(data)
    assert "pa%3Ass" not in json.dumps(out) and out["count"] == 3


def test_client_reads_the_real_url_and_reports_get_a_redacted_copy(tmp_path: Path) -> None:
    state, run_dir = tmp_path / "state", tmp_path / "reports" / "run1"
    cfg = ClientConfig(run_id="run1", proc="publisher-0", role="publisher", amqp_url=URL, queue="q",
                       history=str(run_dir / "history" / "publisher-0.jsonl"))
    writer = HistoryWriter(run_dir / "history" / "harness.jsonl", "harness", "harness")
    client = ClientProcess(cfg, CLIENT, run_dir, writer, PidRecord(state / "clients.json"))
    client.start()
    assert client.wait(30) == 0
    assert client.exited.wait(10)
    writer.close()
    seen = json.loads((run_dir / "logs" / "publisher-0.log").read_text())
    # the protocol still works: the client read the real URL from the file it was given
    assert seen["url"] == hashlib.sha256(URL.encode()).hexdigest() and seen["env"] == seen["path"]
    assert seen["mode"] == "0o600"
    private = Path(seen["path"])
    assert private.is_relative_to(state / "private")
    assert not private.exists() and not private.parent.exists()  # deleted when the client exited
    public = json.loads((run_dir / "config" / "publisher-0.json").read_text())
    assert public["amqp_url"] == "amqp://rcuser:***@127.0.0.1:5672/rc-run"
    for f in (tmp_path / "reports").rglob("*"):
        if f.is_file():
            text = f.read_text(errors="replace")
            assert SECRET not in text and "pa%3Ass%40w" not in text, f


def test_private_dirs_are_0700_and_a_dead_harness_leaves_none(tmp_path: Path) -> None:
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                          text=True, check=True)
    stale = tmp_path / "private" / f"{dead.stdout.strip()}-oldrun"
    stale.mkdir(parents=True)
    (stale / "consumer-0.json").write_text("{}")
    mine = configfile.private_dir(tmp_path, "run2")
    assert not stale.exists()
    assert stat.S_IMODE(mine.stat().st_mode) == 0o700 and mine.name == f"{os.getpid()}-run2"
    path = configfile.write({"amqp_url": URL}, mine, tmp_path / "pub" / "c.json")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    configfile.private_dir(tmp_path, "run3")  # a live harness's directory (ours) is never swept
    assert path.exists()
    configfile.discard(path)
    assert not mine.exists()
