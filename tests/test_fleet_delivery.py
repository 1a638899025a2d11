"""Delivery from the record to the fleet database through a real Mosquitto: at least once, stored once.

Each test measures continuously (records committed to a real record file while the uplink runs) and
breaks something on the way: the broker stopped and started again, the uplink killed with SIGKILL at
random points, the collector killed in the middle of a backlog. In the end every measurement of the
record is in the fleet database exactly once (the database's unique key would refuse a second row,
so the check is that the sets are equal and that duplicates did arrive and were dropped, where they must
have). The collector stores into SQLite, and once into a real PostgreSQL server.
"""
from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from fleet_servers import broker, pki, postgres, postgres_server  # noqa: F401
from helpers import OutputLines

from device.service.config import load_config
from device.service.record import Record, RecordStore
from device.uplink.uplink import CURSOR_FILE, Uplink, read_cursor
from fleet.collector import Collector
from fleet.database import FleetDatabase

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[1]
TIMEOUT = 60.0


def device_config(tmp_path: Path, broker, device: str) -> Path:
    """A configuration with an [uplink] to ``broker`` as ``device`` (its certificate from the test PKI)."""
    cert, key = broker.pki.files(device)
    path = tmp_path / device / "raman-edge.toml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"""
[spectrometer]
protocol = "obp"
port = "/dev/null"
laser_nm = 785.0
[model]
bundle = "{ROOT / 'models/sers-pesticides'}"
[data]
directory = "{path.parent / 'data'}"
[uplink]
broker = "{broker.host}"
port = {broker.port}
device_id = "{device}"
ca = "{broker.pki.ca}"
certificate = "{cert}"
key = "{key}"
keepalive_s = 5
""")
    return path


class Measuring:
    """Measurements committed to a device's record, one every ``period`` s, until :meth:`stop`."""

    def __init__(self, config_path: Path, period: float = 0.01):
        self.store = RecordStore(load_config(config_path).data_directory / "record.db")
        self.period, self._stop = period, threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def add(self, n: int) -> None:
        rng = np.random.default_rng(n)
        for _ in range(n):
            self.store.add(Record("control-port", {"protocol": "obp"}, None, np.linspace(400, 1800, 700),
                                  rng.random(700), "m@1", {}, {"a": 1.0}, "a", 1.0))

    def _run(self) -> None:
        while not self._stop.wait(self.period):
            self.add(1)

    def stop(self) -> set:
        """Stop measuring; the ids of every measurement recorded."""
        self._stop.set()
        self.thread.join(TIMEOUT)
        return {r.id for r in self.store.query()}


