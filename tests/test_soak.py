"""A short serial soak: the service against each simulator with injected faults keeps every promise."""
import json
import subprocess
import sys
from pathlib import Path

import pytest

from tools.soak import passed, soak

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_short_soak_on_every_simulator(shipped_bundle):
    results = soak(shipped_bundle.path, acquisitions=24, fault_rate=0.08, seed=3, log=lambda m: None)
    assert set(results) == {"obp", "tcd1304", "microspec"}
    for protocol, c in results.items():
        assert c["acquisitions"] == 24 and c["replies"] == 24, (protocol, c)
        assert sum(c["faults"].values()) > 0 and c["errors"] > 0, (protocol, c)  # the soak had faults to survive
        assert c["wrong_verdicts"] == 0 and c["crashes"] == 0 and c["laser_left_on"] == 0, (protocol, c)
        assert c["records"] == c["replies"] and c["reported_not_recorded"] == 0, (protocol, c)
    assert results["obp"]["checkable"] > 0 and results["tcd1304"]["checkable"] > 0
    assert results["microspec"]["checkable"] == 0  # its verdicts vary without faults: only the loop is checked
    assert passed(results)


@pytest.mark.slow
def test_soak_command(shipped_bundle):
    r = subprocess.run([sys.executable, "-m", "tools", "soak", "--model", str(shipped_bundle.path),
                        "--protocols", "obp", "--acquisitions", "6", "--json"],
                       cwd=ROOT, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    counts = json.loads(r.stdout.splitlines()[-1])["obp"]
    assert counts["acquisitions"] == 6 and counts["crashes"] == 0


def test_the_laser_switch_off_is_retried_and_a_failure_is_a_laser_error():
    from firmware_bridge.errors import LaserError, NackError
    from firmware_bridge.measure import LASER_OFF_ATTEMPTS, switch_off

    calls = []

    def flaky(on):  # refuses twice (a NACK on the line), then obeys
        calls.append(on)
        if len(calls) < 3:
            raise NackError(5, "busy", 0x00180100)

    switch_off(flaky)
    assert calls == [False, False, False]

    def dead(on):
        raise NackError(5, "busy", 0x00180100)

    with pytest.raises(LaserError, match=f"could not be switched off after {LASER_OFF_ATTEMPTS} attempts"):
        switch_off(dead)
