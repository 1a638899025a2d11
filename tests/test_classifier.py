"""The classifier: NumPy and LiteRT backends agree, shipped examples, batches, refusals, no TensorFlow."""
import subprocess
import sys

import numpy as np
import pytest
from helpers import make_bundle

from device.errors import AxisCoverageError
from device.inference.backends import NumpyBackend, TFLiteBackend
from device.inference.classifier import Classifier
from device.inference.readers import read_spectra
from device.inference.spectrum import Axis, Spectrum


@pytest.mark.slow
@pytest.mark.device
def test_numpy_and_tflite_agree_on_real_spectra(shipped_bundle, sers_npz, raw_files):
    """One parity test for both backends: the shipped model on real spectra from the data set."""
    numpy_clf = Classifier(shipped_bundle, "numpy")
    tflite_clf = Classifier(shipped_bundle, "tflite")
    X = sers_npz["X"][::25]
    p_np = numpy_clf.probabilities_on_axis(X)
    p_tf = tflite_clf.probabilities_on_axis(X)
    assert p_np.shape == (X.shape[0], 6)
    np.testing.assert_allclose(p_np.sum(axis=1), 1.0, rtol=1e-12)
    assert np.abs(p_np - p_tf).max() <= 1e-5
    assert np.array_equal(p_np.argmax(1), p_tf.argmax(1))
    spectra = [read_spectra(f)[0] for f in raw_files[::10]]
    np.testing.assert_allclose(numpy_clf.probabilities(spectra), tflite_clf.probabilities(spectra), atol=1e-5)


@pytest.mark.device
def test_shipped_examples_come_back_with_their_labels(shipped_bundle):
    clf = Classifier(shipped_bundle)
    assert shipped_bundle.examples
    for path, label in shipped_bundle.examples:
        assert clf.classify(read_spectra(path)[0]).label == label


def test_single_equals_batch_and_prediction_fields(tmp_path, raw_files):
    bundle = make_bundle(tmp_path / "b", axis=Axis(600, 1800, 500))
    clf = Classifier(bundle)
    spectra = [read_spectra(f)[0] for f in raw_files[:5]]
    many = clf.classify_many(spectra)
    for s, p in zip(spectra, many):
        one = clf.classify(s)
        assert one.label == p.label and one.confidence == pytest.approx(p.confidence, rel=1e-12)
        assert one.model_id == bundle.model_id and set(one.probabilities) == {"a", "b", "c"}
        assert one.confidence == max(one.probabilities.values())


def test_softmax_is_stable_for_huge_inputs(tmp_path):
    bundle = make_bundle(tmp_path / "b")
    Z = np.full((2, bundle.input_size), 1e6)
    Z[1] *= -1
    p = NumpyBackend(bundle).probabilities(Z)
    assert np.isfinite(p).all() and np.allclose(p.sum(1), 1)


def test_tflite_backend_handles_changing_batch_sizes(tmp_path):
    bundle = make_bundle(tmp_path / "b")
    be, ref = TFLiteBackend.from_bundle(bundle), NumpyBackend(bundle)
    rng = np.random.default_rng(0)
    for n in (1, 7, 1, 3):
        Z = rng.normal(size=(n, bundle.input_size))
        np.testing.assert_allclose(be.probabilities(Z), ref.probabilities(Z), atol=1e-5)


@pytest.mark.device
def test_spectrum_not_covering_the_axis_is_refused(shipped_bundle):
    x = np.linspace(700, 1999, 900)
    with pytest.raises(AxisCoverageError, match="501-1999"):
        Classifier(shipped_bundle).classify(Spectrum(x, np.ones(900)))


@pytest.mark.device
def test_device_runtime_never_imports_tensorflow_or_scipy(shipped_bundle):
    code = (
        "import sys\n"
        "from device import Classifier, load_bundle\n"
        "from device.inference.readers import read_spectra\n"
        f"b = load_bundle({str(shipped_bundle.path)!r})\n"
        "c = Classifier(b)\n"
        "print(c.classify(read_spectra(b.examples[0][0])[0]).label)\n"
        "heavy = [m for m in ('tensorflow', 'scipy', 'keras', 'sklearn') if m in sys.modules]\n"
        "assert not heavy, heavy\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, capture_output=True)


def test_absurd_weights_give_an_error_not_a_nan_verdict(tmp_path):
    from dataclasses import replace

    import pytest
    from helpers import make_bundle

    from device.errors import BundleError
    from device.inference.network import Dense
    from device.inference.spectrum import Axis, Spectrum

    b = make_bundle(tmp_path / "b", axis=Axis(500, 600, 101))
    hidden, out = b.layers
    huge = replace(b, layers=(Dense(hidden.kernel * 1e308, hidden.bias, hidden.activation), out))
    x = np.linspace(490, 610, 200)
    with pytest.raises(BundleError, match="non-finite probabilities"):
        Classifier(huge).classify(Spectrum(x, np.sin(x / 7) + 2))
