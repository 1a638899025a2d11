"""The linear model kinds: scikit-learn, TFLite and NumPy agree.

Bundles of them run on both backends; the SVM's probabilities are calibrated; FLOP by hand; bundles
written before load unchanged.
"""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import DATASETS, ROOT, _need

from device.fileio import sha256_file
from device.inference.backends import TFLiteBackend
from device.inference.bundle import INTENSITIES_LAYOUT, load_bundle, write_bundle
from device.inference.classifier import Classifier
from device.inference.cost import bundle_flop_count, flop_count
from device.inference.inputs import raw_inputs
from device.inference.network import Dense, DenseNet, forward
from device.inference.preprocess import Chain
from device.inference.spectrum import Axis, Spectrum

MICROPLASTICS = DATASETS / "rampp_microplastics" / "rampp_microplastics.npz"
AXIS = Axis(100, 3500, 1601)
BIN = Path(sys.executable).parent
KINDS = ("logreg", "linear-svm", "pca-logreg", "pls-logreg")


@pytest.fixture(scope="module")
def plastics():
    """Microplastics on AXIS after SNV: train on pristine + fresh water, test on sea water."""
    with np.load(_need(MICROPLASTICS), allow_pickle=False) as z:
        wn, X, y, cond = z["wavenumber"].astype(np.float64), z["X"].astype(np.float64), z["y"], z["condition"]
        names = tuple(str(c) for c in z["class_names"])
    Y = np.stack([np.interp(AXIS.values, wn, x) for x in X])
    S = Chain.parse("snv", AXIS.step).apply(Y)
    train, test = cond != "SW", cond == "SW"
    return {"S": S, "y": y, "train": train, "test": test, "names": names, "X": X, "wn": wn}


def _fit(plastics, kind, **kw):
    from trainer.models.linear import LinearSettings, fit_linear

    return fit_linear(LinearSettings(kind, **kw), plastics["S"][plastics["train"]], plastics["y"][plastics["train"]],
                      len(plastics["names"]), seed=0)


@pytest.mark.parametrize("kind,standardise", [(k, False) for k in KINDS]
                         + [pytest.param(k, True, marks=pytest.mark.slow) for k in ("linear-svm", "pca-logreg")])
def test_scikit_learn_tflite_and_numpy_agree_on_held_out_spectra(plastics, kind, standardise):
    from trainer.export import PARITY_TOLERANCE, export_check, tflite_bytes
    from trainer.models.candidates import as_stored

    model = _fit(plastics, kind, standardise=standardise)
    X = plastics["S"][plastics["test"]]  # sea-water spectra: none was seen in training
    Z = model.inputs(X)
    net = as_stored(model.network)
    check = export_check(model.reference(X), Z, net.probabilities(Z), tflite_bytes(net.layers, 0.0, Z.shape[1]),
                         reference="scikit-learn")
    assert check["passed"] and max(check["max_abs_difference"].values()) <= PARITY_TOLERANCE
    assert set(check["max_abs_difference"]) == {"scikit-learn_vs_tflite", "scikit-learn_vs_numpy", "tflite_vs_numpy"}
    assert (model.reference(X).argmax(1) == plastics["y"][plastics["test"]]).mean() >= 0.9


def test_the_check_fails_for_weights_a_little_off(plastics):
    from trainer.export import ExportCheckError, export_check, tflite_bytes

    model = _fit(plastics, "logreg")
    X = plastics["S"][plastics["test"]]
    (layer,) = model.network.layers
    off = (Dense(layer.kernel * 1.01, layer.bias, layer.activation),)
    with pytest.raises(ExportCheckError, match="disagree"):
        export_check(model.reference(X), X, forward(X, off, 0.0), tflite_bytes(off, 0.0, X.shape[1]),
                     reference="scikit-learn")


@pytest.mark.parametrize("kind", KINDS)
def test_two_classes_one_decision_column_become_two_logits(plastics, kind):
    from trainer.models.linear import LinearSettings, fit_linear

    keep = np.isin(plastics["y"], (0, 1))  # ABS and PA
    S, y = plastics["S"][keep], plastics["y"][keep]
    model = fit_linear(LinearSettings(kind, components=5), S, y, 2, seed=0)
    P = model.probabilities(S)
    assert model.network.layers[-1].kernel.shape[1] == 2
    np.testing.assert_allclose(P, model.reference(S), atol=1e-12)
    assert (P.argmax(1) == y).mean() == 1.0


