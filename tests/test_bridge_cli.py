"""raman-bridge end to end: a simulator on a real pty, the drivers through it, calibration."""
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from helpers import OutputLines

from firmware_bridge.calibration import fit_wavelengths, raman_shift, wavelength_of_shift, wavelengths
from firmware_bridge.protocols.tcd1304.simulator import TCD1304_COEFFICIENTS, tcd1304_instrument
from firmware_bridge.raman_standards import RAMAN_STANDARDS
from firmware_bridge.sim.serve import make_device

BIN = Path(sys.executable).parent


@pytest.fixture
def simulator(request):
    """Start `raman-bridge simulate` for a protocol and yield its pty path."""
    procs = []

    def start(*args):
        p = subprocess.Popen([str(BIN / "raman-bridge"), "simulate", *args], stdout=subprocess.PIPE, text=True)
        procs.append(p)
        line = OutputLines(p).read_until()
        assert " on /dev/pts/" in line, line
        return line.split(" on ")[1].split()[0]

    yield start
    for p in procs:
        p.terminate()
        p.wait(timeout=10)


def bridge(*args):
    return subprocess.run([str(BIN / "raman-bridge"), *map(str, args)], capture_output=True, text=True, timeout=120)


@pytest.mark.slow
def test_simulate_reports_each_laser_change_and_keeps_a_stable_link(tmp_path):
    """``--link`` names the pty while the simulator runs; every change of the laser is one output line."""
    taken = tmp_path / "taken"
    taken.write_text("a user's file\n")
    r = bridge("simulate", "--protocol", "obp", "--link", taken)
    assert r.returncode == 2 and "not a symbolic link" in r.stderr and taken.read_text() == "a user's file\n"
    link = tmp_path / "spectrometer"
    p = subprocess.Popen([str(BIN / "raman-bridge"), "simulate", "--protocol", "obp", "--instant", "--link", str(link)],
                         stdout=subprocess.PIPE, text=True)
    out = OutputLines(p)
    try:
        banner = out.read_until()
        assert f" on {os.readlink(link)} (also {link}) " in banner, banner
        r = bridge("probe", "--protocol", "obp", "--port", link, "--laser", "785", "--integration", "0.02")
        assert r.returncode == 0, r.stderr
        assert [out.read_until(), out.read_until()] == ["laser on\n", "laser off\n"]
    finally:
        p.terminate()
    assert p.wait(timeout=10) == 0 and out.rest() == "" and not os.path.lexists(link)


@pytest.mark.slow
def test_probe_each_protocol_over_a_pty(simulator):
    for protocol, extra in (("obp", []), ("tcd1304", ["--coefficients", "772.5,0.086,-2.1e-6"]),
                            ("microspec", [])):
        port = simulator("--protocol", protocol, "--instant")
        laser = "532" if protocol == "microspec" else "785"
        r = bridge("probe", "--protocol", protocol, "--port", port, "--laser", laser, "--integration", "0.02", *extra)
        assert r.returncode == 0, r.stderr
        info = json.loads(r.stdout)
        assert info["protocol"] == protocol and info["points"] > 200 and info["max_intensity"] > 0


