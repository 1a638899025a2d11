"""Every feature against an obvious reference: SciPy, NumPy or a plain loop."""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from device.inference.features import DEFAULT_PROMINENCE, FEATURE_NAMES, engineered_features
from device.inference.peaks import prominent_peaks
from device.inference.readers import read_spectra
from device.inference.resample import resample
from device.inference.spectrum import Axis


def reference(y: np.ndarray, axis: Axis, frac: float = DEFAULT_PROMINENCE) -> dict:
    """The 22 features of one spectrum, written the obvious way."""
    import scipy.signal
    import scipy.stats

    x = axis.values
    n = y.size
    mu = sum(y) / n
    var = sum((v - mu) ** 2 for v in y) / n
    sigma = np.sqrt(var)
    peaks, _ = scipy.signal.find_peaks(y, prominence=frac * (y.max() - y.min()))
    q1, q3 = np.percentile(y, [25, 75])
    g = np.gradient(y, axis.step)
    return {
        "mean": np.mean(y), "std": np.std(y), "norm": np.linalg.norm(y), "sum_squares": np.sum(y ** 2),
        "variance": np.var(y), "stability": 1 / np.var(y),
        "kurtosis": scipy.stats.kurtosis(y, fisher=False, bias=True), "skewness": scipy.stats.skew(y, bias=True),
        "energy": np.sum(y ** 2) / n, "mad": sum(abs(v - mu) for v in y) / n, "max": max(y), "min": min(y),
        "range": np.ptp(y), "iqr": q3 - q1, "max_dev": abs(max(y) - mu), "min_dev": abs(min(y) - mu),
        "cv": sigma / mu, "peak_count": len(peaks),
        "peak_spacing": np.mean(np.diff(x[peaks])) if len(peaks) > 1 else 0.0,
        "max_position": x[np.argmax(y)], "grad_max": g.max(), "grad_std": g.std(),
    }


def assert_features_match(F: np.ndarray, Y: np.ndarray, axis: Axis):
    for row, y in zip(F, Y):
        ref = reference(y, axis)
        for name, value in zip(FEATURE_NAMES, row):
            assert value == pytest.approx(ref[name], rel=1e-9, abs=1e-12), name


@pytest.mark.device
def test_names_and_shape(sers_sample):
    X, wn = sers_sample
    F = engineered_features(X[:3], Axis(501, 1999, 1499))
    assert len(FEATURE_NAMES) == 22 and F.shape == (3, 22)


def test_every_feature_matches_reference_on_real_spectra(sers_sample):
    X, wn = sers_sample
    axis = Axis(wn[0], wn[-1], wn.size)
    assert_features_match(engineered_features(X, axis), X, axis)


def test_every_feature_matches_reference_on_resampled_instrument_files(raw_files):
    axis = Axis(510, 1990, 2721)  # 2721 points as in the published method, inside the files' range
    Y = np.stack([resample(s.shift, s.intensity, axis) for f in raw_files[::12] for s in read_spectra(f)])
    assert_features_match(engineered_features(Y, axis), Y, axis)


@pytest.mark.device
def test_batch_equals_one_at_a_time_and_input_untouched(sers_sample):
    X, wn = sers_sample
    axis = Axis(wn[0], wn[-1], wn.size)
    X = X[:10].copy()
    X.flags.writeable = False
    batch = engineered_features(X, axis)
    single = np.vstack([engineered_features(x, axis) for x in X])
    np.testing.assert_array_equal(batch, single)


@pytest.mark.device
@pytest.mark.parametrize("value", [0.0, 7.5, -3.0])
def test_flat_spectrum_edge_cases(value):
    axis = Axis(500, 600, 101)
    f = dict(zip(FEATURE_NAMES, engineered_features(np.full(101, value), axis)[0]))
    for name in ("stability", "kurtosis", "skewness", "cv", "std", "variance", "iqr", "mad", "range",
                 "peak_count", "peak_spacing", "grad_max", "grad_std"):
        assert f[name] == 0.0, name
    assert f["mean"] == value and f["max_position"] == 500.0
    assert np.isfinite(list(f.values())).all()


@pytest.mark.device
def test_zero_mean_gives_zero_cv():
    axis = Axis(0, 3, 4)
    f = dict(zip(FEATURE_NAMES, engineered_features(np.array([1.0, -1.0, 1.0, -1.0]), axis)[0]))
    assert f["mean"] == 0 and f["cv"] == 0.0 and f["std"] == 1.0


@pytest.mark.device
def test_fewer_than_two_peaks_gives_zero_spacing():
    axis = Axis(0, 100, 101)
    x = axis.values
    one = np.exp(-((x - 40) / 5) ** 2)
    counts = engineered_features(np.vstack([one, x]), axis)[:, FEATURE_NAMES.index("peak_count")]
    spacing = engineered_features(np.vstack([one, x]), axis)[:, FEATURE_NAMES.index("peak_spacing")]
    assert counts.tolist() == [1.0, 0.0] and spacing.tolist() == [0.0, 0.0]
    two = one + np.exp(-((x - 70) / 5) ** 2)
    assert engineered_features(two, axis)[0, FEATURE_NAMES.index("peak_spacing")] == pytest.approx(30.0)


def test_prominence_threshold_is_relative_to_range():
    axis = Axis(0, 100, 101)
    x = axis.values
    y = np.exp(-((x - 30) / 3) ** 2) + 0.04 * np.exp(-((x - 70) / 3) ** 2)
    count = FEATURE_NAMES.index("peak_count")
    assert engineered_features(y, axis)[0, count] == 1  # the small band is 4 % of the range
    assert engineered_features(1000 * y + 50, axis)[0, count] == 1
    assert engineered_features(y, axis, prominence=0.03)[0, count] == 2


def assert_same_peaks(Y, frac):
    import scipy.signal

    flat = prominent_peaks(Y, frac * np.ptp(Y, axis=1))
    N = Y.shape[1]
    for i, y in enumerate(Y):
        ref = scipy.signal.find_peaks(y, prominence=frac * np.ptp(y))[0]
        np.testing.assert_array_equal(flat[flat // N == i] % N, ref)


@settings(max_examples=300, deadline=None)
@given(arrays(np.float64, st.tuples(st.integers(1, 4), st.integers(3, 60)),
              elements=st.integers(-4, 4).map(float)),
       st.sampled_from([0.0, 0.05, 0.2, 0.5]))
@pytest.mark.slow
def test_peaks_match_scipy_with_plateaus_and_ties(Y, frac):
    assert_same_peaks(Y, frac)


@settings(max_examples=200, deadline=None)
@given(arrays(np.float64, st.tuples(st.integers(1, 3), st.integers(3, 300)),
              elements=st.floats(-1e6, 1e6, allow_nan=False, allow_subnormal=False)))
@pytest.mark.slow
def test_peaks_match_scipy_on_arbitrary_floats(Y):
    assert_same_peaks(Y, 0.05)


def test_peaks_match_scipy_on_every_real_spectrum_class(sers_npz):
    X = sers_npz["X"][::7]
    assert_same_peaks(X, 0.05)


@pytest.mark.device
def test_nearly_flat_spectrum_counts_as_flat():
    axis = Axis(500, 600, 101)
    y = np.full(101, 1000.0)
    y[50] += 1e-10  # sigma ~1e-11 <= 1e-12 x 1000
    f = dict(zip(FEATURE_NAMES, engineered_features(y, axis)[0]))
    assert f["stability"] == f["kurtosis"] == f["skewness"] == f["cv"] == 0.0
