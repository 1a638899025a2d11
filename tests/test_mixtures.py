"""Calibration and measurement of the mixture verdict on real spectra (trainer side).

The calibration on a subsample takes 3-6 s and the measurement on both shared sets about 70-80 s here; both are
marked slow (the project's marker: more than about half a second).
"""
import time

import numpy as np
import pytest
from conftest import DATASETS, _need

from device.inference.snr import band_height
from device.inference.spectrum import Axis
from device.inference.unmixing import BACKGROUND_ORDER, legendre_background
from trainer.data.dataset import DatasetError
from trainer.evaluation.mixtures import (
    MICROPLASTICS_AXIS,
    PESTICIDE_CONTROL,
    calibrate_mixture,
    derivative_window,
    mixture_rates,
    shared_set_rates,
    synthetic_mixtures,
)

SERS_AXIS = Axis(501, 1999, 1499)


@pytest.fixture(scope="module")
def subsample(sers_npz):
    """30 spectra per class of the pesticide set (seed 0) as (X, labels), and the indices of the others."""
    rng = np.random.default_rng(0)
    y = sers_npz["y"]
    keep = np.concatenate([rng.permutation(np.flatnonzero(y == c))[:30] for c in range(6)])
    rest = np.setdiff1d(np.arange(y.size), keep)
    return sers_npz["X"][keep], np.asarray(sers_npz["class_names"])[y[keep]], rest


@pytest.fixture(scope="module")
def calibrated(subsample):
    X, labels, _ = subsample
    t0 = time.perf_counter()
    model = calibrate_mixture(X, labels, SERS_AXIS)
    return model, time.perf_counter() - t0


def clean(y):
    B = legendre_background(y.size, BACKGROUND_ORDER)
    return y - B @ (B.T @ y)


def test_derivative_window_is_the_odd_width_nearest_25_cm1():
    assert derivative_window(SERS_AXIS) == 25
    assert derivative_window(MICROPLASTICS_AXIS) == 11  # 25 cm-1 / 2.287 cm-1 = 10.9 points
    assert derivative_window(Axis(0, 1000, 101)) == 5  # 2.5 points: the narrowest window
    assert derivative_window(Axis(0, 1000, 1001), 30.0) == 31


def test_synthetic_mixtures_sum_two_entries_at_the_stated_shares_of_band_height(sers_npz):
    Y = sers_npz["X"][[0, 3000, 6000]]  # one spectrum per entry, so each mixture's spectra are known
    entry = np.array([0, 1, 2])
    M, first, second, ratio = synthetic_mixtures(Y, entry, (0.25, 0.5), 40, np.random.default_rng(1),
                                                 allowed=[0, 2])
    assert M.shape == (80, Y.shape[1]) and np.all(ratio == np.repeat([0.25, 0.5], 40))
    assert set(first) | set(second) == {0, 2} and np.all(first != second)
    H = np.array([band_height(clean(y)) for y in Y])
    expected = ratio[:, None] * Y[first] / H[first, None] + (1 - ratio)[:, None] * Y[second] / H[second, None]
    np.testing.assert_allclose(M, expected, rtol=1e-12)
    with pytest.raises(DatasetError, match="at least two entries"):
        synthetic_mixtures(Y, entry, (0.5,), 3, np.random.default_rng(1), allowed=[1])


@pytest.mark.slow
def test_calibration_on_a_subsample_holds_on_spectra_it_never_saw(calibrated, subsample, sers_npz):
    model, seconds = calibrated
    _, _, rest = subsample
    assert seconds < 30
    assert model.names == tuple(sorted(str(n) for n in sers_npz["class_names"]))
    assert model.calibration_spectra == 180 and model.derivative_window in (0, 25)
    assert 0 < model.threshold < 1
    assert model.false_mixture_rate <= 0.01  # at most the rate on the held-out singles that set the threshold
    # Its synthetic mixtures pair the control too: pesticide + spinach is a weaker pesticide, rarely a mixture.
    assert model.mixture_detection_rate > 0.5
    rng = np.random.default_rng(2)
    X, y, names = sers_npz["X"], sers_npz["y"], [str(n) for n in sers_npz["class_names"]]
    singles = rng.choice(rest, 100, replace=False)
    called = [model.unmix(X[i]) for i in singles]
    assert np.mean([u.is_mixture for u in called]) <= 0.05
    assert np.mean([u.best == names[y[i]] for u, i in zip(called, singles)]) > 0.9
    pesticides = rest[y[rest] != 0]
    pairs = [(i, j) for i, j in rng.choice(pesticides, (60, 2)) if y[i] != y[j]]
    right = 0
    for i, j in pairs:
        u = model.unmix(0.5 * X[i] / band_height(clean(X[i])) + 0.5 * X[j] / band_height(clean(X[j])))
        right += u.is_mixture and set(dict(u.components)) == {names[y[i]], names[y[j]]}
    assert len(pairs) > 40 and right >= 0.8 * len(pairs)


