"""Relative intensity response: fitted from a standard on the simulators, against their true response."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from helpers import examples_service, shipped_with_card
from test_drivers import SETUP, configure

from device.errors import BundleError
from firmware_bridge.calibration import raman_shift
from firmware_bridge.errors import BridgeError, CalibrationError
from firmware_bridge.measure import acquire_signal, measure
from firmware_bridge.registry import PROTOCOLS
from firmware_bridge.response import SRM_2241, Response, fit_response, standard_from_file
from firmware_bridge.sim.serve import make_device
from firmware_bridge.sim.standards import srm_2241, write_scene

pytestmark = pytest.mark.device  # needs only the device extra

ROOT = Path(__file__).resolve().parents[1]


def standard_scene(path: Path) -> Path:
    """SRM 2241's luminescence as a scene file the simulators show (two columns, cm-1 and intensity)."""
    return write_scene(path, *srm_2241())


def test_the_srm_2241_polynomial_and_its_range():
    x = np.array([100.0, 200.0, 1000.0, 3500.0, 3600.0])
    y = SRM_2241.relative(x)
    assert np.isnan(y[[0, 4]]).all() and (y[1:4] > 0).all()
    assert y[2] == pytest.approx(sum(c * 1000.0 ** i for i, c in enumerate(SRM_2241.coefficients)))


@pytest.mark.parametrize("protocol", ["obp", "tcd1304"])
def test_the_fitted_response_is_the_simulated_instruments(tmp_path, protocol):
    """The response fitted from the standard matches the simulator's own response (its known truth)."""
    scene = standard_scene(tmp_path / "srm2241.csv")
    kwargs, laser, seconds, averages = SETUP[protocol]
    with PROTOCOLS[protocol].driver()(f"sim://{protocol}?paced=0&seed=3&scene={scene}", **kwargs) as spec:
        configure(spec, seconds, 4 * averages)
        signal, raw, meta = acquire_signal(spec)
        shift = raman_shift(spec.wavelengths(), laser)
        truth = spec.port.line.device.instrument.response()
    response = fit_response(shift, signal, SRM_2241, laser, raw=raw, full_scale=meta.get("full_scale"),
                            inverted=bool(meta.get("inverted")))
    usable = ~response.masked
    assert usable.mean() > 0.5
    expected = truth / truth[usable].max()
    # where the standard gives little light, the dark level's uncertainty (a few counts) dominates
    strong = usable & (signal > 0.2 * signal.max())
    assert strong.mean() > 0.5
    assert np.max(np.abs(response.values[strong] - expected[strong])) < 0.03
    flat = np.ones_like(truth)  # negative control: a response that is not the instrument's
    assert np.max(np.abs(flat[strong] - expected[strong])) > 0.3


def test_a_corrected_measurement_has_the_true_shape(tmp_path):
    """After correction, a sample's spectrum over the standard's curve is flat; before, it has the hump."""
    scene = standard_scene(tmp_path / "srm2241.csv")
    url = f"sim://obp?paced=0&seed=4&scene={scene}"
    driver = PROTOCOLS["obp"].driver()
    with driver(url) as spec:
        spec.set_integration_time(0.2)
        spec.set_averages(8)
        signal, raw, meta = acquire_signal(spec)
        shift = raman_shift(spec.wavelengths(), 785.0)
        response = fit_response(shift, signal, SRM_2241, 785.0, raw=raw, full_scale=meta.get("full_scale"))
        plain = measure(spec, 785.0)
        corrected = measure(spec, 785.0, response=response)
    keep = (corrected.shift > 400) & (corrected.shift < 3000)
    truth = SRM_2241.relative(corrected.shift[keep])
    before, after = plain.intensity[keep] / truth, corrected.intensity[keep] / truth
    assert np.std(after / after.mean()) < 0.01 and np.std(before / before.mean()) > 0.05
    assert corrected.meta["response_corrected"] == SRM_2241.name
    assert plain.meta.get("response_corrected") is None


