"""Per-spectrum normalisation: SNV makes verdicts indifferent to gain and offset; bundles record it."""
import numpy as np
import pytest
from helpers import make_bundle

from device.errors import BundleError
from device.inference.bundle import NPZ_FILE, load_bundle
from device.inference.classifier import Classifier
from device.inference.inputs import normalise
from device.inference.spectrum import Spectrum


def test_snv_definition_and_flat_rows():
    Y = np.array([[1.0, 2.0, 3.0, 6.0], [5.0, 5.0, 5.0, 5.0]])
    Z = normalise(Y, "snv")
    np.testing.assert_allclose(Z[0], (Y[0] - Y[0].mean()) / Y[0].std())
    assert np.all(Z[1] == 0)
    np.testing.assert_array_equal(normalise(Y, "none"), Y)
    with pytest.raises(ValueError, match="unknown normalisation"):
        normalise(Y, "area")


def test_snv_bundle_is_indifferent_to_gain_and_offset(tmp_path):
    bundle = make_bundle(tmp_path / "b", normalisation="snv")
    assert load_bundle(tmp_path / "b").normalisation == "snv"
    clf = Classifier(bundle)
    x = bundle.axis.values
    y = 100 + 50 * np.exp(-0.5 * ((x - 550) / 4) ** 2) + np.sin(x / 7)
    base = clf.probabilities([Spectrum(x, y)])
    for changed in (10 * y, 0.01 * y, y + 200, 3 * y - 40):
        np.testing.assert_allclose(clf.probabilities([Spectrum(x, changed)]), base, rtol=1e-9, atol=1e-12)
    from device.inference.inputs import raw_inputs  # the inputs themselves: moved by an offset without SNV, not with it

    assert not np.allclose(raw_inputs(y + 200, bundle.axis, 0.05), raw_inputs(y, bundle.axis, 0.05))
    np.testing.assert_allclose(raw_inputs(y + 200, bundle.axis, 0.05, "snv"), raw_inputs(y, bundle.axis, 0.05, "snv"),
                               rtol=1e-9, atol=1e-9)


def test_old_bundles_mean_none_and_unknown_values_are_refused(tmp_path):
    import json

    from device.fileio import sha256_file

    make_bundle(tmp_path / "b", normalisation="snv")
    with np.load(tmp_path / "b" / NPZ_FILE, allow_pickle=False) as z:
        arrays = {k: z[k] for k in z.files}
    for value, ok in ((None, True), ("area", False)):
        a = {k: v for k, v in arrays.items() if k != "normalisation"}
        if value is not None:
            a["normalisation"] = np.array(value)
        np.savez(tmp_path / "b" / NPZ_FILE, **a)
        card = json.loads((tmp_path / "b" / "model.json").read_text())
        card["files"][NPZ_FILE]["sha256"] = sha256_file(tmp_path / "b" / NPZ_FILE)
        (tmp_path / "b" / "model.json").write_text(json.dumps(card))
        if ok:
            assert load_bundle(tmp_path / "b").normalisation == "none"
        else:
            with pytest.raises(BundleError, match="unknown normalisation 'area'"):
                load_bundle(tmp_path / "b")


def test_features_constant_under_snv_do_not_carry_rounding_noise(sers_npz):
    from device.inference.features import FEATURE_NAMES
    from device.inference.inputs import Standardizer, raw_inputs
    from device.inference.spectrum import Axis

    X = sers_npz["X"][::40]
    R = raw_inputs(X, Axis(501, 1999, 1499), 0.05, "snv")
    std = Standardizer.fit(R)
    Z = std.transform(R)
    for name in ("mean", "std", "variance", "stability", "cv", "energy", "norm", "sum_squares"):
        col = 1499 + FEATURE_NAMES.index(name)
        assert std.scale[col] == 1.0 and np.abs(Z[:, col]).max() < 1e-9, name
    assert np.all(std.scale[:1499] != 1.0)  # the intensities themselves vary