def test_calibrated_svm_probabilities_beat_a_softmax_of_raw_decision_values(plastics):
    from scipy.special import softmax
    from sklearn.metrics import log_loss
    from sklearn.svm import LinearSVC

    from trainer.models.classical import LINEAR_SVM_ITERATIONS, LINEAR_SVM_TOLERANCE

    model = _fit(plastics, "linear-svm")
    X, y = plastics["S"][plastics["test"]], plastics["y"][plastics["test"]]
    raw = LinearSVC(C=1.0, random_state=0, tol=LINEAR_SVM_TOLERANCE, max_iter=LINEAR_SVM_ITERATIONS).fit(
        plastics["S"][plastics["train"]], plastics["y"][plastics["train"]]).decision_function(X)
    labels = np.arange(len(plastics["names"]))
    calibrated = log_loss(y, model.probabilities(X), labels=labels)
    uncalibrated = log_loss(y, softmax(raw, axis=1), labels=labels)  # the negative control
    T = model.calibration["temperature"]
    assert calibrated < 0.5 * uncalibrated, (calibrated, uncalibrated, T)
    np.testing.assert_allclose(model.probabilities(X), softmax(raw / T, axis=1), atol=1e-9)  # the same SVM
    assert model.calibration["cv_log_loss"] < model.calibration["cv_log_loss_uncalibrated"]


def test_flop_counted_by_hand(plastics):
    P, C, k = AXIS.points, len(plastics["names"]), 30
    resample, snv = 3 * P, 5 * P  # interpolation 3 per point; SNV mean, centring, squares, sum, division
    logreg = (Dense(np.zeros((P, C)), np.zeros(C), "softmax"),)
    pca = (Dense(np.zeros((P, k)), np.zeros(k), "linear"), Dense(np.zeros((k, C)), np.zeros(C), "softmax"))
    softmax_head = lambda fan_in: 2 * fan_in * C + C + 4 * C  # noqa: E731  MACs, bias, max/exp/sum/divide
    assert flop_count(AXIS, logreg, "snv", features=False, standardise=False) == {
        "resample": resample, "normalise": snv, "network": softmax_head(P), "total": resample + snv + softmax_head(P)}
    counted = flop_count(AXIS, pca, "snv", features=False, standardise=True)
    assert counted["standardise"] == 2 * P and counted["network"] == 2 * P * k + k + softmax_head(k)
    assert counted["total"] == resample + snv + 2 * P + 2 * P * k + k + softmax_head(k)
    assert softmax_head(P) == 35277 and 2 * P * k + k + softmax_head(k) == 96805


def _linear_bundle(tmp_path, plastics, kind):
    from trainer.export import tflite_bytes
    from trainer.models.candidates import as_stored

    model = _fit(plastics, kind, standardise=kind == "pca-logreg")
    net = as_stored(model.network)
    bundle = write_bundle(tmp_path / kind, name=kind, class_names=plastics["names"], axis=AXIS,
                          tflite=tflite_bytes(net.layers, 0.0, AXIS.points), card={"network": {"kind": kind}},
                          standardizer=model.standardizer, layers=net.layers, input_layout=INTENSITIES_LAYOUT,
                          normalisation="snv")
    return bundle, model


@pytest.mark.parametrize("kind", ("linear-svm", "pca-logreg"))
def test_a_linear_bundle_round_trips_and_runs_on_both_backends(tmp_path, plastics, kind):
    bundle, model = _linear_bundle(tmp_path, plastics, kind)
    assert (bundle.kind, bundle.architecture, bundle.input_size, bundle.features) == (kind, "dense", AXIS.points, False)
    assert (bundle.standardizer is not None) == (kind == "pca-logreg")
    test = np.flatnonzero(plastics["test"])
    spectra = [Spectrum(plastics["wn"], plastics["X"][i]) for i in test]  # the original axis, resampled on load
    expected = model.reference(plastics["S"][test])
    for backend in ("numpy", "tflite"):
        P = Classifier(bundle, backend).probabilities(spectra)
        np.testing.assert_allclose(P, expected, atol=1e-5)
    assert bundle_flop_count(bundle)["network"] == model.network.flop(AXIS.points)


