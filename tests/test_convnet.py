"""Convolutional models: NumPy runtime against TensorFlow, Keras vs TFLite vs NumPy parity, bundles, FLOP."""
import hashlib
import json

import numpy as np
import pytest

from device.errors import BundleError
from device.inference.bundle import NPZ_FILE, load_bundle, write_bundle
from device.inference.classifier import Classifier
from device.inference.convnet import Conv, ConvNet, MaxPool, Residual, SqueezeExcitation, from_arrays, to_arrays
from device.inference.cost import bundle_flop_count
from device.inference.inputs import normalise
from device.inference.spectrum import Axis, Spectrum
from trainer.export import PARITY_TOLERANCE, export_check, tflite_convnet_bytes
from trainer.models.keras_convnets import CONV_MODELS, ConvHyperparameters, build, predict, to_convnet, train

tf = pytest.importorskip("tensorflow")

AXIS = Axis(400.0, 1035.0, 128)
TINY = ConvHyperparameters(widths=(4, 8, 8), kernel=3, steps=200, batch_size=16, learning_rate=3e-3, augment=False)


def bands(n_per_class: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Three classes of Gaussian bands at different positions on AXIS, with noise and gain."""
    rng = np.random.default_rng(seed)
    x = AXIS.values
    centres = [(520, 800), (600, 900), (700, 950)]
    Y, y = [], []
    for label, cs in enumerate(centres):
        for _ in range(n_per_class):
            s = sum(np.exp(-0.5 * ((x - c - rng.normal(0, 3)) / 12) ** 2) for c in cs)
            Y.append(rng.uniform(0.5, 2) * s + 0.05 * rng.normal(size=x.size) + 0.3)
            y.append(label)
    return np.array(Y), np.array(y)


def naive_conv(x, kernel, bias, stride):
    """TensorFlow-style 'same' convolution written as loops: x (L, Cin), kernel (K, Cin, Cout)."""
    length, width = x.shape[0], kernel.shape[0]
    out = -(-length // stride)
    pad = max((out - 1) * stride + width - length, 0)
    xp = np.concatenate([np.zeros((pad // 2, x.shape[1])), x, np.zeros((pad - pad // 2, x.shape[1]))])
    y = np.zeros((out, kernel.shape[2]))
    for t in range(out):
        for k in range(width):
            y[t] += xp[t * stride + k] @ kernel[k]
    return y + bias


@pytest.mark.parametrize("length, width, stride", [(17, 3, 1), (17, 5, 2), (16, 7, 2), (9, 1, 2), (4, 7, 1)])
def test_conv_matches_loops_and_tensorflow(length, width, stride):
    rng = np.random.default_rng(length * width + stride)
    x = rng.normal(size=(2, length, 3))
    kernel, bias = rng.normal(size=(width, 3, 4)), rng.normal(size=4)
    got = Conv(kernel, bias, stride)(x)
    for i in range(2):
        np.testing.assert_allclose(got[i], naive_conv(x[i], kernel, bias, stride), atol=1e-12)
    ref = tf.nn.conv1d(tf.constant(x), tf.constant(kernel), stride=stride, padding="SAME").numpy() + bias
    np.testing.assert_allclose(got, ref, atol=1e-10)


def test_flop_count_against_a_hand_count():
    rng = np.random.default_rng(0)
    conv = Conv(rng.normal(size=(3, 1, 2)), np.zeros(2), 1, "relu")
    block = Residual(Conv(rng.normal(size=(3, 2, 4)), np.zeros(4), 2, "relu"),
                     Conv(rng.normal(size=(3, 4, 4)), np.zeros(4)),
                     SqueezeExcitation(rng.normal(size=(4, 2)), np.zeros(2), rng.normal(size=(2, 4)), np.zeros(4)),
                     Conv(rng.normal(size=(1, 2, 4)), np.zeros(4), 2))
    net = ConvNet((conv, MaxPool(2), block), rng.normal(size=(4, 3)), np.zeros(3))
    # 20 points: conv 20 x 2 x (2*3*1 + bias + relu) = 320; pool 10 x 1 x 2 = 20;
    # block on 10 -> 5: conv1 5*4*(2*3*2+2) = 280, conv2 5*4*(2*3*4+1) = 500, add+relu 2*5*4 = 40,
    # SE: mean 5*4 + 4, dense 2*4*2 + 2*2, dense 2*2*4 + 4, sigmoid 3*4, scale 5*4 -> 96, shortcut 5*4*(2*1*2+1) = 100;
    # gap 5*4 + 4 = 24; head 2*4*3 + 3 = 27; softmax 4*3 = 12
    assert net.flop(20) == 320 + 20 + 280 + 500 + 40 + 96 + 100 + 24 + 27 + 12
    assert net.parameters == (3 * 1 * 2 + 2 + (3 * 2 * 4 + 4) + (3 * 4 * 4 + 4) + (1 * 2 * 4 + 4) + (8 + 2 + 8 + 4)
                              + 12 + 3)


@pytest.fixture(scope="module")
def trained():
    """Each model kind trained briefly on the band spectra: {kind: (keras model, loss per epoch)}."""
    Y, y = bands(30, seed=1)
    return {kind: train(kind, Y, AXIS.values, y, 3, TINY, seed=0) for kind in CONV_MODELS}


@pytest.mark.parametrize("kind", CONV_MODELS)
@pytest.mark.slow
def test_training_loss_goes_down_and_learns(trained, kind):
    model, loss = trained[kind]
    assert loss[-1] < 0.7 * loss[0], loss
    Y, y = bands(20, seed=2)
    assert (predict(model, normalise(Y, "snv")).argmax(1) == y).mean() > 0.8


@pytest.mark.parametrize("kind", CONV_MODELS)
@pytest.mark.slow
def test_keras_tflite_numpy_parity(trained, kind):
    model, _ = trained[kind]
    Y, _ = bands(20, seed=3)
    X = normalise(Y, "snv")
    net = to_convnet(model, kind, TINY)
    check = export_check(predict(model, X), X, net.probabilities(X), tflite_convnet_bytes(net, AXIS.points))
    assert check["passed"] and max(check["max_abs_difference"].values()) <= PARITY_TOLERANCE
    assert net.parameters == model.count_params() - sum(  # folding: BN's 4 numbers per channel become 1 bias
        3 * layer.get_weights()[0].size for layer in model.layers if layer.__class__.__name__ == "BatchNormalization")
    if kind == "se-resnet":
        assert any(isinstance(op, Residual) and op.se is not None for op in net.body)


@pytest.mark.slow
def test_se_resnet_bundle_round_trip_and_backends(trained, tmp_path):
    model, _ = trained["se-resnet"]
    net = to_convnet(model, "se-resnet", TINY)
    bundle = write_bundle(tmp_path / "b", name="tiny-se", class_names=["a", "b", "c"], axis=AXIS,
                          tflite=tflite_convnet_bytes(net, AXIS.points), card={"name": "tiny-se"},
                          convnet=net, normalisation="snv")
    assert bundle.architecture == "convolutional" and bundle.input_size == AXIS.points
    Y, y = bands(10, seed=4)
    spectra = [Spectrum(AXIS.values, row) for row in Y]
    p_np = Classifier(bundle).probabilities(spectra)
    p_tfl = Classifier(bundle, "tflite").probabilities(spectra)
    np.testing.assert_allclose(p_np, p_tfl, atol=PARITY_TOLERANCE)
    np.testing.assert_allclose(p_np, predict(model, normalise(Y, "snv")), atol=PARITY_TOLERANCE)
    flops = bundle_flop_count(bundle)
    assert flops["network"] == net.flop(AXIS.points) and flops["total"] > flops["network"]


@pytest.mark.slow
def test_a_malformed_architecture_is_refused(trained, tmp_path):
    net = to_convnet(trained["resnet"][0], "resnet", TINY)
    spec, arrays = to_arrays(net)
    rebuilt = from_arrays(spec, arrays)
    X = normalise(bands(3, seed=5)[0], "snv")
    np.testing.assert_allclose(rebuilt.probabilities(X), net.probabilities(X), atol=1e-6)
    bad_specs = [spec[:-1], [{**spec[0], "op": "lstm"}] + spec[1:], [{**spec[0], "stride": 0}] + spec[1:]]
    for bad in bad_specs:
        with pytest.raises((ValueError, KeyError)):
            from_arrays(bad, arrays)
    # the same refusal through the loader, with the bundle re-signed so that only the content is wrong
    b = write_bundle(tmp_path / "b", name="r", class_names=["a", "b", "c"], axis=AXIS, card={},
                     tflite=tflite_convnet_bytes(net, AXIS.points), convnet=net, normalisation="snv")
    with np.load(b.path / NPZ_FILE) as z:
        content = {k: z[k] for k in z.files}
    content["architecture"] = np.array(json.dumps(bad_specs[1]))
    with open(b.path / NPZ_FILE, "wb") as f:
        np.savez(f, **content)
    card = json.loads((b.path / "model.json").read_text())
    card["files"][NPZ_FILE]["sha256"] = hashlib.sha256((b.path / NPZ_FILE).read_bytes()).hexdigest()
    (b.path / "model.json").write_text(json.dumps(card))
    with pytest.raises(BundleError, match="convolutional network is malformed.*lstm"):
        load_bundle(b.path)


def test_build_refuses_an_unknown_kind():
    with pytest.raises(ValueError, match="cnn, resnet, se-resnet"):
        build("transformer", 64, 3, TINY, 0)


@pytest.mark.slow
def test_fit_cli_exports_a_convolutional_bundle_with_its_card(tmp_path):
    import subprocess
    import sys
    from pathlib import Path

    Y, y = bands(12, seed=6)
    for i, (row, label) in enumerate(zip(Y, y)):
        folder = tmp_path / "data" / f"class{label}"
        folder.mkdir(parents=True, exist_ok=True)
        np.savetxt(folder / f"s{i}.csv", np.column_stack([AXIS.values, row]), delimiter=",")
    bin_ = Path(sys.executable).parent
    r = subprocess.run([str(bin_ / "raman-train"), "fit", str(tmp_path / "data"), "--out", str(tmp_path / "b"),
                        "--model", "se-resnet", "--steps", "40"],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    b = load_bundle(tmp_path / "b")
    assert b.architecture == "convolutional" and b.card["network"]["kind"] == "se-resnet"
    assert b.card["export_check"]["passed"] and b.ood is not None and b.card["flop_per_spectrum"]["network"] > 0
    assert b.card["hyperparameters"]["steps"] == 40 and "not tuned" in b.card["hyperparameters"]["chosen_by"]
    refused = subprocess.run([str(bin_ / "raman-train"), "fit", str(tmp_path / "data"), "--out", str(tmp_path / "c"),
                              "--model", "cnn", "--epochs", "5"], capture_output=True, text=True)
    assert refused.returncode == 2 and "use --steps, not --epochs" in refused.stderr
