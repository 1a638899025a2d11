"""Resolution harmonisation: broadening against SciPy, widths in quadrature, the card, the device and the service."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from helpers import examples_service, shipped_with_card

from device.errors import BundleError, ResolutionError
from device.inference.bundle import load_bundle
from device.inference.classifier import Classifier
from device.inference.readers import read_spectra
from device.inference.resolution import COARSER_TOLERANCE, broaden, harmonising_fwhm, resolution_problem
from device.inference.spectrum import Spectrum

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = ROOT / "models/sers-pesticides"
X = np.arange(400.0, 1800.0, 2.0)


def band(centre: float, fwhm: float) -> np.ndarray:
    """A Gaussian band of FWHM ``fwhm`` cm-1 on :data:`X`."""
    return np.exp(-4 * np.log(2) * ((X - centre) / fwhm) ** 2)


def measured_fwhm(y: np.ndarray) -> float:
    """The FWHM (cm-1) of ``y``'s highest band, by SciPy's ``peak_widths``."""
    from scipy.signal import peak_widths

    return float(peak_widths(y, [int(np.argmax(y))], rel_height=0.5)[0][0] * (X[1] - X[0]))


@pytest.mark.parametrize("fwhm", [6.0, 20.0, 45.0])
def test_broadening_is_scipys_gaussian_filter(fwhm):
    from scipy.ndimage import gaussian_filter1d

    y = band(1000.0, 5.0) + 0.3 * band(1300.0, 12.0) + 0.001 * X
    sigma = fwhm / 2.3548200450309493 / (X[1] - X[0])
    got = broaden(y[None], X, fwhm)[0]
    assert np.max(np.abs(got - gaussian_filter1d(y, sigma, mode="nearest", truncate=8.0))) < 1e-4
    assert np.max(np.abs(got - gaussian_filter1d(y, 0.8 * sigma, mode="nearest", truncate=8.0))) > 1e-3  # control


@pytest.mark.parametrize("source, target", [(5.0, 30.0), (17.0, 36.0), (30.0, 31.0)])
def test_the_harmonising_width_brings_a_band_to_the_target_resolution(source, target):
    """Widths add in quadrature: a band of the source's width ends at the target's, by SciPy's measure."""
    y = band(1100.0, source)
    extra = harmonising_fwhm(source, target)
    assert measured_fwhm(broaden(y[None], X, extra)[0]) == pytest.approx(target, rel=0.02)
    linear = broaden(y[None], X, target - source)[0]  # the control: widths do not add linearly
    assert measured_fwhm(linear) < 0.97 * target


def test_a_coarser_instrument_cannot_be_harmonised():
    assert harmonising_fwhm(30.0 * (1 + COARSER_TOLERANCE / 2), 30.0) == 0.0  # within the tolerance: as it is
    with pytest.raises(ValueError, match="coarser than 30"):
        harmonising_fwhm(30.0 * (1 + 2 * COARSER_TOLERANCE), 30.0)
    assert resolution_problem(None, None) is None and resolution_problem(50.0, None) is None
    assert "spectrometer.resolution_cm1 is not given" in resolution_problem(None, 30.0)
    assert "--resolution-cm1 40" in resolution_problem(40.0, 30.0)
    assert resolution_problem(20.0, 30.0) is None


def harmonised_bundle(tmp_path: Path, fwhm) -> Path:
    """The shipped SERS bundle, its card saying its spectra were brought to ``fwhm`` cm-1."""
    return shipped_with_card(SHIPPED, tmp_path / "harmonised",
                             resolution={"fwhm_cm1": fwhm, "source_fwhm_cm1": 10.0, "meaning": "broadened"})


def test_the_classifier_broadens_to_the_models_resolution(tmp_path):
    from scipy.ndimage import gaussian_filter1d

    bundle = load_bundle(harmonised_bundle(tmp_path, 40.0))
    assert bundle.resolution_cm1 == 40.0 and load_bundle(SHIPPED).resolution_cm1 is None
    clf = Classifier(bundle, resolution_cm1=24.0)
    assert clf.broadening_cm1 == pytest.approx(32.0)
    axis = bundle.axis.values
    s = Spectrum(axis, band(1000.0, 8.0) if axis.size == X.size else np.interp(axis, X, band(1000.0, 8.0)))
    sigma = 32.0 / 2.3548200450309493 / bundle.axis.step
    reference = gaussian_filter1d(s.intensity, sigma, mode="nearest", truncate=8.0)
    assert np.max(np.abs(clf.on_axis([s])[0] - reference)) < 1e-4
    assert np.array_equal(Classifier(bundle).on_axis([s])[0], s.intensity)  # none given: taken as harmonised
    with pytest.raises(ResolutionError, match="coarser than the model's"):
        Classifier(bundle, resolution_cm1=60.0)


