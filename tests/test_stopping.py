"""Adaptive acquisition's stop rule, its calibration on held-out spectra, and the drift check."""
from __future__ import annotations

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression

from device.inference.drift import drift
from device.inference.spectrum import Axis
from device.inference.stopping import StopRule
from trainer.evaluation.stopping import accumulations, calibrate, outcome


def test_rule_needs_agreeing_confident_usable_scans():
    rule = StopRule(min_confidence=0.9, stable_scans=2)
    labels = [[1, 1, 1, 2, 2], [1, 1, 1, 1, 1], [1, 1, 1, 1, 1]]
    conf = [[0.95] * 5, [0.95, 0.5, 0.95, 0.95, 0.95], [0.95] * 5]
    usable = [[True] * 5, [True] * 5, [True, True, False, True, True]]
    np.testing.assert_array_equal(rule.certain(labels, conf, usable), [
        [False, True, True, False, True],
        [False, False, False, True, True],
        [False, True, False, False, True]])
    # negative control: one agreeing scan is enough for a one-scan rule
    assert StopRule(0.9, 1).certain([[1]], [[0.95]], [[True]]).all()
    assert not StopRule(0.99, 1).certain([[1]], [[0.95]], [[True]]).any()


def test_a_devices_least_confidence_raises_the_rule_never_lowers_it():
    rule = StopRule(0.5, 2)
    assert rule.at_least(0.8) == StopRule(0.8, 2) and rule.at_least(0.3) == rule
    labels, conf, usable = [[1, 1, 1]], [[0.7, 0.7, 0.9]], [[True] * 3]
    assert rule.certain(labels, conf, usable)[0, 1]  # negative control: the card's rule stops at 0.7
    assert not rule.at_least(0.8).certain(labels, conf, usable)[0, :2].any()


def test_rule_round_trips_through_the_card():
    rule = StopRule(0.98, 3)
    assert StopRule.from_card({"acquisition": {"rule": rule.to_json()}}) == rule
    assert StopRule.from_card({}) is None
    assert StopRule.from_card({"acquisition": {"rule": None}}) is None


def _scans(rng, n=12, drift_per_scan=0.0, gain_per_scan=0.0, pixels=400):
    x = np.linspace(0, 1, pixels)
    peaks = 2000 * np.exp(-0.5 * ((x - 0.3) / 0.01) ** 2) + 1500 * np.exp(-0.5 * ((x - 0.7) / 0.02) ** 2) + 300
    background = 3000 * np.exp(-0.5 * ((x - 0.5) / 0.3) ** 2)
    scans = []
    for t in range(n):
        mean = peaks * (1 + gain_per_scan * t) + drift_per_scan * t * background
        scans.append(rng.poisson(mean) + rng.normal(0, 10, pixels))
    return np.array(scans)


def test_drift_check_sees_a_growing_background_not_noise_or_gain():
    rng = np.random.default_rng(3)
    steady = [drift(_scans(rng)) for _ in range(20)]
    assert not any(d.drifted for d in steady)
    assert np.median([d.statistic for d in steady]) == pytest.approx(1.0, abs=0.5)
    # laser power or focus changing the whole spectrum's scale is not drift
    assert not drift(_scans(rng, gain_per_scan=0.05)).drifted
    burning = drift(_scans(rng, drift_per_scan=0.02))
    assert burning.drifted and burning.change > 0.05
    assert "burning" in burning.reason()
    assert drift(_scans(rng, n=3)) is None


def _held_out(sers_npz, step):
    """A linear model on every ``step``-th pixel, fitted on 1500 SERS spectra, and 600 spectra it never saw."""
    X, y = sers_npz["X"], sers_npz["y"]
    rows = np.random.default_rng(0).permutation(len(y))
    fit_rows, held = rows[:1500], rows[1500:2100]
    axis = Axis(501.0, 1999.0, X.shape[1])

    def snv(A):
        A = np.asarray(A, dtype=np.float64)
        return ((A - A.mean(axis=1, keepdims=True)) / np.maximum(A.std(axis=1, keepdims=True), 1e-12))[:, ::step]

    model = LogisticRegression(max_iter=1000, C=10.0).fit(snv(X[fit_rows]), y[fit_rows])
    return (lambda A: model.predict_proba(snv(A))), X[held], y[held], axis


@pytest.fixture(scope="module")
def held_out_sers(sers_npz):
    return _held_out(sers_npz, 1)


@pytest.fixture(scope="module")
def held_out_weak(sers_npz):
    """The same on every 50th pixel: noise in a single scan often flips its verdict."""
    return _held_out(sers_npz, 50)


@pytest.mark.parametrize("which", ["held_out_sers", "held_out_weak"])
def test_calibrated_early_stops_are_no_worse_than_full_length_ones(which, request):
    probabilities, Y, y, axis = request.getfixturevalue(which)
    card = calibrate(probabilities, Y, y, axis, seed=1, held_out="test third")
    checked = card["checked"]
    assert card["rule"] is not None
    assert checked["mean_scans"] < 16
    # on the half the choice never saw
    assert checked["error"] <= checked["full_length_error"] + 0.005
    assert checked["early_stop_error"] <= checked["early_stop_full_length_error"] + 0.01


def test_a_lax_rule_stops_into_errors_the_calibration_avoids(held_out_weak):
    # negative control: with one scan at 50 % the same accumulations stop early into more errors
    probabilities, Y, y, axis = held_out_weak
    labels, conf, usable = accumulations(probabilities, Y[:300], axis, np.random.default_rng(2))
    lax = outcome(StopRule(0.5, 1), labels, conf, usable, y[:300])
    assert lax["wrong"].mean() > lax["full_wrong"].mean() + 0.03
