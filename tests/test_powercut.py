"""Killing the service (SIGKILL) at random points loses no reported verdict and never damages the record.

Each round starts the real service on the OBP simulator, sends MEASURE over the control port as fast
as it answers, and kills the process after a random delay: inside an acquisition, a classification,
a database write or between them. Then the record must open, pass ``PRAGMA integrity_check`` and hold
every verdict that was reported before the kill, with the same label. Whatever the moment of the kill,
this must hold, so the test does not depend on timing.

SIGKILL ends the process, not the machine: what the kernel had accepted still reaches the disk. That a
power cut loses nothing rests in addition on SQLite's synchronous commits (``synchronous=FULL`` in WAL
mode, checked in ``tests/test_record.py``): a transaction is on the disk before the verdict is sent.
"""
import os
import select
import signal
import subprocess
import sys
import time
import tty
from pathlib import Path

import numpy as np
import pytest
from helpers import OutputLines, wait_ready
from test_runner import write_config

from device.service.record import RecordStore

pytestmark = pytest.mark.slow

BIN = Path(sys.executable).parent
ROUNDS = 10


def round_until_killed(cfg: Path, master: int, delay: float) -> list[dict]:
    """Run the service, trigger continuously, SIGKILL it after ``delay`` s; return the replies received."""
    import json

    proc = subprocess.Popen([str(BIN / "raman-device"), "run", "--config", str(cfg)], stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, text=True)
    try:
        line = wait_ready(OutputLines(proc))
        assert line.startswith("ready: ready"), line
        data, asked, deadline = b"", 0, time.monotonic() + delay
        while time.monotonic() < deadline:
            if asked - data.count(b"\n") < 2:  # keep one command queued behind the running one
                os.write(master, b"MEASURE\n")
                asked += 1
            if select.select([master], [], [], 0.002)[0]:
                data += os.read(master, 65536)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
    while select.select([master], [], [], 0.2)[0]:  # replies written before the kill
        data += os.read(master, 65536)
    return [json.loads(line) for line in data.split(b"\n")[:-1]]  # complete lines only


def test_sigkill_at_random_points_loses_no_reported_verdict(tmp_path, shipped_bundle):
    rng = np.random.default_rng(7)
    master, slave = os.openpty()
    tty.setraw(slave)
    cfg = write_config(tmp_path, shipped_bundle.path, "sim://obp?seed=5", os.ttyname(slave))
    reported = {}
    try:
        for _ in range(ROUNDS):
            for reply in round_until_killed(cfg, master, float(rng.uniform(0.3, 2.5))):
                if reply.get("ok"):
                    reported[reply["id"]] = reply["verdict"]
            store = RecordStore(tmp_path / "data" / "record.db")
            try:
                assert store.integrity_ok()
                recorded = {r.id: r.verdict for r in store.query()}
            finally:
                store.close()
            missing = {i: v for i, v in reported.items() if recorded.get(i) != v}
            assert not missing, f"reported but not recorded: {missing}"
    finally:
        os.close(master)
        os.close(slave)
    print(f"{ROUNDS} kills, {len(reported)} reported verdicts, all recorded")
    assert len(reported) >= ROUNDS  # verdicts were reported in the rounds, so the check had work to do