@pytest.mark.slow
def test_shuffled_labels_leave_nothing_to_detect(subsample):
    # Negative control: with labels at random every reference is the same average, so the calibration's
    # synthetic mixtures look like single spectra and are rarely called mixtures.
    X, labels, _ = subsample
    shuffled = np.random.default_rng(3).permutation(labels)
    assert calibrate_mixture(X, shuffled, SERS_AXIS).mixture_detection_rate < 0.3


@pytest.mark.parametrize("change, message", [
    (lambda X, labels: (X, np.full(labels.size, "one")), "at least two entries"),
    (lambda X, labels: (X[:-29], labels[:-29]), "has one spectrum"),
    (lambda X, labels: (X[:, :-1], labels), r"needs spectra \(n, 1499\)"),
    (lambda X, labels: (X, labels[:-1]), "one label each"),
])
def test_calibration_refuses_data_it_cannot_use(subsample, change, message):
    X, labels, _ = subsample
    order = np.argsort(labels, kind="stable")  # the last 30 rows are one entry
    with pytest.raises(DatasetError, match=message):
        calibrate_mixture(*change(X[order], labels[order]), SERS_AXIS)
    with pytest.raises(DatasetError, match="between 0 and 1"):
        calibrate_mixture(X, labels, SERS_AXIS, rate=0.0)


@pytest.mark.slow
def test_mixture_rates_on_a_small_sample_reports_every_ratio(sers_npz):
    rng = np.random.default_rng(4)
    y = sers_npz["y"]
    keep = np.concatenate([rng.permutation(np.flatnonzero(y == c))[:20] for c in range(6)])
    labels = np.asarray(sers_npz["class_names"])[y[keep]]
    pesticides = [str(n) for n in sers_npz["class_names"] if n != PESTICIDE_CONTROL]
    result = mixture_rates(sers_npz["X"][keep], labels, SERS_AXIS, components=pesticides, folds=3, count=60)
    assert result["spectra"] == 120 and result["snr"] == 50.0
    assert len(result["thresholds"]) == 3 and set(result["derivative_windows"]) <= {0, 25}
    assert set(result["mixtures"]) == {"25:75", "50:50", "75:25"}
    assert all(m["count"] == 60 for m in result["mixtures"].values())
    assert "stratified 3-fold" in result["protocol"] and PESTICIDE_CONTROL not in result["protocol"]
    assert result["mixtures"]["50:50"]["detected"] > 0.8 > result["false_mixture"]["degraded"] + 0.7
    assert result["mixtures"]["50:50"]["fraction_error"] < 0.1


@pytest.mark.slow
def test_shared_sets_rates_against_the_targets():
    _need(DATASETS / "rampp_microplastics" / "rampp_microplastics.npz")
    _need(DATASETS / "sersformer_pesticides" / "sersformer_pesticides.npz")
    rates = shared_set_rates(DATASETS)
    assert set(rates) == {"pesticides", "microplastics", "microplastics, sea water held out"}
    pesticides = rates["pesticides"]
    assert pesticides["seconds"] < 120
    assert min(m["detected"] for m in pesticides["mixtures"].values()) >= 0.9
    assert pesticides["false_mixture"]["degraded"] <= 0.015 and pesticides["false_mixture"]["as_measured"] <= 0.015
    for name in ("microplastics", "microplastics, sea water held out"):
        assert rates[name]["false_mixture"]["degraded"] <= 0.02
        assert rates[name]["mixtures"]["50:50"]["detected"] > 0.5  # well short of 90 %: see the module docstring