@pytest.mark.slow
def test_acquire_writes_a_spectrum_raman_device_reads(simulator, tmp_path, shipped_bundle):
    port = simulator("--protocol", "obp")
    out = tmp_path / "s.csv"
    r = bridge("acquire", "--protocol", "obp", "--port", port, "--laser", "785", "--integration", "0.05", "--out", out)
    assert r.returncode == 0, r.stderr
    r = subprocess.run([str(BIN / "raman-device"), "classify", "--model", str(shipped_bundle.path), str(out)],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr  # a valid spectrum on an axis covering the model's
    assert json.loads(r.stdout)["label"] in shipped_bundle.class_names


@pytest.mark.slow
def test_clear_errors_for_missing_port_and_wrong_settings(simulator):
    r = bridge("probe", "--protocol", "obp", "--port", "/dev/ttyNOPE", "--laser", "785")
    assert r.returncode == 2 and "cannot open /dev/ttyNOPE" in r.stderr and "Traceback" not in r.stderr
    port = simulator("--protocol", "tcd1304", "--instant")
    r = bridge("probe", "--protocol", "tcd1304", "--port", port, "--laser", "785")
    assert r.returncode == 2 and "stores no wavelength calibration" in r.stderr
    r = bridge("probe", "--protocol", "tcd1304", "--port", port, "--laser", "785", "--coefficients", "770,0.09",
               "--integration", "0.000001")
    assert r.returncode == 2 and "below the TCD1304's minimum" in r.stderr


@pytest.mark.slow
def test_groupgets_needs_no_integration_time_and_refuses_one(simulator, tmp_path):
    """The GroupGets sketch fixes its integration time.

    The commands work without one, as docs/spectrometers.md shows.
    """
    port = simulator("--protocol", "groupgets", "--instant")
    r = bridge("probe", "--protocol", "groupgets", "--port", port, "--laser", "532")
    assert r.returncode == 0, r.stderr
    info = json.loads(r.stdout)
    assert info["protocol"] == "groupgets" and info["points"] == 288 and info["integration_s"] is None
    out = tmp_path / "s.csv"
    r = bridge("acquire", "--protocol", "groupgets", "--port", port, "--laser", "532", "--averages", "2", "--out", out)
    assert r.returncode == 0, r.stderr
    rows = [ln for ln in out.read_text().splitlines() if not ln.startswith(("#", "raman_shift"))]
    assert np.loadtxt(rows, delimiter=",").shape == (288, 2)
    for command in ("probe", "calibrate"):
        r = bridge(command, "--protocol", "groupgets", "--port", port, "--laser", "532", "--integration", "0.05",
                   *(["--reference", "polystyrene"] if command == "calibrate" else []))
        errors = [ln for ln in r.stderr.splitlines() if ln.strip()]
        assert r.returncode == 2 and len(errors) == 1, r.stderr
        assert errors[0].startswith("error: the GroupGets sketch has a fixed integration time")
        assert "--integration" in errors[0]


def docs_python(page, section):
    """The Python code block of a section (``## section``) of a documentation page."""
    text = (Path(__file__).resolve().parents[1] / "docs" / page).read_text()
    body = text.split(f"\n## {section}\n", 1)[1].split("\n## ", 1)[0]
    return body.split("```python\n", 1)[1].split("```", 1)[0]


@pytest.mark.slow
def test_docs_sim_url_snippet_runs_as_written(tmp_path):
    snippet = docs_python("spectrometers.md", "Simulators")
    r = subprocess.run([sys.executable, "-c", snippet], capture_output=True, text=True, cwd=tmp_path, timeout=60)
    assert r.returncode == 0 and r.stdout.strip() == "b'STS04211'", r.stderr
    # Without the registration line pyserial does not know the scheme: the check can fail.
    unregistered = "\n".join(ln for ln in snippet.splitlines() if "urlhandler" not in ln)
    r = subprocess.run([sys.executable, "-c", unregistered], capture_output=True, text=True, cwd=tmp_path, timeout=60)
    assert r.returncode != 0 and "protocol 'sim' not known" in r.stderr


OBP = ["--protocol", "obp", "--port", "sim://obp?paced=0", "--laser", "785"]
CALIBRATE = ["calibrate", *OBP, "--reference", "polystyrene"]
#: (command line before the option, option, bad values): negative, zero, NaN, infinite or huge
BAD_NUMBERS = [
    (["probe", *OBP], "--baud", ["-5", "0", "921600", "nan", "1e9", "115200.5"]),
    (["probe", "--protocol", "tcd1304", "--port", "sim://tcd1304?paced=0", "--laser", "785"], "--baud", ["0", "100"]),
    (["probe", "--protocol", "obp", "--port", "sim://obp?paced=0"], "--laser", ["-785", "0", "nan", "inf", "1e9"]),
    (["probe", *OBP], "--integration", ["-0.1", "0", "nan", "inf", "1e300"]),
    (["probe", "--protocol", "microspec", "--port", "sim://microspec?paced=0", "--laser", "532"], "--integration",
     ["0", "nan", "1e300"]),
    (["probe", *OBP], "--averages", ["-1", "0", "nan", "2.5", "1000000000000"]),
    (CALIBRATE, "--degree", ["-1", "0", "nan", "99"]),
    (CALIBRATE, "--min-lines", ["-1", "0", "nan"]),
    (CALIBRATE, "--max-rms", ["-0.1", "0", "nan", "inf"]),
    (CALIBRATE, "--guess", ["nan,0.3", "780,inf", "1e999,0.3"]),
    (["simulate", "--protocol", "obp"], "--faults", ["-0.5", "nan", "2"]),
    (["simulate", "--protocol", "obp"], "--seed", ["-1", "nan"]),
    (["simulate", "--protocol", "obp"], "--laser", ["0", "-785", "nan", "1e9"]),
]


@pytest.mark.slow
@pytest.mark.parametrize("before, option, values", BAD_NUMBERS, ids=[f"{b[0]}{o}" for b, o, _ in BAD_NUMBERS])
def test_bad_numbers_are_one_error_line(before, option, values):
    for value in values:
        r = bridge(*before, f"{option}={value}")
        errors = [ln for ln in r.stderr.splitlines() if "error:" in ln]
        assert r.returncode == 2 and len(errors) == 1 and "Traceback" not in r.stderr, (option, value, r.stderr)
        assert option.strip("-").split("-")[0] in errors[0], errors[0]  # it names what is wrong
    if before == ["probe", *OBP] and option == "--baud":  # the protocol's rates are named; one of them works
        assert "choose one of 9600, 19200, 38400, 57600, 115200, 230400, 460800" in bridge(*before, "--baud=0").stderr
        assert bridge(*before, "--baud=57600").returncode == 0


@pytest.mark.slow
def test_output_into_a_reader_that_stopped_is_no_error():
    """`raman-bridge probe ... | head`: a reader gone before the output comes is not an error."""
    p = subprocess.Popen([str(BIN / "raman-bridge"), "probe", *OBP], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         text=True)
    p.stdout.close()  # closed before the command has even started up
    err = p.stderr.read()
    assert p.wait(timeout=60) == 0 and err == ""


@pytest.mark.parametrize("standard", sorted(RAMAN_STANDARDS))
def test_fit_recovers_the_polynomial_from_a_raman_standard(standard, tmp_path):
    x, y = np.loadtxt(standard_scene(tmp_path / "scene.csv", standard), delimiter=",").T
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


#: Mercury and argon lines (NIST, air, nm) spread over the C12880MA's range; 576.960 and 579.066 lie
#: within its resolution of each other and must be left out.
LAMP_NM = (365.015, 404.656, 491.607, 546.074, 576.960, 579.066, 696.543, 738.398, 763.511, 811.531, 842.465)


def standard_scene(path, standard):
    """A scene file of a Raman standard's bands (3 cm-1 wide) on a small floor."""
    x = np.linspace(-300, 3700, 8001)
    y = sum(np.exp(-0.5 * ((x - s) / 3) ** 2) for s in RAMAN_STANDARDS[standard]) + 0.05
    np.savetxt(path, np.c_[x, y], delimiter=",")
    return path


def lamp_scene(path, laser_nm):
    """A scene file of the :data:`LAMP_NM` lines, as Raman shifts from ``laser_nm``.

    The lines are 1 nm wide, wider than the instrument model's sub-pixel sampling.
    """
    x = np.linspace(-12000, 8000, 40001)
    lam = np.array(LAMP_NM)
    y = sum(np.exp(-0.5 * ((x - s) / w) ** 2) for s, w in zip(raman_shift(lam, laser_nm), 1e7 / lam ** 2)) + 0.01
    np.savetxt(path, np.c_[x, y], delimiter=",")
    return path


#: The C12880MA's polynomial to degree 4, 2 nm off: a starting polynomial as a previous calibration gives.
GUESS_C12880 = "314.0,2.6876,-9.527e-4,-9.164e-6,1.390e-8"
#: protocol -> (laser nm, scene, calibrate options, integration and averages options)
CALIBRATION = {
    "obp": (785.0, "polystyrene", ["--reference", "polystyrene"], ["--integration", "0.05", "--averages", "10"]),
    "tcd1304": (785.0, "polystyrene",
                ["--reference", "polystyrene", "--guess", "773.5,0.0862,-2.1e-6", "--degree", "2"],
                ["--integration", "0.05", "--averages", "10"]),
    "microspec": (532.0, "lamp", ["--reference", "LAMP", "--unit", "nm", "--guess", GUESS_C12880,
                                  "--degree", "4"], ["--integration", "0.2", "--averages", "20"]),
    "groupgets": (532.0, "lamp", ["--reference", "LAMP", "--unit", "nm", "--guess", GUESS_C12880,
                                  "--degree", "4"], ["--averages", "20"]),
}


def calibrate(simulator, tmp_path, protocol, scene=None):
    """Run `raman-bridge calibrate` on a simulator of ``protocol`` on a pty; (result, output path)."""
    laser, _, options, settings = CALIBRATION[protocol]
    (tmp_path / "lamp.txt").write_text("".join(f"{v}\n" for v in LAMP_NM))
    options = [str(tmp_path / "lamp.txt") if o == "LAMP" else o for o in options]
    port = simulator("--protocol", protocol, "--instant", *(["--scene", scene] if scene else []))
    out = tmp_path / f"{protocol}.json"
    r = bridge("calibrate", "--protocol", protocol, "--port", port, "--laser", laser, *options, *settings, "--out", out)
    return r, out


def scene_for(tmp_path, protocol):
    """The scene a protocol's calibration looks at: polystyrene, or lamp lines for the C12880MA."""
    laser, kind, _, _ = CALIBRATION[protocol]
    if kind == "lamp":
        return lamp_scene(tmp_path / "lamp.csv", laser)
    return standard_scene(tmp_path / f"{kind}.csv", kind)


@pytest.mark.slow
@pytest.mark.parametrize("protocol", sorted(CALIBRATION))
def test_calibrate_recovers_the_simulators_polynomial(protocol, simulator, tmp_path):
    r, out = calibrate(simulator, tmp_path, protocol, scene_for(tmp_path, protocol))
    assert r.returncode == 0, r.stderr
    fit = json.loads(out.read_text())
    inst = make_device(protocol).instrument  # the oracle: the simulator's own instrument model
    true = wavelengths(inst.coefficients, inst.pixels)
    pixels = np.array(fit["pixels"])
    assert len(set(np.round(pixels).astype(int))) == len(pixels) == fit["lines"]  # one line per pixel, never two
    assert fit["lines"] >= {"obp": 7, "tcd1304": 11, "microspec": 8, "groupgets": 8}[protocol]
    span = slice(int(pixels.min()), int(pixels.max()) + 1)
    error_px = (np.abs(wavelengths(fit["coefficients"], inst.pixels) - true) / np.abs(np.gradient(true)))[span]
    assert error_px.max() < 0.2, error_px.max()
    assert fit["rms_residual_nm"] < 0.25 * np.median(np.abs(np.gradient(true)))
    if protocol in ("microspec", "groupgets"):  # the Hg doublet blends at this resolution
        assert 576.960 not in fit["reference_nm"] and 579.066 not in fit["reference_nm"]
        assert "left out, unresolved" in r.stdout


@pytest.mark.slow
@pytest.mark.parametrize("protocol", sorted(CALIBRATION))
def test_calibrate_refuses_a_spectrum_without_the_standard(protocol, simulator, tmp_path):
    """The shipped pesticide spectra are in the beam, not the standard: no fit is written."""
    r, out = calibrate(simulator, tmp_path, protocol)
    assert r.returncode == 2 and not out.exists(), r.stdout
    errors = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert len(errors) == 1 and errors[0].startswith("error: ") and "is the standard in the beam" in errors[0]


@pytest.mark.slow
def test_calibrate_refuses_lines_the_device_cannot_resolve(simulator, tmp_path):
    """Polystyrene's bands lie closer together than the C12880MA's resolution (8 pixels, 10-20 nm)."""
    scene = standard_scene(tmp_path / "polystyrene.csv", "polystyrene")
    port = simulator("--protocol", "microspec", "--instant", "--scene", scene)
    out = tmp_path / "cal.json"
    r = bridge("calibrate", "--protocol", "microspec", "--port", port, "--laser", "532", "--reference", "polystyrene",
               "--degree", "4", "--integration", "0.2", "--out", out)
    assert r.returncode == 2 and not out.exists() and "unresolved" in r.stderr, r.stderr


@pytest.mark.slow
@pytest.mark.parametrize("command", ["acquire", "calibrate"])
def test_an_existing_out_file_is_replaced_only_with_force(command, simulator, tmp_path):
    out = tmp_path / "mine.txt"
    out.write_text("the user's own file\n")
    port = simulator("--protocol", "obp", "--instant")
    extra = ["--reference", "polystyrene"] if command == "calibrate" else []
    r = bridge(command, "--protocol", "obp", "--port", port, "--laser", "785", *extra, "--out", out)
    assert r.returncode == 2
    assert r.stderr == f"error: {out} already exists; give --force to replace it, or choose another --out\n"
    assert out.read_text() == "the user's own file\n"
    if command == "acquire":  # a spectrum of the shipped scene can always be acquired: --force replaces the file
        r = bridge(command, "--protocol", "obp", "--port", port, "--laser", "785", "--out", out, "--force")
        assert r.returncode == 0 and out.read_text().startswith("# "), r.stderr