def test_bad_references_are_refused_with_the_reason(tmp_path):
    shift = np.linspace(150, 3400, 1024)
    true = SRM_2241.relative(shift)
    hump = 1 - 0.4 * np.linspace(-1, 1, 1024) ** 2
    rng = np.random.default_rng(0)
    good = 5000 * np.nan_to_num(true) * hump + rng.normal(0, 5, 1024)
    assert fit_response(shift, good, SRM_2241, 785.0).masked.sum() > 0  # below 200 cm-1: outside the standard
    with pytest.raises(CalibrationError, match="too weak"):
        fit_response(shift, 5 * np.nan_to_num(true) * hump + rng.normal(0, 5, 1024), SRM_2241, 785.0)
    with pytest.raises(CalibrationError, match="saturated"):
        fit_response(shift, good, SRM_2241, 785.0, raw=np.full(1024, 65535.0), full_scale=65535)
    bands = good + 20000 * np.exp(-0.5 * ((shift - 1001) / 4) ** 2)  # a Raman spectrum, not a luminescence
    with pytest.raises(CalibrationError, match="does not look like NIST SRM 2241"):
        fit_response(shift, bands, SRM_2241, 785.0)
    with pytest.raises(CalibrationError, match="certified for 785 nm"):
        fit_response(shift, good, SRM_2241, 532.0)
    with pytest.raises(CalibrationError, match="only 0 % of the pixels"):
        fit_response(np.linspace(4000, 5000, 1024), good, SRM_2241, 785.0)


def test_dead_pixels_are_masked_never_divided_by_zero():
    shift = np.linspace(250, 3400, 1024)
    signal = 5000 * SRM_2241.relative(shift) * (1 - 0.4 * np.linspace(-1, 1, 1024) ** 2)
    signal[-60:] = 1e-3 * signal[-60:]  # a filter edge: hardly any light
    signal[[100, 500]] = 0.0  # two dead pixels
    signal += np.random.default_rng(1).normal(0, 2, 1024)
    fitted = fit_response(shift, signal, SRM_2241, 785.0)
    assert fitted.masked[-60:].all() and fitted.masked[[100, 500]].all() and fitted.masked.sum() == 62
    corrected = fitted.correct(signal)
    assert np.isfinite(corrected).all() and corrected[-60:].max() <= 10 * np.abs(signal[-60:]).max() + 1e-9
    ranges = fitted.masked_ranges(shift)
    assert len(ranges) == 3 and ranges[-1] == (pytest.approx(shift[-60]), pytest.approx(shift[-1]))
    response = Response(np.where(np.arange(1024) < 1000, 1.0, 0.05), np.arange(1024) >= 1000, 10.0, "test", 785.0)
    corrected = response.correct(np.ones(1024))
    assert np.isfinite(corrected).all() and corrected.max() == pytest.approx(10.0)
    assert response.masked_ranges(shift) == [(pytest.approx(shift[1000]), pytest.approx(shift[-1]))]


def test_the_response_file_round_trip_and_its_checks():
    response = Response(np.linspace(0.5, 1.0, 100), np.zeros(100, bool), 10.0, "NIST SRM 2241 (785 nm)", 785.0)
    again = Response.from_json(json.loads(json.dumps(response.to_json())), pixels=100)
    assert np.allclose(again.values, response.values, atol=1e-7) and again.standard == response.standard
    with pytest.raises(CalibrationError, match="for 100 pixels, the spectrometer has 2048"):
        Response.from_json(response.to_json(), pixels=2048)
    with pytest.raises(CalibrationError, match="malformed"):
        Response.from_json({"response": [1.0]})
    with pytest.raises(CalibrationError, match="outside"):
        Response.from_json({**response.to_json(), "response": [0.0] * 100})


def test_a_standard_from_a_file(tmp_path):
    path = tmp_path / "lamp.txt"
    x = np.linspace(300, 3000, 50)
    np.savetxt(path, np.column_stack([x, 1 + x / 3000]))
    lamp = standard_from_file(path)
    assert lamp.valid == (300.0, 3000.0) and lamp.relative(1500.0) == pytest.approx(1.5)
    (tmp_path / "bad.txt").write_text("1 2\n")
    with pytest.raises(CalibrationError, match="at least 10 rows"):
        standard_from_file(tmp_path / "bad.txt")


def calibrate_response_command(tmp_path: Path) -> tuple[list, Path]:
    """``raman-bridge calibrate-response`` on the OBP simulator showing SRM 2241, and the file it writes."""
    scene = standard_scene(tmp_path / "srm2241.csv")
    out = tmp_path / "response.json"
    return [sys.executable, "-m", "firmware_bridge.cli", "calibrate-response", "--protocol", "obp", "--port",
            f"sim://obp?paced=0&scene={scene}", "--laser", "785", "--integration", "0.2", "--averages", "8",
            "--out", str(out)], out