class Running:
    """An object with ``run()`` and ``stop()`` (the uplink, the collector) in a thread of its own."""

    def __init__(self, part):
        self.part = part
        self.thread = threading.Thread(target=part.run, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.part.stop()
        self.thread.join(TIMEOUT)
        assert not self.thread.is_alive()


def collector(broker, db) -> Running:
    """The collector on a connection of its own to ``db``'s database, running once it has subscribed.

    Its session then keeps what comes while it is away.
    """
    cert, key = broker.pki.files("collector")
    running = Running(Collector(FleetDatabase(db.url), broker.host, broker.port, broker.pki.ca, cert, key,
                                log=lambda _: None))
    assert running.part.subscribed.wait(TIMEOUT), "the collector did not subscribe"
    return running


def collector_process(broker, db_path: Path) -> subprocess.Popen:
    """``raman-fleet collect`` into ``db_path``, once it says it has subscribed."""
    cert, key = broker.pki.files("collector")
    process = subprocess.Popen([sys.executable, "-m", "fleet.cli", "collect", "--db", str(db_path), "--broker",
                                broker.host, "--port", str(broker.port), "--ca", str(broker.pki.ca), "--cert",
                                str(cert), "--key", str(key)], cwd=ROOT, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True)
    OutputLines(process).read_until(lambda line: line.startswith("collect: subscribed"), TIMEOUT)
    return process


def stored_ids(db: FleetDatabase, device: str) -> list[int]:
    return sorted(m["record_id"] for m in db.measurements(device=device))


def wait_for(condition, what: str, timeout: float = TIMEOUT) -> None:
    """Wait until ``condition()`` holds, looking every 50 ms, for at most ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"not within {timeout:g} s: {what}"
        time.sleep(0.05)


def uplink_process(config: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "device.uplink.cli", "--config", str(config)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, cwd=ROOT)


def test_a_broker_outage_loses_nothing_and_stores_nothing_twice(tmp_path, broker):
    config = device_config(tmp_path, broker, "pi-001")
    db = FleetDatabase(tmp_path / "fleet.db")
    central = collector(broker, db)
    measuring = Measuring(config)
    uplink = Running(Uplink(load_config(config), log=lambda _: None))
    wait_for(lambda: db.count() >= 20, "the first measurements stored")
    broker.stop()
    during = measuring.store.count()
    wait_for(lambda: measuring.store.count() >= during + 50, "measuring goes on with the broker away")
    broker.start()
    recorded = measuring.stop()
    wait_for(lambda: db.count() >= len(recorded), f"all {len(recorded)} measurements stored")
    assert stored_ids(db, "pi-001") == sorted(recorded)
    uplink.stop()
    central.stop()
    assert read_cursor(load_config(config).data_directory / CURSOR_FILE, measuring.store.store_id) == max(recorded)


def test_an_uplink_killed_at_random_points_loses_nothing(tmp_path, broker):
    config = device_config(tmp_path, broker, "pi-002")
    db = FleetDatabase(tmp_path / "fleet.db")
    running = collector(broker, db)
    measuring = Measuring(config, period=0.005)
    rng = random.Random(18)
    for _ in range(10):
        process = uplink_process(config)
        until = db.count() + rng.randint(1, 150)  # killed once this many are stored: a random point in its work
        wait_for(lambda n=until: db.count() >= n, f"{until} measurements stored")
        process.send_signal(signal.SIGKILL)
        process.wait(TIMEOUT)
    process = uplink_process(config)
    recorded = measuring.stop()
    wait_for(lambda: db.count() >= len(recorded), f"all {len(recorded)} measurements stored")
    process.send_signal(signal.SIGTERM)
    assert process.wait(TIMEOUT) == 0, process.stderr.read().decode()
    running.stop()
    assert stored_ids(db, "pi-002") == sorted(recorded)


def test_a_collector_killed_mid_ingest_loses_nothing(tmp_path, broker):
    config = device_config(tmp_path, broker, "pi-003")
    measuring = Measuring(config, period=3600)
    measuring.add(3000)
    recorded = measuring.stop()
    db_path = tmp_path / "fleet.db"
    first = collector_process(broker, db_path)
    uplink = Running(Uplink(load_config(config), log=lambda _: None))
    db = FleetDatabase(db_path)
    wait_for(lambda: db.count() >= 300, "the collector in the middle of the backlog")
    first.send_signal(signal.SIGKILL)
    first.wait(TIMEOUT)
    assert 0 < db.count() < len(recorded), "killed after the backlog was stored: the test proves nothing"
    first.stdout.close()
    second = collector_process(broker, db_path)
    wait_for(lambda: db.count() >= len(recorded), f"all {len(recorded)} measurements stored")
    second.send_signal(signal.SIGTERM)
    assert second.wait(TIMEOUT) == 0
    uplink.stop()
    assert stored_ids(db, "pi-003") == sorted(recorded)


def test_the_collector_stores_into_postgresql_once_each(tmp_path, broker, postgres):
    config = device_config(tmp_path, broker, "pi-004")
    db = FleetDatabase(postgres)
    assert db.kind == "postgresql"
    central = collector(broker, db)
    measuring = Measuring(config, period=3600)
    measuring.add(200)
    uplink = Running(Uplink(load_config(config), log=lambda _: None))
    wait_for(lambda: db.count() >= 200, "200 measurements in PostgreSQL")
    uplink.stop()
    os.remove(load_config(config).data_directory / CURSOR_FILE)  # the device forgets what it sent: all again
    uplink = Running(Uplink(load_config(config), log=lambda _: None))
    wait_for(lambda: central.part.seen >= 400, "every measurement delivered a second time")
    uplink.stop()
    wait_for(lambda: not {d["device"]: d for d in db.devices()}["pi-004"]["online"], "its last word: offline")
    central.stop()
    assert stored_ids(db, "pi-004") == sorted(measuring.stop())
    assert {d["device"]: d for d in db.devices()}["pi-004"]["measurements"] == 200
