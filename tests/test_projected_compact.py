"""A PCA or PLS projection, then the compact network on its scores.

The stored projection is scikit-learn's, Keras, TFLite and NumPy agree, the FLOP are known before training,
and the CLI trains, ships and refuses it.
"""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import DATASETS, _need

from device.inference.bundle import load_bundle
from device.inference.cost import bundle_flop_count
from device.inference.preprocess import Chain
from device.inference.spectrum import Axis

MICROPLASTICS = DATASETS / "rampp_microplastics" / "rampp_microplastics.npz"
AXIS = Axis(100, 3500, 1601)
BIN = Path(sys.executable).parent


@pytest.fixture(scope="module")
def plastics():
    """Microplastics on AXIS: pristine + fresh-water spectra for training, sea-water ones held out."""
    with np.load(_need(MICROPLASTICS), allow_pickle=False) as z:
        wn, X, y, cond = z["wavenumber"].astype(np.float64), z["X"].astype(np.float64), z["y"], z["condition"]
        n_classes = len(z["class_names"])
    Y = np.stack([np.interp(AXIS.values, wn, x) for x in X])
    return {"Y": Y, "y": y, "train": np.flatnonzero(cond != "SW"), "test": np.flatnonzero(cond == "SW"),
            "classes": n_classes}


def _trained(plastics, kind, components=20, hidden=32):
    from trainer.models.candidates import Candidate, ProjectedCompact, TrainingSpectra, train
    from trainer.models.compact import Hyperparameters

    candidate = Candidate(kind, "snv", ProjectedCompact(components, Hyperparameters(hidden=hidden)), augment=False)
    spectra = TrainingSpectra(plastics["Y"], plastics["y"], AXIS, seed=0, augment=False)
    return candidate, train(candidate, spectra, plastics["train"], plastics["classes"], seed=0)


@pytest.mark.parametrize("kind", ("pca-compact", "pls-compact"))
@pytest.mark.slow
def test_keras_tflite_and_numpy_agree_on_held_out_spectra(plastics, kind):
    from trainer.export import PARITY_TOLERANCE, export_check, tflite_bytes

    _, trained = _trained(plastics, kind)
    Y = plastics["Y"][plastics["test"]]  # sea-water spectra: none was seen in training
    Z = trained.inputs(Y)
    net = trained.network
    assert trained.standardizer is None
    assert [layer.activation for layer in net.layers] == ["linear", "leaky_relu", "softmax"]
    check = export_check(trained.reference(Y), Z, net.probabilities(Z),
                         tflite_bytes(net.layers, net.leaky_slope, Z.shape[1]), reference="keras")
    assert check["passed"] and max(check["max_abs_difference"].values()) <= PARITY_TOLERANCE
    assert (trained.predict(Y) == plastics["y"][plastics["test"]]).mean() >= 0.85


@pytest.mark.parametrize("kind", ("pca-compact", "pls-compact"))
def test_the_first_layer_is_scikit_learns_projection_with_the_scores_standardised(plastics, kind):
    """The oracle is a projection fitted here, independently, by scikit-learn on the same training spectra."""
    from sklearn.cross_decomposition import PLSRegression
    from sklearn.decomposition import PCA

    _, trained = _trained(plastics, kind)
    S = Chain.parse("snv", AXIS.step).apply(plastics["Y"])
    train, y = S[plastics["train"]], plastics["y"][plastics["train"]]
    oracle = (PCA(20, random_state=0).fit(train) if kind == "pca-compact" else
              PLSRegression(20, scale=False).fit(train, np.eye(plastics["classes"])[y]))
    scores = oracle.transform(train)
    expected = (oracle.transform(S) - scores.mean(0)) / scores.std(0)
    first = trained.network.layers[0]
    got = S @ first.kernel + first.bias
    assert np.abs(got - expected).max() < 1e-3 * np.abs(expected).max()
    # negative control: the scores without the standardisation are far from what the layer gives
    assert np.abs(got - oracle.transform(S)).max() > 0.1 * np.abs(expected).max()


def test_flop_are_known_before_training(plastics):
    from trainer.models.candidates import device_flop

    for kind in ("pca-compact", "pls-compact"):
        candidate, trained = _trained(plastics, kind, components=12, hidden=7)
        counted = device_flop(trained)
        assert candidate.flop(AXIS, plastics["classes"]) == counted["total"]
        # the layers by hand: 2 FLOP per multiply-add, bias adds, activations
        k, h, c = 12, 7, plastics["classes"]
        assert counted["network"] >= 2 * (AXIS.points * k + k * h + h * c)


def _train(*args):
    return subprocess.run([str(BIN / "raman-train"), *map(str, args)], capture_output=True, text=True, timeout=300)


@pytest.mark.slow
def test_fit_then_classify_on_both_backends(tmp_path):
    out = tmp_path / "pls"
    r = _train("fit", _need(MICROPLASTICS), "--out", out, "--model", "pls-compact", "--components", "20",
               "--hidden", "24", "--axis", "100:3500:1601", "--holdout", "condition=SW")
    assert r.returncode == 0, r.stderr
    card = json.loads((out / "model.json").read_text())
    assert card["network"]["kind"] == "pls-compact" and "PLS projection to 20 scores" in card["network"]["architecture"]
    assert card["hyperparameters"]["components"] == 20 and card["hyperparameters"]["hidden"] == 24
    assert card["export_check"]["passed"] and "keras_vs_tflite" in card["export_check"]["max_abs_difference"]
    assert card["metrics"]["holdout"]["accuracy"] >= 0.85
    bundle = load_bundle(out)
    assert bundle.standardizer is None and card["flop_per_spectrum"] == bundle_flop_count(bundle)
    files = [p for p, _ in bundle.examples]
    for backend in ("numpy", "tflite"):
        r = subprocess.run([str(BIN / "raman-device"), "classify", "--model", str(out), "--backend", backend,
                            "--format", "json", *map(str, files)], capture_output=True, text=True, timeout=120)
        assert r.returncode == 0, r.stderr
        assert [json.loads(line)["label"] for line in r.stdout.splitlines()] == [label for _, label in bundle.examples]


@pytest.mark.parametrize("args,message", [
    (("--model", "pca-compact", "--C", "1"), "--model pca-compact takes no --C; its options are --components"),
    (("--model", "pca-compact", "--tune"), "--model pca-compact takes no --tune"),
    (("--model", "compact", "--components", "5"), "--model compact takes no --components"),
    (("--model", "pls-compact", "--components", "0"), "components must be at least 1"),
    (("--model", "pca-compact", "--holdout", "condition=SW", "--components", "200"), "use --components 74 or fewer"),
])
@pytest.mark.slow
def test_options_that_do_not_fit_are_refused_before_training(tmp_path, args, message):
    r = _train("fit", _need(MICROPLASTICS), "--out", tmp_path / "b", *args, "--no-augment")
    assert r.returncode != 0 and message in r.stderr and "Traceback" not in r.stderr, r.stderr
    assert "final fit" not in r.stderr and not (tmp_path / "b").exists()
