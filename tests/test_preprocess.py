"""Preprocessing chains: each step against its outside oracle on real spectra, stored and verified in bundles."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import DATASETS
from helpers import make_bundle
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from device.errors import BundleError
from device.fileio import sha256_file
from device.inference.bundle import NPZ_FILE, load_bundle
from device.inference.classifier import Classifier
from device.inference.cost import bundle_flop_count
from device.inference.network import forward
from device.inference.preprocess import SNV, AsLS, Chain, SavitzkyGolay
from device.inference.spectrum import Axis, Spectrum

BIN = Path(sys.executable).parent
#: Savitzky-Golay on the device against SciPy: relative to the largest output, rounding only.
SAVGOL_RTOL = 1e-10
#: Baseline against pybaselines: relative to the spectrum's largest value (pybaselines' own banded
#: solver rounds to ~1e-10 of it at lam 1e5 - 1e7).
ASLS_RTOL = 1e-8
CHAIN = "asls:1e5:0.01,savgol:11:2:1,snv"


@pytest.fixture(scope="module")
def real_spectra(sers_npz):
    """Real SERS and microplastics spectra (both with strong fluorescence backgrounds), read-only.

    Returns a list of (name, spectra (n, points), axis step cm-1).
    """
    sers = sers_npz["X"][np.linspace(0, len(sers_npz["X"]) - 1, 12).astype(int)]
    sets = [("sers", sers, float(np.diff(sers_npz["wavenumber"]).mean()))]
    micro = DATASETS / "rampp_microplastics" / "rampp_microplastics.npz"
    if micro.exists():
        with np.load(micro, allow_pickle=False) as z:
            X, wn = z["X"].astype(np.float64)[::11], z["wavenumber"].astype(np.float64)
        sets.append(("microplastics", X, float(np.diff(wn).mean())))
    for _, X, _ in sets:
        X.setflags(write=False)  # nothing may modify its input
    return sets


def _rel(a, b, scale) -> float:
    return float(np.abs(a - b).max() / np.abs(scale).max())


@pytest.mark.parametrize("window, order, deriv", [(11, 2, 0), (11, 2, 1), (21, 3, 2), (5, 4, 0), (31, 5, 3)])
def test_savgol_matches_scipy_on_real_spectra(real_spectra, window, order, deriv):
    from scipy.signal import savgol_filter

    for name, X, step in real_spectra:
        ref = savgol_filter(X, window, order, deriv=deriv, delta=step, mode="interp", axis=1)
        got = SavitzkyGolay.design(window, order, deriv, step).apply(X)
        assert _rel(got, ref, ref) < SAVGOL_RTOL, name
        # negative controls: another window, or the derivative over another step, fail the comparison
        assert _rel(SavitzkyGolay.design(window + 2, order, deriv, step).apply(X), ref, ref) > 1e3 * SAVGOL_RTOL
        if deriv:
            assert _rel(SavitzkyGolay.design(window, order, deriv, 2 * step).apply(X), ref, ref) > 1e3 * SAVGOL_RTOL


@pytest.mark.parametrize("lam, p, max_iter", [(1e5, 0.01, 50), (1e7, 0.001, 50), (1e4, 0.05, 5)])
@pytest.mark.slow
def test_asls_matches_pybaselines_on_real_spectra(real_spectra, lam, p, max_iter):
    from pybaselines.whittaker import asls

    for name, X, _ in real_spectra:
        fits = [asls(x, lam=lam, p=p, max_iter=max_iter, tol=1e-3) for x in X]
        ref = np.array([b for b, _ in fits])
        step = AsLS(lam, p, max_iter)
        got = step.baseline(X)
        assert _rel(got, ref, X) < ASLS_RTOL, name
        np.testing.assert_array_equal(step.apply(X), X - got)
        # negative controls: a tenth of lam, or another p, fail the comparison
        assert _rel(AsLS(lam / 10, p, max_iter).baseline(X), ref, X) > 1e3 * ASLS_RTOL
        assert _rel(AsLS(lam, p * 2, max_iter).baseline(X), ref, X) > 1e3 * ASLS_RTOL
    # the batch stops each spectrum at its own iteration, as pybaselines does per spectrum
    assert len({len(params["tol_history"]) for _, params in fits}) > 1 or max_iter < 10


@pytest.mark.device
@pytest.mark.device
def test_asls_weights_too_small_for_lam_are_refused_where_the_fit_would_break():
    from device.inference.preprocess import ASLS_MIN_WEIGHT_PER_LAM

    x = np.linspace(0.0, 50.0, 300)
    y = (1.0 + np.sin(x / 7.0))[None]
    for lam in (1e2, 1e5, 1e8, 1e11):  # the smallest accepted weight fits a finite baseline near the data
        p = lam * ASLS_MIN_WEIGHT_PER_LAM
        Chain.parse(f"asls:{lam!r}:{p!r}", 1.0)
        base = AsLS(lam, p).baseline(y)
        assert np.isfinite(base).all() and np.abs(base).max() < 2 * np.abs(y).max()
    with pytest.raises(ValueError, match="too close to 0 or 1"):
        Chain.parse("asls:1e5:2.2e-16", 1.0)
    with pytest.raises(ZeroDivisionError):  # negative control: the refused step, built anyway, breaks the solver
        AsLS(1e5, 2.2e-16).baseline(y)


def test_asls_removes_a_fluorescence_background():
    x = np.linspace(0, 1, 1500)
    peaks = np.exp(-0.5 * ((x - 0.3) / 0.004) ** 2) + 0.6 * np.exp(-0.5 * ((x - 0.7) / 0.004) ** 2)
    background = 20 * np.exp(-((x - 0.2) / 0.8) ** 2)
    out = AsLS(1e4, 0.01).apply((peaks + background)[None])[0]
    assert np.abs(out - peaks).max() < 0.05 * peaks.max() < 0.01 * np.ptp(background)


@pytest.mark.device
def test_chain_parse_and_text_round_trip():
    chain = Chain.parse(CHAIN, 0.96)
    assert [type(s) for s in chain.steps] == [AsLS, SavitzkyGolay, SNV]
    again = Chain.parse(chain.text, 0.96)
    assert again.text == chain.text and np.array_equal(again.steps[1].matrix, chain.steps[1].matrix)
    assert Chain.parse("none", 1.0).steps == () and Chain.parse("snv", 1.0).is_normalisation
    assert not chain.is_normalisation


@pytest.mark.parametrize("text, message", [
    ("savgol:10:2", "window must be odd"),
    ("savgol:11:11", "order must be from 0 to window - 1"),
    ("savgol:11:2:3", "derivative must be from 0 to the order 2"),
    ("savgol:11", r"write savgol:WINDOW:ORDER\[:DERIV\]"),
    ("asls:1e5", r"write asls:LAM:P\[:MAX_ITER\]"),
    ("asls:1e5:1.5", "p must be between 0 and 1"),
    ("asls:-1:0.01", "lam must be a positive number"),
    ("asls:1e5:2.2e-16", "too close to 0 or 1 for its lam"),
    ("snv:2", "snv takes no parameters"),
    ("wavelet", "unknown step; choose snv"),
    (",".join(["snv"] * 9), "at most 8 steps"),
])
@pytest.mark.device
def test_chain_syntax_errors_name_the_step(text, message):
    with pytest.raises(ValueError, match=message):
        Chain.parse(text, 1.0)


@pytest.mark.device
def test_window_longer_than_the_axis_is_refused():
    with pytest.raises(ValueError, match="longer than the 21-point axis"):
        Chain.parse("savgol:31:2", 1.0, 21)


@pytest.mark.device
def test_chain_never_modifies_its_input():
    X = np.random.default_rng(0).normal(10, 1, (3, 200))
    X.setflags(write=False)
    before = X.copy()
    out = Chain.parse(CHAIN, 1.0).apply(X)
    np.testing.assert_array_equal(X, before)
    assert out.shape == X.shape and out.dtype == np.float64


def _oracle_chain(Y: np.ndarray, step: float) -> np.ndarray:
    """``CHAIN`` computed with pybaselines and SciPy."""
    from pybaselines.whittaker import asls
    from scipy.signal import savgol_filter

    Y = Y - np.array([asls(y, lam=1e5, p=0.01, max_iter=50, tol=1e-3)[0] for y in Y])
    Y = savgol_filter(Y, 11, 2, deriv=1, delta=step, mode="interp", axis=1)
    Y = Y - Y.mean(axis=1, keepdims=True)
    return Y / Y.std(axis=1, keepdims=True)


@pytest.mark.slow
def test_bundle_stores_the_chain_and_the_classifier_applies_it(tmp_path, sers_sample):
    Y, wn = sers_sample
    axis = Axis(600, 1800, 1201)
    b = make_bundle(tmp_path / "b", axis=axis, normalisation=CHAIN)
    with np.load(tmp_path / "b" / NPZ_FILE, allow_pickle=False) as z:
        assert "normalisation" not in z.files and z["preprocess.1.matrix"].shape == (11, 11)
    assert b.normalisation == Chain.parse(CHAIN, 1.0).text
    spectra = [Spectrum(wn, y) for y in Y[:8]]
    clf = Classifier(load_bundle(tmp_path / "b"))
    P = clf.probabilities(spectra)
    # the same network on spectra preprocessed by the outside oracles
    from device.inference.features import engineered_features
    from device.inference.inputs import raw_inputs

    on_axis = clf.on_axis(spectra)
    X = _oracle_chain(on_axis, axis.step)
    R = np.concatenate((X, engineered_features(X, axis, b.prominence)), axis=1)
    np.testing.assert_allclose(P, forward(b.standardizer.transform(R), b.layers, b.leaky_slope), atol=1e-9)
    np.testing.assert_allclose(raw_inputs(on_axis, axis, b.prominence, b.preprocess), R, atol=1e-6)
    # TFLite is fed the chain's output too
    np.testing.assert_allclose(Classifier(b, "tflite").probabilities(spectra), P, atol=1e-5)
    stages = bundle_flop_count(b)
    assert stages["normalise"] == (51 * 30 + 1) * axis.points + 2 * 11 * axis.points + 5 * axis.points


@pytest.mark.slow
def test_snv_and_none_bundles_keep_the_old_layout(tmp_path):
    for text in ("snv", "none"):
        b = make_bundle(tmp_path / text, normalisation=text)
        with np.load(tmp_path / text / NPZ_FILE, allow_pickle=False) as z:
            assert "preprocess" not in z.files and str(z["normalisation"]) == text
        assert b.normalisation == text
        assert bundle_flop_count(b)["normalise"] == (5 * b.axis.points if text == "snv" else 0)


def _rewrite(path: Path, change) -> None:
    """Edit ``model.npz`` arrays with ``change(arrays)`` and re-sign the card."""
    with np.load(path / NPZ_FILE, allow_pickle=False) as z:
        arrays = {k: z[k] for k in z.files}
    change(arrays)
    np.savez(path / NPZ_FILE, **arrays)
    card = json.loads((path / "model.json").read_text())
    card["files"][NPZ_FILE]["sha256"] = sha256_file(path / NPZ_FILE)
    (path / "model.json").write_text(json.dumps(card))


def _spec_edit(index: int, key: str, value):
    def change(arrays):
        spec = json.loads(str(arrays["preprocess"]))
        spec[index][key] = value
        arrays["preprocess"] = np.array(json.dumps(spec))
    return change


@pytest.mark.parametrize("change, message", [
    (_spec_edit(1, "step", "wavelet"), "preprocessing step 'wavelet' is not in the bundle's table of versions"),
    (_spec_edit(1, "window", 12), "chain is malformed .*window must be odd"),
    (_spec_edit(1, "window", 13), r"matrix has shape \(11, 11\), not \(13, 13\)"),
    (_spec_edit(1, "window", 1001), "window must be odd, from 3 to 501"),
    (_spec_edit(1, "deriv", "1"), "deriv must be a whole number"),
    (_spec_edit(0, "lam", -1.0), "lam must be a positive number"),
    (_spec_edit(0, "max_iter", 10**9), "iterations must be from 1 to 1000"),
    (_spec_edit(0, "p", 1.0), "p must be between 0 and 1"),
    (lambda a: a.pop("preprocess.1.matrix"), "lacks the preprocessing entry 'matrix'"),
    (lambda a: a.update({"preprocess.1.matrix": np.full((11, 11), np.nan)}),
     "'preprocess.1.matrix' does not hold finite"),
    (lambda a: a.update({"preprocess": np.array("{]")}), "chain is malformed"),
    (lambda a: a.update({"preprocess": np.array('[{"step": 3}]')}), "step 0 is not an object with a step name"),
    (lambda a: a.update({"preprocess": np.array(json.dumps([{"step": "snv"}] * 9))}), "at most 8 steps"),
    (lambda a: a.update({"normalisation": np.array("snv")}), "both a preprocessing chain and a normalisation"),
])
def test_loader_refuses_malformed_chains(tmp_path, change, message):
    make_bundle(tmp_path / "b", normalisation=CHAIN)
    _rewrite(tmp_path / "b", change)
    with pytest.raises(BundleError, match=message):
        load_bundle(tmp_path / "b")


@pytest.fixture(scope="module")
def chain_bundle(tmp_path_factory):
    path = tmp_path_factory.mktemp("chain") / "b"
    make_bundle(path, normalisation=CHAIN)
    return path


VALUES = st.one_of(st.none(), st.booleans(), st.integers(-10, 10**6), st.floats(allow_nan=True),
                   st.text(max_size=8), st.lists(st.integers(), max_size=2), st.dictionaries(st.text(max_size=3),
                                                                                             st.integers(), max_size=2))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.tuples(st.integers(0, 2), st.sampled_from(["step", "window", "polyorder", "deriv", "delta", "lam",
                                                              "p", "max_iter", "tol"]), VALUES), max_size=3))
@pytest.mark.slow
def test_any_spec_edit_loads_and_runs_or_is_refused(chain_bundle, tmp_path_factory, edits):
    import shutil

    path = tmp_path_factory.mktemp("edit") / "b"
    shutil.copytree(chain_bundle, path)
    for index, key, value in edits:
        _rewrite(path, _spec_edit(index, key, value))
    try:
        b = load_bundle(path)
    except BundleError:
        return
    x = b.axis.values
    with np.errstate(all="ignore"):
        assert Classifier(b).probabilities([Spectrum(x, 1.0 + np.sin(x / 7.0))]).shape == (1, 3)


@pytest.mark.slow
def test_fit_cli_with_a_chain_gives_the_same_verdicts_on_both_backends(raw_subset, tmp_path):
    out = tmp_path / "b"
    r = subprocess.run([str(BIN / "raman-train"), "fit", str(raw_subset), "--out", str(out), "--model", "compact",
                        "--epochs", "3",
                        "--preprocess", CHAIN], capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr
    card = json.loads((out / "model.json").read_text())
    assert card["preprocessing"]["chain"] == "asls:100000.0:0.01:50,savgol:11:2:1,snv"
    assert card["export_check"]["passed"]
    files = [str(p) for p, _ in load_bundle(out).examples]
    runs = {}
    for backend in ("numpy", "tflite"):
        c = subprocess.run([str(BIN / "raman-device"), "classify", "--model", str(out), "--backend", backend, *files],
                           capture_output=True, text=True, timeout=120)
        assert c.returncode == 0, c.stderr
        runs[backend] = [json.loads(line) for line in c.stdout.splitlines()]
    assert [v["label"] for v in runs["numpy"]] == [v["label"] for v in runs["tflite"]]
    assert np.allclose([v["confidence"] for v in runs["numpy"]], [v["confidence"] for v in runs["tflite"]], atol=1e-5)


@pytest.mark.parametrize("args, message", [
    (["--preprocess", "savgol:10:2"], "error: --preprocess: preprocessing step 'savgol:10:2': the Savitzky-Golay "
                                      "window must be odd"),
    (["--preprocess", "snv", "--normalise", "none"], "error: --normalise and --preprocess both set"),
    (["--preprocess", "asls:1e5:0.01", "--model", "cnn"], "always uses SNV inputs"),
])
@pytest.mark.slow
def test_fit_cli_refuses_bad_chains_before_reading_data(tmp_path, args, message):
    r = subprocess.run([str(BIN / "raman-train"), "fit", str(tmp_path / "missing"), "--out", str(tmp_path / "b"),
                        *args], capture_output=True, text=True, timeout=120)
    assert r.returncode != 0 and message in r.stderr and "Traceback" not in r.stderr


@pytest.mark.slow
def test_asls_batch_and_single_spectra_give_the_same_baselines(sers_npz):
    from device.inference.preprocess import ASLS_VECTOR_MIN

    X = sers_npz["X"][::200][:ASLS_VECTOR_MIN + 6]  # solved on rows of all spectra at once at first
    step = AsLS(1e5, 0.01)
    one_by_one = np.array([step.baseline(x[None])[0] for x in X])  # scalar arithmetic
    np.testing.assert_allclose(step.baseline(X), one_by_one, rtol=0, atol=1e-9 * np.abs(X).max())


@pytest.mark.slow
def test_fit_cli_refuses_a_window_longer_than_the_axis_before_training(tmp_path):
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "d.npz", X=rng.uniform(1, 2, (9, 40)), y=np.repeat([0, 1, 2], 3),
             wavenumber=np.arange(600.0, 640.0), class_names=np.array(["a", "b", "c"]))
    r = subprocess.run([str(BIN / "raman-train"), "fit", str(tmp_path / "d.npz"), "--out", str(tmp_path / "b"),
                        "--preprocess", "snv,savgol:41:2"], capture_output=True, text=True, timeout=120)
    assert r.returncode != 0 and "Traceback" not in r.stderr
    assert "error: --preprocess snv,savgol:41:2: preprocessing step 'savgol:41:2': its window is longer than the " \
           "40-point axis" in r.stderr
    assert "epoch" not in r.stderr and not (tmp_path / "b").exists()
