"""The wavelength fit on its own: peaks, one line per peak, unresolved lines and the acceptance limits."""
import numpy as np
import pytest

from firmware_bridge.calibration import find_peaks, fit_wavelengths, wavelengths
from firmware_bridge.errors import CalibrationError

pytestmark = pytest.mark.device  # needs only the device extra

PIXELS = 1024
TRUE = (780.0, 0.3, -1.0e-5, 1.0e-9)  # nm


def lines_at(pixels, fwhm=4.0, height=1000.0, noise=5.0, seed=0):
    """Counts with a Gaussian line at each pixel position, plus a floor and white noise."""
    p = np.arange(PIXELS, dtype=float)
    sigma = fwhm / 2.3548
    y = 100.0 + sum(height * np.exp(-0.5 * ((p - c) / sigma) ** 2) for c in pixels)
    return y + np.random.default_rng(seed).normal(0, noise, PIXELS)


def reference(pixels):
    """Wavelengths (nm) of lines seen at ``pixels`` under the true polynomial."""
    return np.polynomial.polynomial.polyval(np.asarray(pixels, float), TRUE)


SPREAD = (60.3, 150.8, 260.1, 333.6, 420.2, 515.9, 610.4, 702.7, 811.1, 905.5, 980.2)


def test_peaks_have_the_centres_and_widths_they_were_made_with():
    centres, fwhm = find_peaks(lines_at(SPREAD, fwhm=4.0))
    np.testing.assert_allclose(centres, SPREAD, atol=0.05)
    np.testing.assert_allclose(fwhm, 4.0, rtol=0.1)
    assert find_peaks(lines_at([], noise=5.0))[0].size == 0  # noise alone has no peak


def test_fit_recovers_the_polynomial_and_leaves_a_blended_pair_out():
    pair = (470.0, 473.0)  # 3 pixels apart at a line width of 4: one peak between them
    fit = fit_wavelengths(lines_at(SPREAD + pair), reference(SPREAD + pair), TRUE, degree=3)
    np.testing.assert_allclose(sorted(fit.unresolved_nm), reference(pair))
    assert not set(np.round(fit.reference_nm, 6)) & set(np.round(reference(pair), 6))
    assert len(fit.pixels) == len(SPREAD) and len(np.unique(np.round(fit.pixels))) == len(fit.pixels)
    error = np.abs(wavelengths(fit.coefficients, PIXELS) - wavelengths(TRUE, PIXELS))[60:981]
    assert error.max() < 0.01 and fit.rms_nm < 0.01


def test_a_line_nearest_to_one_peak_with_another_is_never_given_it():
    """Two reference lines, one peak: the peak goes to neither (the old fit gave both the same pixel)."""
    counts = lines_at(SPREAD)
    ref = np.append(reference(SPREAD), reference([333.6 + 1.5]))  # a line not in the spectrum, by another
    fit = fit_wavelengths(counts, ref, TRUE, degree=3)
    assert len(np.unique(np.round(fit.pixels, 3))) == len(fit.pixels)
    assert reference([333.6])[0] in fit.unresolved_nm


def test_lines_off_the_reference_are_refused():
    rng = np.random.default_rng(1)
    moved = np.array(SPREAD) + rng.uniform(-4, 4, len(SPREAD))  # another substance's bands, near the lines
    with pytest.raises(CalibrationError, match="is the standard in the beam"):
        fit_wavelengths(lines_at(moved), reference(SPREAD), TRUE, degree=3)
    fit_wavelengths(lines_at(SPREAD), reference(SPREAD), TRUE, degree=3)  # the same check passes the standard


def test_acceptance_limits_can_be_set():
    counts, ref = lines_at(SPREAD), reference(SPREAD)
    with pytest.raises(CalibrationError, match=r"rms residual .* exceeds 0\.0000 nm"):
        fit_wavelengths(counts, ref, TRUE, degree=3, max_rms_nm=1e-9)
    with pytest.raises(CalibrationError, match="matched 11 of the 11 reference lines in range; the fit needs at "
                                               "least 12"):
        fit_wavelengths(counts, ref, TRUE, degree=3, min_lines=12)
    with pytest.raises(CalibrationError, match="found 3 reference lines"):
        fit_wavelengths(lines_at(SPREAD[:3]), ref, TRUE, degree=3)
    assert isinstance(CalibrationError("x"), ValueError)