def test_calibrate_response_command(tmp_path):
    cmd, out = calibrate_response_command(tmp_path)
    r = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
    assert r.returncode == 0, r.stderr
    assert "masked" in r.stdout and Response.from_json(json.loads(out.read_text()), pixels=1024).values.max() == 1
    again = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
    assert again.returncode == 2 and "exists" in again.stderr


def test_the_service_applies_the_configured_response(tmp_path):
    from device.service.config import parse_config
    from device.service.measurement import Service

    cmd, out = calibrate_response_command(tmp_path)
    assert subprocess.run(cmd, capture_output=True, cwd=ROOT).returncode == 0

    def service(response: Path) -> Service:
        return Service(parse_config(f"""
[spectrometer]
protocol = "obp"
port = "sim://obp?paced=0&seed=2&scene={ROOT / 'models/sers-pesticides/examples'}"
laser_nm = 785.0
response = "{response}"
[model]
bundle = "{ROOT / 'models/sers-pesticides'}"
[data]
directory = "{tmp_path / 'data'}"
"""))

    svc = service(out)
    assert svc.measure("command")["ok"]
    device = svc.store.last().device
    assert device["response_corrected"] == SRM_2241.name and isinstance(device["response_masked_cm1"], list)
    svc.close()
    bad = tmp_path / "short.json"
    bad.write_text(json.dumps({**json.loads(out.read_text()), "response": [1.0] * 10, "masked": []}))
    svc = service(bad)
    r = svc.measure("command")
    assert not r["ok"] and "for 10 pixels, the spectrometer has 1024" in r["error"]
    assert svc.status()["state"] == "no spectrometer"
    svc.close()


def test_a_model_trained_on_corrected_spectra_needs_the_response(tmp_path):
    """A card saying ``intensity_response.corrected``: refused without spectrometer.response, served with it."""
    from device.inference.bundle import load_bundle

    bundle = shipped_with_card(ROOT / "models/sers-pesticides", tmp_path / "corrected",
                               intensity_response={"corrected": True, "meaning": "trained on corrected spectra"})
    assert load_bundle(bundle).response_corrected
    assert not load_bundle(ROOT / "models/sers-pesticides").response_corrected
    cmd, out = calibrate_response_command(tmp_path)
    assert subprocess.run(cmd, capture_output=True, cwd=ROOT).returncode == 0

    def service(model: Path, response: Path | None):
        return examples_service(tmp_path / "data", model, f'response = "{response}"' if response else "")

    svc = service(bundle, None)
    status = svc.status()
    assert status["state"] == "model does not fit the spectrometer"
    assert "trained on intensity-response-corrected spectra" in status["model_problem"]
    r = svc.measure("command")
    assert not r["ok"] and "calibrate-response" in r["error"] and svc.store.last().raw is None
    svc.close()
    for model, response in ((bundle, out), (ROOT / "models/sers-pesticides", None)):  # the controls
        svc = service(model, response)
        assert svc.measure("command")["ok"] and svc.status()["model_problem"] is None
        svc.close()
    wrong = shipped_with_card(ROOT / "models/sers-pesticides", tmp_path / "wrong",
                              intensity_response={"corrected": "yes"})
    with pytest.raises(BundleError, match="intensity_response in model.json must be an object"):
        load_bundle(wrong)


