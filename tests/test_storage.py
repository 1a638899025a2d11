"""A record that cannot be written stops measurements, with the reason, before the laser is switched on.

The disk-full and read-only cases run on a real 1 MB tmpfs when this machine lets the tests mount one
(root in a container usually may); the reserve case needs nothing special.
"""
import os
import subprocess
import uuid
from dataclasses import replace

import pytest
from test_service import config

from device.service.config import ConfigError, parse_config
from device.service.control import dispatch
from device.service.measurement import Service
from device.service.record import RECORD_FILE, storage_problem

pytestmark = pytest.mark.device  # needs only the device extra


def test_reserve_above_the_free_space_refuses_measurements(tmp_path, shipped_bundle):
    free = os.statvfs(tmp_path).f_bavail * os.statvfs(tmp_path).f_frsize
    svc = Service(replace(config(tmp_path, shipped_bundle.path, "sim://obp?paced=0"), data_reserve_mb=2 * free / 1e6))
    r = svc.measure("command")
    assert not r["ok"] and "disk full" in r["error"] and "data.reserve_mb" in r["error"]
    assert svc._spectrometer is None  # refused before the spectrometer or its laser was touched
    status = svc.status()
    assert status["state"] == "storage unavailable" and "disk full" in status["storage_error"]
    assert svc.store.count() == 0
    svc.close()


def test_reserve_is_configurable_and_checked(tmp_path, shipped_bundle):
    base = (f'[spectrometer]\nprotocol = "obp"\nport = "sim://obp"\nlaser_nm = 785.0\n'
            f'[model]\nbundle = "{shipped_bundle.path}"\n')
    assert parse_config(base + '[data]\ndirectory = "/tmp/x"\nreserve_mb = 5\n').data_reserve_mb == 5
    assert parse_config(base + '[data]\ndirectory = "/tmp/x"\n').data_reserve_mb == 50
    with pytest.raises(ConfigError, match="data.reserve_mb: must be between 0 and 1000000"):
        parse_config(base + '[data]\ndirectory = "/tmp/x"\nreserve_mb = -1\n')


def test_a_missing_directory_is_reported(tmp_path):
    assert "cannot be examined" in storage_problem(tmp_path / "nope", 0)


@pytest.fixture
def tiny_fs(tmp_path):
    """A real 1 MB tmpfs, or a skip when this machine does not let the tests mount one."""
    mnt = tmp_path / f"fs-{uuid.uuid4().hex[:6]}"
    mnt.mkdir()
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mnt)], capture_output=True, text=True)
    if r.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({r.stderr.strip()}); the reserve test covers the refusal")
    yield mnt
    subprocess.run(["umount", "-l", str(mnt)], capture_output=True)


@pytest.mark.slow
def test_real_disk_full_then_read_only(tiny_fs, tmp_path, shipped_bundle):
    cfg = config(tiny_fs, shipped_bundle.path, "sim://obp?paced=0")
    svc = Service(replace(cfg, data_reserve_mb=0.0))  # let SQLite meet ENOSPC itself
    reported = {}
    for _ in range(200):
        r = svc.measure("command")
        if not r["ok"]:
            break
        reported[r["id"]] = r["verdict"]
    assert not r["ok"] and "database or disk is full" in r["error"] and "no verdict is reported" in r["error"], r
    assert reported
    recorded = {rec.id: rec.verdict for rec in svc.store.query()}
    assert all(recorded.get(i) == v for i, v in reported.items())  # every reported verdict is on the full disk
    assert svc._spectrometer.port.line.device.laser_on is False
    svc.close()
    subprocess.run(["mount", "-o", "remount,ro", str(tiny_fs)], check=True)
    svc = Service(cfg)
    r = svc.measure("command")
    assert not r["ok"] and "read-only file system" in r["error"]
    status = dispatch("STATUS", svc)
    assert status["state"] == "storage unavailable" and "read-only" in status["storage_error"]
    svc.close()
    assert (tiny_fs / "data" / RECORD_FILE).exists()
