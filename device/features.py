"""The 22 engineered features of the compact-network method, vectorised over a batch.

All features are computed row-wise on spectra already resampled onto a model's uniform axis
(``y`` = intensities, ``N`` points, step ``h`` cm-1, ``mu`` = mean). The published method speaks of
"20 features" but defines the 22 below; all 22 are implemented.

=====  ==============  ===========================================================================
  #    name            definition
=====  ==============  ===========================================================================
  1    mean            mu = sum(y) / N
  2    std             sigma = sqrt(sum((y - mu)^2) / N)            (population, ddof = 0)
  3    norm            sqrt(sum(y^2))
  4    sum_squares     sum(y^2)
  5    variance        sigma^2
  6    stability       1 / sigma^2
  7    kurtosis        sum((y - mu)^4) / (N sigma^4)                (Pearson: 3 is NOT subtracted)
  8    skewness        sum((y - mu)^3) / (N sigma^3)
  9    energy          sum(y^2) / N
 10    mad             sum(|y - mu|) / N                            (mean absolute deviation)
 11    max             max(y)
 12    min             min(y)
 13    range           max - min
 14    iqr             Q3 - Q1, quartiles by linear interpolation (NumPy's default method)
 15    max_dev         |max - mu|
 16    min_dev         |min - mu|
 17    cv              sigma / mu
 18    peak_count      number of peaks with prominence >= ``prominence`` x (max - min)
 19    peak_spacing    mean distance between consecutive peaks, cm-1
 20    max_position    Raman shift of the (first) maximum, cm-1
 21    grad_max        max of dy/dx, cm-1 units, central differences inside, one-sided at the ends
 22    grad_std        population standard deviation of that derivative
=====  ==============  ===========================================================================

Peaks are local maxima whose topographic prominence is at least a fraction (default 0.05) of the
spectrum's own range, exactly as ``scipy.signal.find_peaks(y, prominence=0.05 * (max - min))``:
a relative threshold keeps the count independent of gain and offset.

Edge cases (defined here, as the method leaves them open):

* flat spectrum (sigma <= 1e-12 x max|y|, including all zeros): stability, kurtosis, skewness and cv
  are 0, since the statistics are undefined; variance and std are reported as computed (~0).
* zero mean (|mu| <= 1e-12 x max|y|): cv is 0.
* fewer than two peaks: peak_spacing is 0.
"""
from __future__ import annotations

import numpy as np

from ._peaks import prominent_peaks
from .spectrum import Axis
from .validation import check_matrix

FEATURE_NAMES = (
    "mean", "std", "norm", "sum_squares", "variance", "stability", "kurtosis", "skewness",
    "energy", "mad", "max", "min", "range", "iqr", "max_dev", "min_dev", "cv", "peak_count",
    "peak_spacing", "max_position", "grad_max", "grad_std",
)

#: Default peak threshold: prominence as a fraction of the spectrum's range (max - min).
DEFAULT_PROMINENCE = 0.05

#: Relative tolerance under which sigma (flat spectrum) or mu (zero mean) count as zero.
ZERO_RTOL = 1e-12


def _quartile_spread(Y: np.ndarray) -> np.ndarray:
    """Q3 - Q1 of each row, linear interpolation between order statistics (NumPy's 'linear').

    One partition places the lower order statistic of each quartile; the next one up is the
    minimum of what lies above it.
    """
    N = Y.shape[1]
    q1, q3 = (N - 1) * 0.25, (N - 1) * 0.75
    i1, i3 = int(q1), int(q3)
    part = np.partition(Y, (i1, i3), axis=1)
    lo, hi = part[:, i1], part[:, i3]
    if q1 > i1:
        lo = lo + (part[:, i1 + 1:i3 + 1].min(axis=1) - lo) * (q1 - i1)
    if q3 > i3:
        hi = hi + (part[:, i3 + 1:].min(axis=1) - hi) * (q3 - i3)
    return hi - lo


def engineered_features(Y, axis: Axis, prominence: float = DEFAULT_PROMINENCE) -> np.ndarray:
    """Compute the 22 features of every spectrum in a batch.

    Parameters
    ----------
    Y : array_like, shape (n, points) or (points,)
        Intensities on ``axis``.
    axis : Axis
        The uniform axis the spectra are on (positions and the derivative use it).
    prominence : float
        Peak threshold as a fraction of each spectrum's range.

    Returns
    -------
    ndarray of float64, shape (n, 22)
        Columns in the order of :data:`FEATURE_NAMES`.
    """
    Y = check_matrix(Y, axis.points)
    n, N = Y.shape
    h = axis.step
    total = np.add.reduce

    mu = total(Y, axis=1) / N
    C = Y - mu[:, None]
    C2 = C * C
    var = total(C2, axis=1) / N
    sigma = np.sqrt(var)
    m3 = total(C2 * C, axis=1) / N
    m4 = total(C2 * C2, axis=1) / N
    ss = total(Y * Y, axis=1)
    mad = total(np.abs(C), axis=1) / N
    hi = Y.max(axis=1)
    lo = Y.min(axis=1)
    scale = np.maximum(np.abs(hi), np.abs(lo))

    flat = sigma <= ZERO_RTOL * scale
    s = np.where(flat, 1.0, sigma)
    stability = np.where(flat, 0.0, 1.0 / (s * s))
    kurtosis = np.where(flat, 0.0, m4 / (s * s) ** 2)
    skewness = np.where(flat, 0.0, m3 / (s * s * s))
    zero_mean = np.abs(mu) <= ZERO_RTOL * scale
    cv = np.where(zero_mean, 0.0, sigma / np.where(zero_mean, 1.0, mu))

    # Derivative: (y[i+1] - y[i-1]) / 2h inside, one-sided differences at both ends.
    inner = Y[:, 2:] - Y[:, :-2]
    first = (Y[:, 1] - Y[:, 0]) / h
    last = (Y[:, -1] - Y[:, -2]) / h
    grad_max = np.maximum(inner.max(axis=1) / (2 * h), np.maximum(first, last))
    # Sum of the inner central differences telescopes to (y[-1] + y[-2] - y[1] - y[0]).
    grad_mean = ((Y[:, -1] + Y[:, -2] - Y[:, 1] - Y[:, 0]) / (2 * h) + first + last) / N
    grad_sq = total(inner * inner, axis=1) / (4 * h * h) + first * first + last * last
    grad_std = np.sqrt(np.maximum(grad_sq / N - grad_mean * grad_mean, 0.0))

    rng = hi - lo
    peaks = prominent_peaks(Y, prominence * rng)
    rows = peaks // N
    count = np.bincount(rows, minlength=n)
    positions = axis.values
    end = np.cumsum(count)
    several = count >= 2
    spacing = np.zeros(n)
    if several.any():
        first_peak = positions[peaks[(end - count)[several]] % N]
        last_peak = positions[peaks[end[several] - 1] % N]
        spacing[several] = (last_peak - first_peak) / (count[several] - 1)

    columns = (mu, sigma, np.sqrt(ss), ss, var, stability, kurtosis, skewness, ss / N, mad, hi, lo, rng,
               _quartile_spread(Y), np.abs(hi - mu), np.abs(lo - mu), cv, count, spacing,
               positions[Y.argmax(axis=1)], grad_max, grad_std)
    out = np.empty((n, len(FEATURE_NAMES)))
    for k, column in enumerate(columns):
        out[:, k] = column
    return out
