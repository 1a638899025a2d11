"""Pixel -> wavelength -> Raman shift, and the corrections applied to raw counts."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


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


# ------------------------------------------------------------------------------------ wavelength calibration
#: Raman bands of the usual standards, cm-1 (ASTM E1840 values as customarily quoted; check them
#: against the standard's certificate before relying on them).
RAMAN_STANDARDS = {
    "polystyrene": (620.9, 795.8, 1001.4, 1031.8, 1155.3, 1450.5, 1583.1, 1602.3, 2852.4, 2904.5, 3054.3),
    "cyclohexane": (384.1, 426.3, 801.3, 1028.3, 1157.6, 1266.4, 1444.4, 2664.4, 2852.9, 2923.8, 2938.3),
}


@dataclass(frozen=True)
class CalibrationFit:
    """Result of fitting a pixel -> wavelength polynomial to reference lines.

    Attributes
    ----------
    coefficients : tuple of float
        c_0 ... c_degree, nm, pixel index from 0.
    pixels, reference_nm, residual_nm : ndarray
        Sub-pixel centroid, reference wavelength and fit residual of each line used.
    """

    coefficients: tuple
    pixels: np.ndarray
    reference_nm: np.ndarray
    residual_nm: np.ndarray

    @property
    def rms_nm(self) -> float:
        return float(np.sqrt(np.mean(self.residual_nm ** 2)))


def centroid(counts: np.ndarray, near: float, window: int) -> float | None:
    """Sub-pixel position of the peak within ``window`` pixels of ``near``: the highest pixel, refined
    by a Gaussian through it and its neighbours (a parabola in log counts above the local minimum)."""
    lo, hi = int(max(1, round(near) - window)), int(min(len(counts) - 2, round(near) + window))
    if hi - lo < 3:
        return None
    region = counts[lo - 1:hi + 2] - counts[lo - 1:hi + 2].min() + 1.0
    k = int(np.argmax(region[1:-1])) + 1
    if k in (1, len(region) - 2) and not (region[k] > region[k - 1] and region[k] > region[k + 1]):
        return None  # the maximum is on the window's edge: no peak here
    a, b, c = np.log(region[k - 1:k + 2])
    denom = a - 2 * b + c
    shift = 0.5 * (a - c) / denom if denom < 0 else 0.0
    return lo - 1 + k + float(np.clip(shift, -0.5, 0.5))


def _offset(counts: np.ndarray, reference_nm: np.ndarray, coeffs: np.ndarray, p_grid: np.ndarray,
            max_shift: int = 300) -> float:
    """Pixel offset that best aligns the spectrum with the lines placed by the starting polynomial
    (cross-correlation of the spectrum, less its running minimum, with a comb of narrow peaks)."""
    lam = np.polynomial.polynomial.polyval(p_grid, coeffs)
    order = np.argsort(lam)
    predicted = np.interp(reference_nm, lam[order], p_grid[order], left=np.nan, right=np.nan)
    predicted = predicted[np.isfinite(predicted)]
    comb = np.exp(-0.5 * ((p_grid[:, None] - predicted[None, :]) / 2.0) ** 2).sum(axis=1)
    width = 51
    pad = np.pad(counts, width // 2, mode="edge")
    floor = np.lib.stride_tricks.sliding_window_view(pad, width).min(axis=1)
    signal = counts - floor
    lags = np.arange(-max_shift, max_shift + 1)
    score = [np.dot(signal[max(0, k):len(signal) + min(0, k)], comb[max(0, -k):len(comb) - max(0, k)]) for k in lags]
    return float(lags[int(np.argmax(score))])


def fit_wavelengths(counts, reference_nm, guess, degree: int = 3, window: int = 8,
                    iterations: int = 3) -> CalibrationFit:
    """Fit lambda(p) to reference lines seen in ``counts``, starting from the polynomial ``guess``.

    Each line is looked for within ``window`` pixels of where the current polynomial puts it; the
    polynomial is refitted and the search repeated ``iterations`` times.

    Raises
    ------
    ValueError
        Fewer than ``degree + 2`` lines found (too few to fit and to check).
    """
    counts = np.asarray(counts, dtype=np.float64)
    reference_nm = np.sort(np.asarray(reference_nm, dtype=np.float64))
    coeffs = np.asarray(guess, dtype=np.float64)
    p_grid = np.arange(counts.size, dtype=np.float64)
    offset = _offset(counts, reference_nm, coeffs, p_grid)
    for _ in range(iterations):
        lam = np.polynomial.polynomial.polyval(p_grid, coeffs)
        inside = (reference_nm > lam.min()) & (reference_nm < lam.max())
        order = np.argsort(lam)
        found = [(centroid(counts, float(np.interp(r, lam[order], p_grid[order])) + offset, window), r)
                 for r in reference_nm[inside]]
        offset = 0.0
        found = [(p, r) for p, r in found if p is not None]
        if len(found) < degree + 2:
            raise ValueError(f"found {len(found)} reference lines in the spectrum; a degree-{degree} fit needs at "
                             f"least {degree + 2}: check the reference, the laser line and the starting polynomial")
        px, ref = np.array(found).T
        coeffs = np.polynomial.polynomial.polyfit(px, ref, degree)
        # Lines matched to the wrong band stand far above the rest: drop them and refit.
        residual = np.abs(ref - np.polynomial.polynomial.polyval(px, coeffs))
        keep = residual <= max(5 * np.median(residual), 0.05)
        if keep.sum() >= degree + 2 and not keep.all():
            px, ref = px[keep], ref[keep]
            coeffs = np.polynomial.polynomial.polyfit(px, ref, degree)
    residual = ref - np.polynomial.polynomial.polyval(px, coeffs)
    return CalibrationFit(tuple(float(c) for c in coeffs), px, ref, residual)
