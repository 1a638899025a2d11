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

from device.inference.peaks import prominent_peaks
from device.inference.spectrum import Axis
from device.inference.validation import check_matrix

FEATURE_NAMES = (
    "mean", "std", "norm", "sum_squares", "variance", "stability", "kurtosis", "skewness",
    "energy", "mad", "max", "min", "range", "iqr", "max_dev", "min_dev", "cv", "peak_count",
    "peak_spacing", "max_position", "grad_max", "grad_std",
)

#: Default peak threshold: prominence as a fraction of the spectrum's range (max - min).
DEFAULT_PROMINENCE = 0.05

#: Relative tolerance under which sigma (flat spectrum) or mu (zero mean) count as zero.
ZERO_RTOL = 1e-12

#: Rows processed together: large batches go in chunks that stay in the CPU cache.
CHUNK_ROWS = 256


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


def _rowdot(A: np.ndarray, B: np.ndarray) -> np.ndarray:
    """Row-wise dot products of two (n, N) arrays: shape (n,)."""
    return np.einsum("ij,ij->i", A, B)


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
    if Y.shape[0] > CHUNK_ROWS:
        return np.concatenate([_features(Y[i:i + CHUNK_ROWS], axis, prominence)
                               for i in range(0, Y.shape[0], CHUNK_ROWS)])
    return _features(Y, axis, prominence)


def _features(Y: np.ndarray, axis: Axis, prominence: float) -> np.ndarray:
    """:func:`engineered_features` of validated spectra ``Y`` (n, points)."""
    n, N = Y.shape
    h = axis.step
    total = np.add.reduce
    rowdot = _rowdot

    mu = total(Y, axis=1) / N
    C = Y - mu[:, None]
    C2 = C * C
    var = total(C2, axis=1) / N
    sigma = np.sqrt(var)
    ss = rowdot(Y, Y)
    hi = Y.max(axis=1)
    lo = Y.min(axis=1)
    rng = hi - lo
    scale = np.maximum(hi, -lo)  # max |y|

    # Statistics undefined for a flat spectrum (or a zero mean) are 0, never NaN or inf.
    flat = sigma <= ZERO_RTOL * scale
    inv_var = 1.0 / np.where(flat, 1.0, var)
    inv_var[flat] = 0.0
    zero_mean = np.abs(mu) <= ZERO_RTOL * scale
    cv = sigma / np.where(zero_mean, 1.0, mu)
    cv[zero_mean | flat] = 0.0

    # Derivative: (y[i+1] - y[i-1]) / 2h inside, one-sided differences at both ends.
    inner = Y[:, 2:] - Y[:, :-2]
    ends = (Y[:, [1, -1]] - Y[:, [0, -2]]) / h
    # The inner differences telescope: their sum is y[-1] + y[-2] - y[1] - y[0].
    grad_mean = ((Y[:, -1] + Y[:, -2] - Y[:, 1] - Y[:, 0]) / (2 * h) + total(ends, axis=1)) / N
    grad_sq = rowdot(inner, inner) / (4 * h * h) + rowdot(ends, ends)

    peaks = prominent_peaks(Y, prominence * rng)
    count = np.bincount(peaks // N, minlength=n)
    spacing = np.zeros(n)
    if peaks.size:
        last = np.cumsum(count) - 1  # index of each row's last peak (rows without peaks are masked)
        first = np.clip(last - count + 1, 0, peaks.size - 1)
        step = (peaks[np.clip(last, 0, None)] - peaks[first]) * h / np.maximum(count - 1, 1)
        spacing[count >= 2] = step[count >= 2]

    return np.array((
        mu, sigma, np.sqrt(ss), ss, var, inv_var, rowdot(C2, C2) / N * inv_var * inv_var,
        rowdot(C2, C) / N * inv_var / np.where(flat, 1.0, sigma), ss / N, total(np.abs(C), axis=1) / N,
        hi, lo, rng, _quartile_spread(Y), np.abs(hi - mu), np.abs(lo - mu), cv, count, spacing,
        axis.values[Y.argmax(axis=1)], np.maximum(inner.max(axis=1) / (2 * h), ends.max(axis=1)),
        np.sqrt(np.maximum(grad_sq / N - grad_mean * grad_mean, 0.0)),
    )).T
