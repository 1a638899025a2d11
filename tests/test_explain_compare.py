"""Explanations (Grad-CAM, gradient x input) and the model comparison, end to end on small data."""
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from device.inference.bundle import load_bundle
from device.inference.convnet import Conv, ConvNet
from device.inference.inputs import raw_inputs
from device.inference.relevance import Relevance, grad_cam, gradient_x_input, relevance, top_bands
from trainer.data.dataset import DatasetError, load_dataset
from trainer.evaluation.compare import MODELS, make_split

ROOT = Path(__file__).resolve().parents[1]
COMPACT = ROOT / "models" / "sers-op-synthetic"  # a shipped compact network (intensities + features)
TRAIN = [str(Path(sys.executable).parent / "raman-train")]


def _examples_on_axis(bundle, n: int) -> np.ndarray:
    """The bundle's first ``n`` example spectra (n, points) on its axis."""
    from device.inference.readers import read_spectra

    return np.stack([np.interp(bundle.axis.values, s.shift, s.intensity) for s in
                     (read_spectra(p)[0] for p, _ in bundle.examples[:n])])


def test_grad_cam_against_a_hand_computed_map():
    # one 1x1 convolution with channels relu(x) and relu(-x); head weights for class 0: 1 and 0.5
    net = ConvNet((Conv(np.array([[[1.0, -1.0]]]), np.zeros(2), 1, "relu"),), np.array([[1.0, -2.0], [0.5, 3.0]]),
                  np.zeros(2))
    x = np.array([[1.0, -2.0, 3.0, 0.0]])
    # y_0 = mean_t(relu(x_t)) * 1 + mean_t(relu(-x_t)) * 0.5, so dy_0/dA[t, k] = W[k, 0] / 4 and
    # the map is relu(relu(x_t) / 4 + 0.5 relu(-x_t) / 4) = [0.25, 0.25, 0.75, 0]
    np.testing.assert_allclose(grad_cam(net, x, np.array([0])), [[0.25, 0.25, 0.75, 0.0]])
    # class 1: relu(-2 relu(x_t) / 4 + 3 relu(-x_t) / 4) = [0, 1.5, 0, 0]
    np.testing.assert_allclose(grad_cam(net, x, np.array([1])), [[0.0, 1.5, 0.0, 0.0]])


def test_grad_cam_stretches_a_strided_map_onto_the_axis():
    net = ConvNet((Conv(np.ones((2, 1, 1)), np.zeros(1), 2, "relu"),), np.ones((1, 1)), np.zeros(1))
    cam = grad_cam(net, np.array([[0.0, 2.0, 4.0, 6.0]]), np.array([0]))
    # cells (x0 + x1) = 2 and (x2 + x3) = 10, /T = 2 -> 1 and 5 at input positions 0.5 and 2.5
    np.testing.assert_allclose(cam, [[1.0, 1.0 + 4.0 * 0.25, 1.0 + 4.0 * 0.75, 5.0]])  # linear between 0.5 and 2.5


def test_gradient_x_input_against_finite_differences():
    b = load_bundle(COMPACT)
    Y = _examples_on_axis(b, 2)
    cls = np.array([0, 3])
    gxi = gradient_x_input(b, Y, cls)
    Z = b.standardizer.transform(raw_inputs(Y, b.axis, b.prominence, b.normalisation))
    hidden, out = b.layers

    def logit(z, c):
        h = z @ hidden.kernel + hidden.bias
        return np.where(h >= 0, h, b.leaky_slope * h) @ out.kernel[:, c] + out.bias[c]

    for n in range(2):
        for i in (0, 700, Z.shape[1] - 1):
            dz = np.zeros_like(Z[n])
            dz[i] = 1e-6
            numeric = (logit(Z[n] + dz, cls[n]) - logit(Z[n] - dz, cls[n])) / 2e-6
            assert gxi[n, i] == pytest.approx(numeric * Z[n, i], rel=1e-5, abs=1e-9)