def test_another_unit_of_a_model_by_url_options(tmp_path):
    """``response``, ``resolution`` and ``axis_error`` make another unit: the response fit sees its response."""
    scene = standard_scene(tmp_path / "srm2241.csv")
    url = f"sim://obp?paced=0&seed=3&scene={scene}&response=0.85:0.2:-0.25&resolution=8&axis_error=0.05"
    with PROTOCOLS["obp"].driver()(url) as spec:
        configure(spec, 0.4, 15)
        signal, raw, meta = acquire_signal(spec)
        instrument = spec.port.line.device.instrument
        shift = raman_shift(spec.wavelengths(), 785.0)
        stored = spec.wavelengths()
    assert instrument.resolution_pixels == 8.0 and instrument.axis_error_nm == 0.05
    # the device's polynomial (float32 coefficients) is off the true axis by the error
    assert np.allclose(instrument.shifts(), raman_shift(stored + 0.05, 785.0), rtol=0, atol=0.01)
    assert np.min(np.abs(instrument.shifts() - raman_shift(stored, 785.0))) > 0.4
    truth = np.polynomial.polynomial.polyval(np.linspace(-1, 1, 1024), (0.85, 0.2, -0.25))
    response = fit_response(shift, signal, SRM_2241, 785.0, raw=raw)
    strong = ~response.masked & (signal > 0.2 * signal.max())
    assert np.max(np.abs(response.values[strong] - (truth / truth[~response.masked].max())[strong])) < 0.03
    default = np.polynomial.polynomial.polyval(np.linspace(-1, 1, 1024), (1.0, 0.0, -0.4))  # the control
    assert np.max(np.abs(response.values[strong] - default[strong])) > 0.1
    for option, message in (("response=-1", "must be positive over the detector"),
                            ("resolution=0", "give 0.5 to 50 pixels"), ("axis_error=9", "at most 5 nm")):
        with pytest.raises(BridgeError, match=message):
            PROTOCOLS["obp"].driver()(f"sim://obp?paced=0&{option}").open()


@pytest.mark.parametrize("protocol", ["microspec", "groupgets"])
def test_a_lamp_and_a_dark_file_calibrate_the_c12880ma(tmp_path, protocol):
    """The C12880MA sketches cannot switch their light: a dark saved by ``acquire`` first, then a lamp's curve."""
    x = np.linspace(-16000.0, 12000.0, 500)  # beyond the detector's -13,200 to 7,400 cm-1 at 532 nm
    lamp = 1.0 + 0.5 * np.exp(-0.5 * ((x + 2000.0) / 6000.0) ** 2)  # a smooth lamp, brighter to the blue
    np.savetxt(tmp_path / "lamp.txt", np.column_stack([x, lamp]))
    write_scene(tmp_path / "lamp.csv", x, lamp)
    write_scene(tmp_path / "off.csv", np.array([50000.0, 50001.0, 50002.0]), np.array([0.0, 1.0, 0.0]))  # no light
    _, laser, seconds, averages = SETUP[protocol]
    timing = [] if protocol == "groupgets" else ["--integration", str(seconds)]

    def bridge(command, scene, *options):
        return subprocess.run([sys.executable, "-m", "firmware_bridge.cli", command, "--protocol", protocol, "--port",
                               f"sim://{protocol}?paced=0&seed=4&scene={tmp_path / scene}", "--laser", str(laser),
                               *timing, "--averages", str(4 * averages), *options],
                              capture_output=True, text=True, cwd=ROOT)

    assert bridge("acquire", "off.csv", "--out", str(tmp_path / "dark.csv")).returncode == 0
    lamp_file = str(tmp_path / "lamp.txt")
    refused = bridge("calibrate-response", "lamp.csv", "--standard", lamp_file, "--out", str(tmp_path / "no.json"))
    assert refused.returncode == 2 and "without a dark frame" in refused.stderr and not (tmp_path / "no.json").exists()
    done = bridge("calibrate-response", "lamp.csv", "--standard", lamp_file, "--dark", str(tmp_path / "dark.csv"),
                  "--out", str(tmp_path / "r.json"))
    assert done.returncode == 0, done.stderr
    truth = make_device(protocol).instrument.response()
    response = Response.from_json(json.loads((tmp_path / "r.json").read_text()), pixels=truth.size)
    usable = ~response.masked
    expected = truth / truth[usable].max()
    assert usable.mean() > 0.5 and np.max(np.abs(response.values[usable] - expected[usable])) < 0.03
    assert np.max(np.abs(1.0 - expected[usable])) > 0.3  # the control: the simulated response is far from flat
    (tmp_path / "bad.csv").write_text("# dark\nraman_shift_cm-1,intensity\n1,2\nnot,numbers\n")
    bad = bridge("calibrate-response", "lamp.csv", "--standard", lamp_file, "--dark", str(tmp_path / "bad.csv"),
                 "--out", str(tmp_path / "b.json"))
    assert bad.returncode == 2 and "line 4" in bad.stderr
