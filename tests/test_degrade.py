"""The acquisition-degradation model of part B: SNR, noise statistics, shift, background, spikes."""
import numpy as np
import pytest
import scipy.optimize

from device.inference.snr import band_height
from device.inference.spectrum import Axis
from trainer.data.degrade import SNR_LEVELS, augment, degrade, signal_scale

AXIS = Axis(400.0, 1800.0, 351)  # 4 cm-1 step
X = AXIS.values
F = 300.0


def lorentzian_spectra(n, seed, offset=(0.0, 0.2)):
    """N spectra of 3-6 Lorentzian bands on a flat offset, each in its own arbitrary units."""
    rng = np.random.default_rng(seed)
    Y = np.zeros((n, X.size))
    for i in range(n):
        for _ in range(rng.integers(3, 7)):
            Y[i] += rng.uniform(0.2, 1.0) / (1 + ((X - rng.uniform(500, 1700)) / rng.uniform(4, 10)) ** 2)
        Y[i] = (Y[i] + rng.uniform(*offset)) * 10 ** rng.uniform(0, 3)
    return Y


@pytest.fixture(scope="module")
def spectra():
    Y = lorentzian_spectra(120, seed=1)
    Y.flags.writeable = False
    return Y


def empirical_snr(noise, signal):
    """Band height of the scaled signal over the RMS of the noise, per spectrum."""
    return band_height(signal) / np.sqrt(np.mean(noise ** 2, axis=1))


def predicted_variance(total, height, s, f):
    """The model's noise variance at each point, written out from the definitions."""
    positive = np.maximum(total, 0)
    g = f * height ** 2 / F ** 2 / positive.mean(axis=1)
    return (g * s)[:, None] * positive + ((1 - f) * height ** 2 / F ** 2)[:, None]


@pytest.mark.parametrize("f", [0.0, 0.5, 1.0])
@pytest.mark.parametrize("snr", [100.0, 20.0, 5.0, 2.0])
def test_empirical_snr_matches_the_request(spectra, snr, f):
    s = signal_scale(snr, shot_fraction=f)
    out = degrade(spectra, X, snr, np.random.default_rng(7), shot_fraction=f)
    measured = empirical_snr(out - s * spectra, s * spectra)
    assert np.mean(measured) == pytest.approx(snr, rel=0.02)
    assert np.all(np.abs(measured / snr - 1) < 0.25)  # every spectrum, not only on average