def test_relevance_of_a_dense_network_is_its_gradient_x_input_split_at_the_axis():
    b = load_bundle(COMPACT)
    Y = _examples_on_axis(b, 2)
    cls = np.array([1, 2])
    rel = relevance(b, Y, cls)
    gxi = gradient_x_input(b, Y, cls)
    assert rel.method == "gradient x input (standardised inputs)"
    np.testing.assert_array_equal(rel.maps, gxi[:, :b.axis.points])
    np.testing.assert_array_equal(rel.features, gxi[:, b.axis.points:])
    scaled = rel.scaled()
    np.testing.assert_allclose(np.abs(scaled).max(axis=1), 1.0)
    np.testing.assert_allclose(scaled * np.abs(rel.maps).max(axis=1, keepdims=True), rel.maps)
    zero = Relevance(np.zeros((1, 4)), "Grad-CAM")
    np.testing.assert_array_equal(zero.scaled(), np.zeros((1, 4)))  # no division by a zero peak


def test_top_bands_are_the_highest_separated_maxima():
    shift = np.arange(0.0, 100.0)
    values = np.zeros(100)
    values[[40, 20, 25, 60, 70]] = [0.5, 1.0, 0.9, 0.7, 0.6]
    bands = top_bands(shift, values, k=3)
    assert [b["shift"] for b in bands] == [20.0, 60.0, 40.0]  # 25 and 70 are within 15 cm-1 of a higher one


@pytest.mark.slow
def test_explain_cli_writes_figures_and_numbers(tmp_path):
    files = [str(p) for p, _ in load_bundle(COMPACT).examples[:2]]
    r = subprocess.run(TRAIN + ["explain", str(COMPACT), *files, "--out", str(tmp_path / "x")],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    data = json.loads((tmp_path / "x" / "explanations.json").read_text())
    assert len(data["explanations"]) == 2 and len(list((tmp_path / "x").glob("*.png"))) == 2
    e = data["explanations"][0]
    assert len(e["map"]) == load_bundle(COMPACT).axis.points and len(e["features"]) == 22 and e["top_bands"]
    r = subprocess.run(TRAIN + ["explain", str(COMPACT), files[0], "--out", str(tmp_path / "y"), "--class", "Nope"],
                       capture_output=True, text=True)
    assert r.returncode == 2 and "--class 'Nope' is not one of the model's classes" in r.stderr


@pytest.mark.slow
def test_split_names(tmp_path):
    ds = load_dataset(_synthetic(tmp_path))
    assert len(make_split("repeated:2x3", ds, 0).pairs) == 6
    assert len(make_split("auto", ds, 0).pairs) == 15
    train, test = make_split("holdout:0.25", ds, 0).pairs[0]
    assert len(np.intersect1d(train, test)) == 0 and len(train) + len(test) == len(ds.y)
    for bad in ("kfold", "holdout:1.5", "repeated:3"):
        with pytest.raises(DatasetError, match="--split"):
            make_split(bad, ds, 0)


def _synthetic(tmp_path) -> Path:
    out = tmp_path / "syn"
    if not out.exists():
        r = subprocess.run(TRAIN + ["synth", "--out", str(out), "--counts", "10,10,8,7"], capture_output=True,
                           text=True)
        assert r.returncode == 0, r.stderr
    return out


@pytest.mark.slow
def test_compare_cli_on_the_synthetic_set(tmp_path):
    models = "compact,se-resnet,linear-svm,knn"
    r = subprocess.run(TRAIN + ["compare", str(_synthetic(tmp_path)), "--report", str(tmp_path / "r"),
                                "--models", models, "--split", "repeated:1x2", "--steps", "20", "--snr", "50,5"],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    report = json.loads((tmp_path / "r" / "report.json").read_text())
    res = report["results"]
    assert res["conditions"] == ["clean", "snr50", "snr5"] and res["splits"] == 2
    for name in models.split(","):
        m = res["models"][name]
        assert len(m["splits"]) == 2 and 0 <= m["summary"]["snr5"]["accuracy_mean"] <= 1
        assert m["cost"]["flop"] > 0 and m["cost"]["parameters"] > 0 and m["cost"]["size_bytes"] > 0
    assert res["models"]["se-resnet"]["cost"]["latency_s"] > 0 and res["models"]["knn"]["cost"]["latency_s"] is None
    assert (tmp_path / "r" / "snr.png").stat().st_size > 0
    md = (tmp_path / "r" / "report.md").read_text()
    assert "| se-resnet |" in md and "SNR 5" in md
    bad = subprocess.run(TRAIN + ["compare", str(_synthetic(tmp_path)), "--report", str(tmp_path / "q"),
                                  "--models", "compact,gpt"], capture_output=True, text=True)
    assert bad.returncode == 2 and "unknown model(s) gpt" in bad.stderr and all(m in bad.stderr for m in MODELS)
