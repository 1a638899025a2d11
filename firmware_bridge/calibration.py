"""Pixel -> wavelength -> Raman shift, and the corrections applied to raw counts."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from firmware_bridge.errors import CalibrationError


def wavelengths(coefficients, pixels: int, first_pixel: int = 0) -> np.ndarray:
    """lambda(p) = sum_i c_i p^i (nm) for p = first_pixel ... first_pixel + pixels - 1."""
    p = np.arange(first_pixel, first_pixel + pixels, dtype=np.float64)
    return np.polynomial.polynomial.polyval(p, np.asarray(coefficients, dtype=np.float64))


def raman_shift(wavelength_nm, laser_nm: float) -> np.ndarray:
    """Raman shift (cm-1, Stokes positive) of wavelengths (nm) for the measured laser line (nm)."""
    return 1e7 / laser_nm - 1e7 / np.asarray(wavelength_nm, dtype=np.float64)


def wavelength_of_shift(shift_cm1, laser_nm: float) -> np.ndarray:
    """Wavelength (nm) at which a Raman shift (cm-1) appears for a laser line (nm)."""
    return 1.0 / (1.0 / laser_nm - np.asarray(shift_cm1, dtype=np.float64) * 1e-7)


@dataclass(frozen=True)
class Measurement:
    """A calibrated spectrum from a spectrometer, ready to be resampled onto a model's axis.

    Attributes
    ----------
    shift : ndarray, shape (N,)
        Raman shift, cm-1, increasing.
    intensity : ndarray, shape (N,)
        Dark-subtracted (and, for inverted detectors, inverted) counts.
    raw : ndarray
        The counts as the device sent them.
    meta : dict
        Device identity and settings.
    """

    shift: np.ndarray
    intensity: np.ndarray
    raw: np.ndarray
    meta: dict = field(default_factory=dict)




@dataclass(frozen=True)
class CalibrationFit:
    """Result of fitting a pixel -> wavelength polynomial to reference lines.

    Attributes
    ----------
    coefficients : tuple of float
        c_0 ... c_degree, nm, pixel index from 0.
    pixels, reference_nm, residual_nm : ndarray, shape (n,)
        Sub-pixel centroid, reference wavelength (nm) and fit residual (nm) of each line used.
    in_range : int
        Reference lines inside the spectrum's wavelength range.
    unresolved_nm : tuple of float
        Reference lines left out because another line lies within the resolution (their peaks blend).
    line_width : float
        Median FWHM of the lines found, pixels.
    """

    coefficients: tuple
    pixels: np.ndarray
    reference_nm: np.ndarray
    residual_nm: np.ndarray
    in_range: int = 0
    unresolved_nm: tuple = ()
    line_width: float = float("nan")

    @property
    def rms_nm(self) -> float:
        """Root-mean-square residual of the fit, nm."""
        return float(np.sqrt(np.mean(self.residual_nm ** 2)))


#: Lines closer than this many line widths (FWHM) to another reference line blend into one peak and
#: pull each other's centroids: they are left out of the fit.
MIN_SEPARATION_FWHM = 1.5
#: Default acceptance limit on the rms residual, pixels (converted to nm at the lines' dispersion).
MAX_RMS_PIXELS = 0.25
#: A peak must stand this many times the noise above the lowest point near it on either side.
MIN_PROMINENCE_SIGMA = 6.0


def _floor(counts: np.ndarray, width: int = 51) -> np.ndarray:
    """Running minimum over ``width`` pixels (the baseline under narrow lines)."""
    pad = np.pad(counts, width // 2, mode="edge")
    return np.lib.stride_tricks.sliding_window_view(pad, width).min(axis=1)


def noise_level(counts: np.ndarray) -> float:
    """Robust rms noise of a spectrum, counts.

    The median absolute first difference, scaled to a standard deviation (lines, being smooth over
    several pixels, hardly move it).
    """
    d = np.diff(np.asarray(counts, dtype=np.float64))
    return 1.4826 * float(np.median(np.abs(d - np.median(d)))) / np.sqrt(2.0)


def _prominence(s: np.ndarray, i: int, reach: int) -> float:
    """How far peak ``i`` stands above its surroundings.

    That is, above the higher of the lowest points between it and the nearest higher point (or
    ``reach`` pixels) on each side.
    """
    floors = []
    for side in (s[max(0, i - reach):i][::-1], s[i + 1:i + 1 + reach]):
        higher = np.flatnonzero(side > s[i])
        floors.append(side[:higher[0] if higher.size else side.size].min(initial=s[i]))
    return float(s[i] - max(floors))


def find_peaks(counts: np.ndarray, reach: int = 8) -> tuple[np.ndarray, np.ndarray]:
    """Peaks of a spectrum: sub-pixel centres and widths.

    A peak is a local maximum with a prominence (:func:`_prominence`, within ``reach`` pixels) of
    :data:`MIN_PROMINENCE_SIGMA` times the noise. Its centre and width come from a Gaussian through the
    highest pixel and its neighbours (a parabola in log counts).

    Parameters
    ----------
    counts : ndarray, shape (N,)
        Signal counts (dark-subtracted, inverted detectors already inverted).
    reach : int
        Pixels looked at on each side for the prominence.

    Returns
    -------
    centres : ndarray, shape (k,)
        Pixel positions, increasing.
    fwhm : ndarray, shape (k,)
        Widths, pixels (NaN where the three pixels do not curve down).
    """
    s = np.asarray(counts, dtype=np.float64)
    s = s - _floor(s)
    threshold = MIN_PROMINENCE_SIGMA * max(noise_level(s), 1e-12)
    i = np.flatnonzero((s[1:-1] > s[:-2]) & (s[1:-1] >= s[2:])) + 1
    found = [_gaussian(s, k, reach) for k in i if _prominence(s, k, reach) >= threshold]
    return np.array([c for c, _ in found]), np.array([w for _, w in found])


def _gaussian(s: np.ndarray, i: int, reach: int) -> tuple[float, float]:
    """Centre and FWHM (pixels) of the peak at pixel ``i``.

    A parabola in log counts is fitted by least squares to the pixels falling from it to half its
    height (at least ``i`` and its two neighbours).
    """
    lo = hi = i
    while lo > max(0, i - reach) and s[i] / 2 < s[lo - 1] <= s[lo]:
        lo -= 1
    while hi < min(len(s) - 1, i + reach) and s[i] / 2 < s[hi + 1] <= s[hi]:
        hi += 1
    lo, hi = min(lo, i - 1), max(hi, i + 1)
    x = np.arange(lo, hi + 1) - i
    y = np.log(np.maximum(s[lo:hi + 1], s[i] * 1e-3))
    c2, c1, _ = np.polyfit(x, y, 2)
    if c2 >= 0:  # not curving down: no better than the highest pixel
        return float(i), float("nan")
    return i + float(np.clip(-c1 / (2 * c2), x[0], x[-1])), 2.3548 * float(np.sqrt(-1.0 / (2 * c2)))


def _offset(counts: np.ndarray, predicted: np.ndarray, max_shift: int = 300) -> float:
    """Pixel offset that best aligns the spectrum with lines predicted at pixels ``predicted``.

    The cross-correlation of the spectrum, less its running minimum, with a comb of narrow peaks,
    searched within ``max_shift`` pixels and a quarter of the spectrum.
    """
    p_grid = np.arange(counts.size, dtype=np.float64)
    comb = np.exp(-0.5 * ((p_grid[:, None] - predicted[None, :]) / 2.0) ** 2).sum(axis=1)
    signal = counts - _floor(counts)
    reach = min(max_shift, counts.size // 4)
    lags = np.arange(-reach, reach + 1)
    score = [np.dot(signal[max(0, k):len(signal) + min(0, k)], comb[max(0, -k):len(comb) - max(0, k)]) for k in lags]
    return float(lags[int(np.argmax(score))])


def _predict(coeffs: np.ndarray, reference_nm: np.ndarray, pixels: int) -> np.ndarray:
    """Pixel at which the polynomial puts each reference line (NaN outside the spectrum)."""
    p_grid = np.arange(pixels, dtype=np.float64)
    lam = np.polynomial.polynomial.polyval(p_grid, coeffs)
    order = np.argsort(lam)
    return np.interp(reference_nm, lam[order], p_grid[order], left=np.nan, right=np.nan)


def _match(centres: np.ndarray, predicted: np.ndarray, window: float) -> tuple[np.ndarray, np.ndarray]:
    """Index of the peak nearest each predicted line within ``window`` pixels, -1 for none.

    A predicted line at NaN is outside the spectrum. A peak nearest to two or more lines goes to none
    of them (one pixel never carries two lines), and those lines are flagged as sharing a peak.
    """
    distance = np.abs(predicted[:, None] - np.append(centres, np.inf)[None, :])
    distance[np.isnan(distance)] = np.inf
    nearest = distance.argmin(axis=1)
    match = np.where(distance[np.arange(predicted.size), nearest] <= window, nearest, -1)
    taken, count = np.unique(match[match >= 0], return_counts=True)
    shared = np.isin(match, taken[count > 1])
    return np.where(shared, -1, match), shared


def _crowded(predicted: np.ndarray, min_gap: float) -> np.ndarray:
    """True for each line with another line predicted within ``min_gap`` pixels (NaN: outside)."""
    inside = np.flatnonzero(np.isfinite(predicted))
    order = inside[np.argsort(predicted[inside])]
    close = np.diff(predicted[order]) < min_gap
    crowded = np.zeros(predicted.size, bool)
    crowded[order] = np.r_[False, close] | np.r_[close, False]
    return crowded


def _left_out(unresolved: int, width: float) -> str:
    """`` (N left out as unresolved ...)`` for a message, or nothing."""
    if not unresolved:
        return ""
    at = f" at a line width of {width:.1f} pixels" if np.isfinite(width) else ": lines sharing one peak"
    return f" ({unresolved} left out as unresolved{at})"


def _not_the_reference(message: str) -> CalibrationError:
    return CalibrationError(message + "; is the standard in the beam, the laser line right (--laser), and does "
                            "the starting polynomial put the lines within about 1 nm?")


def fit_wavelengths(counts, reference_nm, guess, degree: int = 3, window: int = 8, iterations: int = 3,
                    min_lines: int | None = None, max_rms_nm: float | None = None) -> CalibrationFit:
    """Fit lambda(p) to reference lines seen in ``counts``, starting from the polynomial ``guess``.

    The spectrum is first aligned with the lines where ``guess`` puts them (cross-correlation). Each
    line is then given the peak (:func:`find_peaks`) nearest to where the current polynomial puts it,
    within ``window`` pixels; a peak nearest to two lines goes to neither, and lines closer to another
    reference line than :data:`MIN_SEPARATION_FWHM` times the measured line width are left out
    (unresolved: their peaks blend). The polynomial is fitted, lines far off it are dropped, and the
    whole repeated ``iterations`` times. The fit is accepted only if it uses at least ``min_lines``
    lines and its rms residual is at most ``max_rms_nm``.

    Parameters
    ----------
    counts : array_like, shape (N,)
        Signal counts in pixel order (dark-subtracted; inverted detectors inverted).
    reference_nm : array_like, shape (m,)
        Reference line wavelengths, nm.
    guess : sequence of float
        Starting polynomial c_0, c_1, ... nm, pixel from 0.
    degree : int
    window : int
        Search half-width around each predicted line, pixels.
    iterations : int
    min_lines : int, optional
        Lines the fit must use (never fewer than ``degree + 2``; default ``degree + 3``, and at least
        half of the resolved reference lines in range).
    max_rms_nm : float, optional
        Largest accepted rms residual, nm (default :data:`MAX_RMS_PIXELS` at the lines' dispersion).

    Raises
    ------
    CalibrationError
        (a ``ValueError``) Too few reference lines found, or residuals too large: the spectrum does
        not show the reference.
    """
    P = np.polynomial.polynomial
    counts = np.asarray(counts, dtype=np.float64)
    reference_nm = np.sort(np.asarray(reference_nm, dtype=np.float64))
    coeffs = np.asarray(guess, dtype=np.float64)
    centres, widths = find_peaks(counts, window)
    predicted = _predict(coeffs, reference_nm, counts.size)
    offset = _offset(counts, predicted[np.isfinite(predicted)]) if np.isfinite(predicted).any() else 0.0
    unresolved = np.zeros(reference_nm.size, bool)
    width = float("nan")
    for _ in range(iterations):
        predicted = _predict(coeffs, reference_nm, counts.size) + offset
        offset = 0.0
        match, unresolved = _match(centres, predicted, window)
        found = widths[match[match >= 0]]
        if np.isfinite(found).any():
            width = float(np.median(found[np.isfinite(found)]))
            unresolved |= _crowded(predicted, MIN_SEPARATION_FWHM * width)
            match[unresolved] = -1
        used = match >= 0
        if used.sum() < degree + 2:
            raise _not_the_reference(f"found {int(used.sum())} reference lines in the spectrum"
                                     f"{_left_out(unresolved.sum(), width)}; a degree-{degree} fit needs at least "
                                     f"{degree + 2}")
        px, ref = centres[match[used]], reference_nm[used]
        coeffs = P.polyfit(px, ref, degree)
        # Lines matched to the wrong peak stand far above the rest: drop them and refit.
        residual_px = np.abs(ref - P.polyval(px, coeffs)) / np.abs(P.polyval(px, P.polyder(coeffs)))
        keep = residual_px <= max(5 * np.median(residual_px), 0.1)
        if keep.sum() >= degree + 2 and not keep.all():
            px, ref = px[keep], ref[keep]
            coeffs = P.polyfit(px, ref, degree)
    fit = CalibrationFit(tuple(float(c) for c in coeffs), px, ref, ref - P.polyval(px, coeffs),
                         int(np.isfinite(predicted).sum()), tuple(float(r) for r in reference_nm[unresolved]), width)
    resolved = fit.in_range - len(fit.unresolved_nm)
    needed = max(degree + 3, int(np.ceil(resolved / 2))) if min_lines is None else max(min_lines, degree + 2)
    if len(px) < needed:
        raise _not_the_reference(f"matched {len(px)} of the {fit.in_range} reference lines in range"
                                 f"{_left_out(len(fit.unresolved_nm), width)}; the fit needs at least {needed}")
    limit = max_rms_nm
    if limit is None:
        limit = MAX_RMS_PIXELS * float(np.median(np.abs(P.polyval(px, P.polyder(coeffs)))))
    if fit.rms_nm > limit:
        raise _not_the_reference(f"rms residual {fit.rms_nm:.4f} nm over {len(px)} lines exceeds {limit:.4f} nm"
                                 + (f" ({MAX_RMS_PIXELS:g} pixel)" if max_rms_nm is None else ""))
    return fit