def _rewrite_npz(path: Path, edit) -> dict:
    """Edit a bundle's ``model.npz`` arrays with ``edit(arrays)`` and list its new hash; returns the old arrays."""
    with np.load(path / "model.npz") as z:
        arrays = {k: z[k] for k in z.files}
    before = dict(arrays)
    edit(arrays)
    np.savez(path / "model.npz", **arrays)
    card = json.loads((path / "model.json").read_text())
    card["files"]["model.npz"]["sha256"] = sha256_file(path / "model.npz")
    (path / "model.json").write_text(json.dumps(card))
    return before


def test_a_dense_network_on_intensities_needs_no_features_and_refuses_a_wrong_width(tmp_path, plastics):
    from device.errors import BundleError

    bundle, _ = _linear_bundle(tmp_path, plastics, "logreg")
    stored = _rewrite_npz(bundle.path, lambda a: a.update(layer0_kernel=a["layer0_kernel"][:-1]))
    assert "feature_names" not in stored and "scaler_mean" not in stored and "architecture" not in stored
    with pytest.raises(BundleError, match="do not chain from 1601 inputs"):
        load_bundle(bundle.path)


def test_a_convolutional_network_on_the_features_layout_is_refused(tmp_path):
    from device.errors import BundleError
    from device.inference.convnet import Conv, ConvNet

    rng = np.random.default_rng(0)
    net = ConvNet((Conv(rng.normal(size=(5, 1, 4)), rng.normal(size=4), 2, "relu"),), rng.normal(size=(4, 3)),
                  rng.normal(size=3))
    b = write_bundle(tmp_path / "conv", name="conv", class_names=("a", "b", "c"), axis=Axis(500, 600, 101),
                     tflite=b"", card={}, convnet=net, normalisation="snv")
    assert (b.kind, b.input_size) == ("convolutional", 101)
    _rewrite_npz(b.path, lambda a: a.update(input_layout=np.array("intensities+features")))
    with pytest.raises(BundleError, match="convolutional network takes the layout 'intensities'"):
        load_bundle(b.path)


@pytest.mark.parametrize("model", ["sers-op-synthetic"])
def test_bundles_written_before_give_identical_probabilities(model):
    b = load_bundle(ROOT / "models" / model)
    assert (b.kind, b.architecture, b.features) == ("compact", "compact", True)
    Y = np.stack([Classifier(b).on_axis([s])[0] for s in _example_spectra(b)])
    old = forward(b.standardizer.transform(raw_inputs(Y, b.axis, b.prominence, b.preprocess)), b.layers, b.leaky_slope)
    assert np.array_equal(Classifier(b).probabilities_on_axis(Y), old)
    old_tflite = TFLiteBackend.from_bundle(b).probabilities(
        b.standardizer.transform(raw_inputs(Y, b.axis, b.prominence, b.preprocess)))
    assert np.array_equal(Classifier(b, "tflite").probabilities_on_axis(Y), old_tflite)
    assert [b.class_names[k] for k in old.argmax(1)] == [label for _, label in b.examples]
    assert bundle_flop_count(b)["total"] == b.card["flop_per_spectrum"]["total"]


def _example_spectra(b):
    from device.inference.readers import read_spectra

    return [read_spectra(p)[0] for p, _ in b.examples]


def _train(*args):
    return subprocess.run([str(BIN / "raman-train"), *map(str, args)], capture_output=True, text=True, timeout=300)