@pytest.mark.parametrize("value", [-1.0, 0, "wide", True])
def test_a_card_with_a_wrong_resolution_is_refused(tmp_path, value):
    with pytest.raises(BundleError, match="resolution in model.json must be an object"):
        load_bundle(harmonised_bundle(tmp_path, value))


def test_classify_needs_the_instruments_resolution(tmp_path):
    bundle = harmonised_bundle(tmp_path, 40.0)
    example = next((SHIPPED / "examples").rglob("*.CSV"))
    cmd = [sys.executable, "-m", "device.cli", "classify", "--model", str(bundle), str(example)]
    refused = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
    assert refused.returncode != 0 and refused.stderr.count("\n") == 1 and "Traceback" not in refused.stderr
    assert "--resolution-cm1 is not given: run raman-device sst" in refused.stderr
    done = subprocess.run(cmd[:-1] + ["--resolution-cm1", "20", str(example)], capture_output=True, text=True,
                          cwd=ROOT)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout.splitlines()[0])["label"]
    info = subprocess.run([sys.executable, "-m", "device.cli", "info", "--model", str(bundle)], capture_output=True,
                          text=True, cwd=ROOT)
    assert json.loads(info.stdout)["resolution_cm1"] == 40.0


def test_the_service_refuses_verdicts_until_the_resolution_fits(tmp_path):
    bundle = harmonised_bundle(tmp_path, 40.0)

    def service(resolution: float | None):
        return examples_service(tmp_path / "data", bundle, f"resolution_cm1 = {resolution}" if resolution else "")

    for resolution, expected in ((None, "spectrometer.resolution_cm1 is not given"),
                                 (60.0, "resolution (60 cm-1) is coarser than the model's (40 cm-1)")):
        svc = service(resolution)
        assert expected in svc.status()["model_problem"]
        r = svc.measure("command")
        assert not r["ok"] and expected in r["error"]
        svc.close()
    svc = service(23.0)  # the control: an instrument finer than the model, broadened to it
    assert svc.self_test["passed"] and svc.classifier.broadening_cm1 == pytest.approx(np.sqrt(40**2 - 23**2))
    assert svc.measure("command")["ok"] and svc.status()["model_problem"] is None
    device = svc.store.last().device  # the record says what the model saw
    assert device["resolution_cm1"] == 23.0
    assert device["broadened_cm1"] == pytest.approx(np.sqrt(40**2 - 23**2), abs=0.01)
    svc.close()


def test_fit_trains_at_the_given_resolution(tmp_path):
    """The card states it, and the shipped examples (training spectra) are broadened to it."""
    from trainer.data.dataset import DatasetError
    from trainer.fit import fit_bundle
    from trainer.models.candidates import Candidate
    from trainer.models.linear import LinearSettings

    rng = np.random.default_rng(0)
    centres = (700.0, 1000.0, 1400.0)
    Y = np.array([band(c, 8.0) + 0.01 * rng.standard_normal(X.size) for c in centres for _ in range(12)])
    data = tmp_path / "bands.npz"
    np.savez(data, X=Y, y=np.repeat(np.arange(3), 12), wavenumber=X, class_names=np.array(["a", "b", "c"]))
    candidate = Candidate("logreg", "snv", LinearSettings("logreg", C=1.0), augment=False)
    b = fit_bundle(data, tmp_path / "m", candidate, resolution_cm1=30.0, source_resolution_cm1=8.0,
                   log=lambda msg: None)
    assert b.resolution_cm1 == 30.0 and b.card["resolution"]["source_fwhm_cm1"] == 8.0
    example = read_spectra(b.examples[0][0])[0]
    assert measured_fwhm(np.interp(X, example.shift, example.intensity)) == pytest.approx(30.0, rel=0.05)
    plain = fit_bundle(data, tmp_path / "p", candidate, log=lambda msg: None)  # the control: as recorded
    assert plain.resolution_cm1 is None and plain.card["resolution"]["fwhm_cm1"] is None
    with pytest.raises(DatasetError, match="go together"):
        fit_bundle(data, tmp_path / "x", candidate, resolution_cm1=30.0, log=lambda msg: None)
    with pytest.raises(DatasetError, match="coarser than 30"):
        fit_bundle(data, tmp_path / "y", candidate, resolution_cm1=30.0, source_resolution_cm1=40.0,
                   log=lambda msg: None)