def test_one_snr_per_spectrum(spectra):
    snr = np.tile([np.inf, 50.0, 10.0, 3.0], len(spectra) // 4)
    s = signal_scale(snr)
    out = degrade(spectra, X, snr, np.random.default_rng(5))
    clean = np.isinf(snr)
    assert np.array_equal(out[clean], spectra[clean])  # inf: untouched, even next to noisy spectra
    noisy = ~clean
    measured = empirical_snr(out[noisy] - s[noisy, None] * spectra[noisy], s[noisy, None] * spectra[noisy])
    for level in (50.0, 10.0, 3.0):
        assert np.mean(measured[snr[noisy] == level]) == pytest.approx(level, rel=0.03)


def test_signal_scale_closed_forms():
    snr = np.array([0.5, 2.0, 5.0, 20.0, 100.0, 299.0])
    assert np.allclose(signal_scale(snr, shot_fraction=1.0), (snr / F) ** 2, rtol=1e-12)  # pure shot noise
    assert np.allclose(signal_scale(snr, shot_fraction=0.0), snr / F, rtol=1e-12)  # pure read noise
    for f in (0.0, 0.2, 0.5, 0.8, 1.0):
        assert signal_scale(F, shot_fraction=f) == pytest.approx(1.0, abs=1e-15)
        assert signal_scale(1000.0, full_snr=1000.0, shot_fraction=f) == pytest.approx(1.0, abs=1e-15)
        assert signal_scale(np.inf, shot_fraction=f) == 1.0
        grid = np.geomspace(0.01, F, 500)
        assert np.all(np.diff(signal_scale(grid, shot_fraction=f)) > 0)
        for level in (2.0, 5.0, 50.0):
            oracle = scipy.optimize.brentq(lambda s, f=f, level=level: F * s / np.sqrt(f * s + 1 - f) - level,
                                           1e-12, 1.0, xtol=1e-15)
            assert signal_scale(level, shot_fraction=f) == pytest.approx(oracle, rel=1e-10)
    assert isinstance(signal_scale(20.0), float)
    assert np.array_equal(signal_scale(np.array([20.0, np.inf])), [signal_scale(20.0), 1.0])


@pytest.mark.parametrize("f", [0.0, 0.5, 1.0])
def test_noise_variance_follows_shot_and_read_model(f):
    # One spectrum many times, each with its own background: the variance at every point matches the model.
    Y = np.repeat(lorentzian_spectra(1, seed=2), 4000, axis=0)
    snr, seed = 10.0, 11
    s = signal_scale(snr, shot_fraction=f)
    clean = degrade(Y, X, np.inf, np.random.default_rng(seed), background=0.8)  # Y + background
    out = degrade(Y, X, snr, np.random.default_rng(seed), background=0.8, shot_fraction=f)
    z2 = (out - s * clean) ** 2 / predicted_variance(clean, band_height(Y), s, f)
    per_point = z2.mean(axis=0)  # ~ 1 +/- 0.022 at each point
    assert np.mean(per_point) == pytest.approx(1.0, abs=0.01)
    assert np.all(np.abs(per_point - 1) < 0.12)


def test_shot_noise_vanishes_where_there_is_no_light():
    y = lorentzian_spectra(1, seed=3, offset=(0.0, 0.0))[0]
    y[:100] = -0.1 * y.max()  # a baseline-corrected spectrum dips below zero
    Y = np.repeat(y[None], 2000, axis=0)
    s = signal_scale(20.0, shot_fraction=1.0)
    noise = degrade(Y, X, 20.0, np.random.default_rng(4), shot_fraction=1.0) - s * Y
    assert np.all(noise[:, :100] == 0)
    z2 = noise[:, 100:] ** 2 / predicted_variance(Y, band_height(Y), s, 1.0)[:, 100:]
    assert z2.mean() == pytest.approx(1.0, abs=0.01)


def test_output_mean_is_the_scaled_signal_plus_background():
    Y = np.repeat(lorentzian_spectra(1, seed=5), 3000, axis=0)
    kw = dict(background=0.5, spikes=1.0, shift_cm=1.3)
    snr, seed = 5.0, 12
    s = signal_scale(snr)
    clean = degrade(Y, X, np.inf, np.random.default_rng(seed), **kw)  # same background and spikes
    out = degrade(Y, X, snr, np.random.default_rng(seed), **kw)
    residual = out - s * clean
    t = residual.mean(axis=0) / (residual.std(axis=0) / np.sqrt(len(Y)))
    assert np.all(np.abs(t) < 5)
    assert abs(t.mean()) < 5 / np.sqrt(X.size)
    assert np.all(np.abs(residual) < 7 * residual.std(axis=0))  # spikes scale with s: none left over


def test_background_is_smooth_positive_and_relative_to_band_height(spectra):
    b = degrade(spectra, X, np.inf, np.random.default_rng(8), background=0.4) - spectra
    height = band_height(spectra)
    assert np.all(b > 0)
    assert np.allclose(b.max(axis=1), 0.4 * height, rtol=1e-12)
    curvature = np.abs(np.diff(b, 2, axis=1)).max(axis=1)
    assert np.all(curvature < 1e-3 * height)  # broad: no band-like structure
    assert np.std(np.argmax(b, axis=1)) > 50  # random centres
    per_spectrum = degrade(spectra, X, np.inf, np.random.default_rng(8), background=np.linspace(0, 1, len(spectra)))
    assert np.allclose((per_spectrum - spectra).max(axis=1), np.linspace(0, 1, len(spectra)) * height)


@pytest.mark.parametrize("d", [2.3, -1.7, 0.25, 9.0])
def test_shift_moves_a_band_by_that_many_wavenumbers(d):
    y = np.exp(-0.5 * ((X - 1000.0) / 6.0) ** 2)[None]
    out = degrade(y, X, np.inf, np.random.default_rng(0), shift_cm=d)[0]
    assert np.sum(X * out) / np.sum(out) == pytest.approx(1000.0 + d, abs=1e-9)  # centroid
    i = int(np.argmax(out))
    vertex = X[i] + AXIS.step * 0.5 * (out[i - 1] - out[i + 1]) / (out[i - 1] - 2 * out[i] + out[i + 1])
    assert vertex == pytest.approx(1000.0 + d, abs=0.3)


def test_shift_is_linear_interpolation_holding_the_ends(spectra):
    d = np.linspace(-8, 8, len(spectra))
    out = degrade(spectra, X, np.inf, np.random.default_rng(0), shift_cm=d)
    oracle = np.array([np.interp(X - di, X, yi) for di, yi in zip(d, spectra)])
    assert np.allclose(out, oracle, rtol=0, atol=1e-12 * np.abs(spectra).max())
    assert np.all(out[d > 0, 0] == spectra[d > 0, 0]) and np.all(out[d < 0, -1] == spectra[d < 0, -1])


def spike_runs(diff):
    """(row, start, length) of each run of consecutive non-zero points."""
    on = np.pad(diff != 0, ((0, 0), (1, 1)))
    edges = np.diff(on.astype(int), axis=1)
    rows, starts = np.nonzero(edges == 1)
    _, ends = np.nonzero(edges == -1)
    return rows, starts, ends - starts


def test_spike_count_is_poisson_with_the_requested_mean():
    Y = lorentzian_spectra(3000, seed=6)
    rate = 1.5
    diff = degrade(Y, X, np.inf, np.random.default_rng(9), spikes=rate) - Y
    rows, starts, lengths = spike_runs(diff)
    counts = np.bincount(rows, minlength=len(Y))
    assert counts.mean() == pytest.approx(rate, rel=0.05)
    assert counts.var() == pytest.approx(rate, rel=0.12)
    assert np.mean(counts == 0) == pytest.approx(np.exp(-rate), abs=0.03)
    assert np.isin(lengths, (1, 2)).mean() > 0.98 and np.mean(lengths == 2) == pytest.approx(0.5, abs=0.05)
    single = lengths == 1
    heights = diff[rows[single], starts[single]] / band_height(Y)[rows[single]]
    assert np.mean((heights >= 0.5) & (heights <= 3.0)) > 0.98
    assert np.median(heights) == pytest.approx(1.75, rel=0.05)


def test_spikes_scale_with_the_signal():
    Y = lorentzian_spectra(400, seed=6)
    s = signal_scale(5.0, shot_fraction=0.0)
    diff = degrade(Y, X, np.inf, np.random.default_rng(10), spikes=1.0) - Y
    degraded = degrade(Y, X, 5.0, np.random.default_rng(10), spikes=1.0, shot_fraction=0.0)
    noise = degraded - s * Y - s * diff  # spikes at the same places, s times as high
    assert np.abs(noise / (s * band_height(Y) / 5.0)[:, None]).max() < 6  # read noise only: sd = s H / SNR


def test_no_effect_unless_asked_for(spectra):
    assert np.array_equal(degrade(spectra, X, np.inf, np.random.default_rng(0)), spectra)
    s = signal_scale(20.0)
    noise = degrade(spectra, X, 20.0, np.random.default_rng(1)) - s * spectra
    sd = np.sqrt(predicted_variance(spectra, band_height(spectra), s, 0.5))
    assert np.abs(noise / sd).max() < 6  # no spike, no background


def test_deterministic_for_a_generator_and_input_untouched(spectra):
    kw = dict(background=0.3, shift_cm=2.0, spikes=0.5)
    a = degrade(spectra, AXIS, 10.0, np.random.default_rng(3), **kw)
    b = degrade(spectra, X, 10.0, np.random.default_rng(3), **kw)
    c = degrade(spectra, X, 10.0, np.random.default_rng(4), **kw)
    assert a.dtype == np.float64 and a.shape == spectra.shape
    assert np.array_equal(a, b) and not np.allclose(a, c)
    assert np.array_equal(spectra, lorentzian_spectra(120, seed=1))


def test_augment_shape_determinism_and_variety():
    Y = np.repeat(lorentzian_spectra(1, seed=7), 50, axis=0)
    Y.flags.writeable = False
    a = augment(Y, X, np.random.default_rng(0))
    assert a.shape == Y.shape and a.dtype == np.float64 and np.isfinite(a).all()
    assert np.array_equal(a, augment(Y, X, np.random.default_rng(0)))
    assert not np.allclose(a, augment(Y, X, np.random.default_rng(1)))
    distinct = np.abs(a[:, None, :] - a[None, :, :]).max(axis=2)
    assert np.all(distinct[~np.eye(len(Y), dtype=bool)] > 0)


def test_augment_draws_snr_log_uniformly():
    Y = lorentzian_spectra(400, seed=8)
    low, high = 5.0, 300.0
    out = augment(Y, X, np.random.default_rng(2), snr_range=(low, high), background_max=0.0,
                  shift_max_cm=0.0, spike_rate=0.0, response_max=0.0, broaden_max_cm=0.0)
    s = np.sum(out * Y, axis=1) / np.sum(Y * Y, axis=1)  # least-squares scale of each spectrum
    measured = empirical_snr(out - s[:, None] * Y, s[:, None] * Y)
    assert measured.min() > 0.85 * low and measured.max() < 1.15 * high
    assert np.mean(measured < np.sqrt(low * high)) == pytest.approx(0.5, abs=0.08)
    fixed = augment(Y, X, np.random.default_rng(2), snr_range=(20.0, 20.0), background_max=0.0,
                    shift_max_cm=0.0, spike_rate=0.0, response_max=0.0, broaden_max_cm=0.0)
    s20 = signal_scale(20.0)
    assert np.mean(empirical_snr(fixed - s20 * Y, s20 * Y)) == pytest.approx(20.0, rel=0.02)


def test_broadening_is_scipys_gaussian_filter(spectra):
    from scipy.ndimage import gaussian_filter1d

    fwhm = np.array([10.0, 20.0, 40.0])  # 1.3-4 points: a continuous Gaussian's samples are scipy's kernel
    out = degrade(spectra[:3], X, np.inf, np.random.default_rng(0), broaden_cm=fwhm)
    step = X[1] - X[0]
    for row, width, y in zip(out, fwhm, spectra[:3]):
        sigma = width / 2.3548200450309493 / step
        reference = gaussian_filter1d(y, sigma, mode="nearest", truncate=8.0)
        assert np.max(np.abs(row - reference)) < 1e-4 * np.abs(y).max()
        narrower = gaussian_filter1d(y, 0.8 * sigma, mode="nearest", truncate=8.0)  # negative control
        assert np.max(np.abs(row - narrower)) > 1e-2 * np.abs(y).max()


def test_augmented_instruments_differ_in_response_and_resolution():
    """One band on a flat line, each copy on its own instrument: heights at the ends and widths vary."""
    Y = np.repeat((0.1 + 1 / (1 + ((X - 1100.0) / 3.0) ** 2))[None], 200, axis=0)
    kw = dict(snr_range=(F, F), background_max=0.0, shift_max_cm=0.0, spike_rate=0.0)
    plain = augment(Y, X, np.random.default_rng(3), response_max=0.0, broaden_max_cm=0.0, **kw)
    out = augment(Y, X, np.random.default_rng(3), **kw)
    ends = out[:, -5:].mean(axis=1) / out[:, 120:130].mean(axis=1)  # the far end over the middle's floor
    plain_ends = plain[:, -5:].mean(axis=1) / plain[:, 120:130].mean(axis=1)
    assert ends.min() < 0.8 and ends.max() > 1.2 and np.all((ends > 0.3) & (ends < 2.2))
    assert plain_ends.std() < 0.05 < ends.std()  # the control: one instrument, only noise between copies
    peak = out.argmax(axis=1)
    assert np.all(np.abs(X[peak] - 1100.0) <= 4.0)
    heights = out[np.arange(len(out)), peak] / plain[np.arange(len(out)), peak]
    assert heights.min() < 0.6 < 0.95 < heights.max()  # widened bands are lower; some are hardly widened


def test_sweep_levels():
    assert SNR_LEVELS[0] == F and all(a > b for a, b in zip(SNR_LEVELS, SNR_LEVELS[1:]))
    assert all(0 < signal_scale(level) <= 1 for level in SNR_LEVELS)


GOOD = lorentzian_spectra(3, seed=0)


@pytest.mark.parametrize("call, message", [
    (lambda: degrade(np.where(np.eye(3, X.size) > 0, np.nan, GOOD), X, 10, np.random.default_rng(0)),
     r"non-finite value \(nan\) in spectrum 0 at point 0"),
    (lambda: degrade(GOOD[0], X, 10, np.random.default_rng(0)), r"Y must be 2-D"),
    (lambda: degrade(GOOD, X[:-1], 10, np.random.default_rng(0)), r"shift must have shape \(351,\)"),
    (lambda: degrade(GOOD, X[::-1], 10, np.random.default_rng(0)), r"strictly increasing"),
    (lambda: degrade(GOOD, np.where(X == X[5], np.inf, X), 10, np.random.default_rng(0)), r"shift holds non-finite"),
    (lambda: degrade(GOOD, X, 0.0, np.random.default_rng(0)), r"snr must be positive"),
    (lambda: degrade(GOOD, X, -3.0, np.random.default_rng(0)), r"snr must be positive"),
    (lambda: degrade(GOOD, X, np.nan, np.random.default_rng(0)), r"snr must be a number"),
    (lambda: degrade(GOOD, X, 500.0, np.random.default_rng(0)), r"snr 500 is above full_snr \(300\)"),
    (lambda: degrade(GOOD, X, [10, 20], np.random.default_rng(0)), r"snr must be a number or an array of shape \(3,\)"),
    (lambda: degrade(GOOD, X, 10, np.random.default_rng(0), shot_fraction=1.5), r"shot_fraction must be in \[0, 1\]"),
    (lambda: degrade(GOOD, X, 10, np.random.default_rng(0), shot_fraction=-0.1), r"shot_fraction must be in \[0, 1\]"),
    (lambda: degrade(GOOD, X, 10, np.random.default_rng(0), full_snr=0), r"full_snr must be a finite positive"),
    (lambda: degrade(GOOD, X, 10, np.random.default_rng(0), background=-0.1), r"background must be >= 0"),
    (lambda: degrade(GOOD, X, 10, np.random.default_rng(0), spikes=-1), r"spikes must be >= 0"),
    (lambda: degrade(GOOD, X, 10, np.random.default_rng(0), shift_cm=np.nan), r"shift_cm must be finite"),
    (lambda: degrade(np.ones_like(GOOD), X, 10, np.random.default_rng(0)), r"spectrum 0 is flat"),
    (lambda: degrade(-GOOD - 1, X, 10, np.random.default_rng(0)), r"spectrum 0 has no positive intensity"),
    (lambda: signal_scale(20, shot_fraction=2), r"shot_fraction must be in \[0, 1\]"),
    (lambda: signal_scale(301), r"above full_snr"),
    (lambda: augment(GOOD, X, np.random.default_rng(0), snr_range=(50, 10)), r"0 < low <= high <= full_snr"),
    (lambda: augment(GOOD, X, np.random.default_rng(0), snr_range=(5, 400)), r"0 < low <= high <= full_snr \(300\)"),
    (lambda: augment(GOOD, X, np.random.default_rng(0), snr_range=5), r"snr_range must be two numbers"),
    (lambda: augment(GOOD, X, np.random.default_rng(0), spike_rate=-0.1), r"spike_rate must be a finite number >= 0"),
    (lambda: augment(GOOD, X, np.random.default_rng(0), response_max=0.6), r"response_max must be below 0.5"),
    (lambda: degrade(GOOD, X, 10, np.random.default_rng(0), broaden_cm=-1), r"broaden_cm must be >= 0"),
    (lambda: degrade(GOOD, X, 10, np.random.default_rng(0), response=np.zeros(X.size)), r"response must be positive"),
])
def test_bad_inputs_are_refused_with_a_specific_message(call, message):
    with pytest.raises(ValueError, match=message):
        call()


def test_rng_must_be_a_generator():
    with pytest.raises(TypeError, match="numpy Generator"):
        degrade(GOOD, X, 10, 0)
