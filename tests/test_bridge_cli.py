"""raman-bridge end to end: a simulator on a real pty, the drivers through it, calibration."""
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from firmware_bridge.calibration import RAMAN_STANDARDS, fit_wavelengths, wavelength_of_shift, wavelengths
from firmware_bridge.sim.devices import TCD1304_COEFFICIENTS, tcd1304_instrument

BIN = Path(sys.executable).parent


@pytest.fixture
def simulator(request):
    """Start `raman-bridge simulate` for a protocol and yield its pty path."""
    procs = []

    def start(*args):
        p = subprocess.Popen([str(BIN / "raman-bridge"), "simulate", *args], stdout=subprocess.PIPE, text=True)
        procs.append(p)
        line = p.stdout.readline()
        assert " on /dev/pts/" in line, line
        return line.split(" on ")[1].split()[0]

    yield start
    for p in procs:
        p.terminate()
        p.wait(timeout=10)


def bridge(*args):
    return subprocess.run([str(BIN / "raman-bridge"), *map(str, args)], capture_output=True, text=True)


def test_probe_each_protocol_over_a_pty(simulator):
    for protocol, extra in (("obp", []), ("tcd1304", ["--coefficients", "772.5,0.086,-2.1e-6"]),
                            ("microspec", [])):
        port = simulator("--protocol", protocol, "--instant")
        laser = "532" if protocol == "microspec" else "785"
        r = bridge("probe", "--protocol", protocol, "--port", port, "--laser", laser, "--integration", "0.02", *extra)
        assert r.returncode == 0, r.stderr
        info = json.loads(r.stdout)
        assert info["protocol"] == protocol and info["points"] > 200 and info["max_intensity"] > 0


def test_acquire_writes_a_spectrum_raman_device_reads(simulator, tmp_path, shipped_bundle):
    port = simulator("--protocol", "obp")
    out = tmp_path / "s.csv"
    r = bridge("acquire", "--protocol", "obp", "--port", port, "--laser", "785", "--integration", "0.05", "--out", out)
    assert r.returncode == 0, r.stderr
    r = subprocess.run([str(BIN / "raman-device"), "classify", "--model", str(shipped_bundle.path), str(out)],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr  # a valid spectrum on an axis covering the model's
    assert json.loads(r.stdout)["label"] in shipped_bundle.class_names


def test_clear_errors_for_missing_port_and_wrong_settings(simulator):
    r = bridge("probe", "--protocol", "obp", "--port", "/dev/ttyNOPE", "--laser", "785")
    assert r.returncode == 2 and "cannot open /dev/ttyNOPE" in r.stderr and "Traceback" not in r.stderr
    port = simulator("--protocol", "tcd1304", "--instant")
    r = bridge("probe", "--protocol", "tcd1304", "--port", port, "--laser", "785")
    assert r.returncode == 2 and "stores no wavelength calibration" in r.stderr
    r = bridge("probe", "--protocol", "tcd1304", "--port", port, "--laser", "785", "--coefficients", "770,0.09",
               "--integration", "0.000001")
    assert r.returncode == 2 and "below the TCD1304's minimum" in r.stderr


@pytest.mark.parametrize("standard", sorted(RAMAN_STANDARDS))
def test_fit_recovers_the_polynomial_from_a_raman_standard(standard):
    x = np.linspace(-300, 3700, 8001)
    y = sum(np.exp(-0.5 * ((x - s) / 3) ** 2) for s in RAMAN_STANDARDS[standard]) + 0.05
    inst = tcd1304_instrument(785.0)
    rng = np.random.default_rng(0)
    counts = inst.dark_level - np.mean([inst.render(x, y, 0.05, rng) for _ in range(10)], axis=0)
    for offset in (-1.0, 1.5):
        guess = (TCD1304_COEFFICIENTS[0] + offset, TCD1304_COEFFICIENTS[1] * 1.003, TCD1304_COEFFICIENTS[2])
        fit = fit_wavelengths(counts, wavelength_of_shift(RAMAN_STANDARDS[standard], 785.0), guess, degree=2)
        used = slice(int(fit.pixels.min()), int(fit.pixels.max()))
        error = np.abs(wavelengths(fit.coefficients, 3648) - wavelengths(TCD1304_COEFFICIENTS, 3648))[used]
        assert len(fit.pixels) >= 8 and fit.rms_nm < 0.02 and error.max() < 0.02
    with pytest.raises(ValueError, match="reference lines"):
        fit_wavelengths(np.zeros(3648) + 5, wavelength_of_shift(RAMAN_STANDARDS[standard], 785.0), guess, 2)


def test_calibrate_command_on_a_simulated_standard(simulator, tmp_path):
    x = np.linspace(-300, 3700, 8001)
    y = sum(np.exp(-0.5 * ((x - s) / 3) ** 2) for s in RAMAN_STANDARDS["polystyrene"]) + 0.05
    scene = tmp_path / "polystyrene.csv"
    np.savetxt(scene, np.c_[x, y], delimiter=",")
    port = simulator("--protocol", "tcd1304", "--scene", scene, "--instant")
    out = tmp_path / "cal.json"
    r = bridge("calibrate", "--protocol", "tcd1304", "--port", port, "--laser", "785", "--reference", "polystyrene",
               "--guess", "773.5,0.0862,-2.1e-6", "--degree", "2", "--integration", "0.05", "--averages", "10",
               "--out", out)
    assert r.returncode == 0, r.stderr
    fit = json.loads(out.read_text())
    assert fit["lines"] >= 8 and fit["rms_residual_nm"] < 0.02
    np.testing.assert_allclose(wavelengths(fit["coefficients"], 3648)[500:3000],
                               wavelengths(TCD1304_COEFFICIENTS, 3648)[500:3000], atol=0.02)