def _device(*args):
    return subprocess.run([str(BIN / "raman-device"), *map(str, args)], capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.slow
def test_fit_a_linear_kind_then_classify_on_both_backends(tmp_path, kind):
    out = tmp_path / kind
    projection = ["--components", "20"] if kind in ("pca-logreg", "pls-logreg") else []
    r = _train("fit", _need(MICROPLASTICS), "--out", out, "--model", kind, "--axis", "100:3500:1601",
               "--holdout", "condition=SW", *projection)
    assert r.returncode == 0, r.stderr
    card = json.loads((out / "model.json").read_text())
    assert card["network"]["kind"] == kind and card["preprocessing"]["chain"] == "snv"
    assert card["metrics"]["holdout"]["accuracy"] >= 0.9
    assert card["export_check"]["passed"] and "scikit-learn_vs_tflite" in card["export_check"]["max_abs_difference"]
    assert card["hyperparameters"]["C"] == (1.0 if kind == "linear-svm" else 10.0)
    assert card["hyperparameters"]["column_standardisation"] is False
    assert ("calibration" in card["hyperparameters"]) == (kind == "linear-svm")
    b = load_bundle(out)
    assert card["flop_per_spectrum"] == bundle_flop_count(b)
    info = json.loads(_device("info", "--model", out).stdout)
    assert info["kind"] == kind and info["inputs"] == AXIS.points
    files = [p for p, _ in b.examples]
    for backend in ("numpy", "tflite"):
        r = _device("classify", "--model", out, "--backend", backend, "--format", "json", *files)
        assert r.returncode == 0, r.stderr
        got = [json.loads(line)["label"] for line in r.stdout.splitlines() if line.strip()]
        assert got == [label for _, label in b.examples]


@pytest.mark.slow
def test_the_device_runs_a_linear_bundle_without_scikit_learn_or_scipy(tmp_path, plastics):
    bundle, _ = _linear_bundle(tmp_path, plastics, "pca-logreg")
    code = ("import sys; from device.inference.bundle import load_bundle; "
            "from device.inference.classifier import Classifier; "
            "from device.inference.readers import read_spectra; import numpy as np; "
            f"b = load_bundle({str(bundle.path)!r}); "
            "print(Classifier(b).probabilities_on_axis(np.ones((1, b.axis.points)) + np.arange(b.axis.points)).shape); "
            "print(sorted(m for m in ('sklearn', 'scipy', 'tensorflow') if m in sys.modules))")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split("\n")[:2] == [f"(1, {len(plastics['names'])})", "[]"]


@pytest.mark.slow
def test_too_many_components_are_refused_before_training_and_nothing_is_written(tmp_path):
    out = tmp_path / "b"
    r = _train("fit", _need(MICROPLASTICS), "--out", out, "--model", "pca-logreg", "--holdout", "condition=SW",
               "--components", "200")
    assert r.returncode != 0 and "--components 200" in r.stderr and "use --components 149 or fewer" in r.stderr
    assert "Traceback" not in r.stderr and "final fit" not in r.stderr and not out.exists()


@pytest.mark.parametrize("args,message", [
    (("--model", "compact", "--C", "1"), "--model compact takes no --C"),
    (("--model", "logreg", "--tune"), "takes no --tune"),
    (("--model", "logreg", "--components", "5"), "--model logreg takes no --components"),
    (("--model", "linear-svm", "--C", "-1"), "C must be a positive number"),
    (("--model", "compact", "--steps", "5"), "--model compact takes no --steps"),
    (("--steps", "5"), "--steps set(s) the settings of one model kind: give --model KIND too"),
])
@pytest.mark.slow
def test_options_that_do_not_fit_the_kind_are_refused(tmp_path, args, message):
    r = _train("fit", _need(MICROPLASTICS), "--out", tmp_path / "b", *args)
    assert r.returncode != 0 and message in r.stderr and "Traceback" not in r.stderr, r.stderr
    assert not (tmp_path / "b").exists()


def test_a_failing_export_check_writes_nothing(tmp_path, monkeypatch):
    from trainer.export import ExportCheckError
    from trainer.fit import fit_bundle
    from trainer.models import candidates

    def skewed(net):  # the exported weights drift from the fitted ones
        return DenseNet(tuple(Dense(layer.kernel * 1.01, layer.bias, layer.activation) for layer in net.layers))

    monkeypatch.setattr(candidates, "as_stored", skewed)
    with pytest.raises(ExportCheckError):
        fit_bundle(_need(MICROPLASTICS), tmp_path / "b", candidates.Candidate("logreg"), log=lambda m: None)
    assert not (tmp_path / "b").exists()


@pytest.mark.slow
def test_explain_a_linear_bundle_is_its_weight_times_input(tmp_path, plastics):
    from trainer.evaluation.explain import explain

    bundle, _ = _linear_bundle(tmp_path, plastics, "pca-logreg")
    i = int(np.flatnonzero(plastics["test"])[0])
    f = tmp_path / "one.csv"
    f.write_text("".join(f"{x},{v}\n" for x, v in zip(plastics["wn"], plastics["X"][i])))
    (entry,) = explain(bundle, [f])
    c = bundle.class_names.index(entry["explained_class"])
    projection, head = bundle.layers
    Z = bundle.inputs(np.array([entry["intensity"]]))[0]
    np.testing.assert_allclose(entry["map"], Z * (projection.kernel @ head.kernel[:, c]), atol=1e-7)
    assert entry["method"] == "gradient x input (standardised inputs)" and "features" not in entry
