"""Peaks by topographic prominence, identical to ``scipy.signal.find_peaks(y, prominence=p)``.

A peak is a local maximum (a flat top counts once, at its middle sample, as in SciPy). Its
prominence is its height minus the higher of its two bases; the base on each side is the lowest
sample between the peak and the nearest strictly higher sample on that side, or the end of the
spectrum. Peaks whose prominence is at least the threshold are kept.

Implementation: candidates are found with vectorised comparisons; every spectrum of the batch is
laid end to end as a sequence of items (a "wall" of infinite height at each row start, then the
row's candidates, and a last wall), with the minimum of the samples between consecutive items (the
valleys) from one ``np.minimum.reduceat``. One left-to-right pass with a stack then settles every
peak in O(number of candidates): its left base is known when it is pushed, its right base when a
strictly higher item pops it (a peak popped by an equal one takes that one's right base too).
"""
from __future__ import annotations

import numpy as np

_INF = float("inf")


def _candidates(Y: np.ndarray) -> np.ndarray:
    """Flat indices (into ``Y.ravel()``) of the local maxima of each row of ``Y`` (n, N), sorted."""
    n, N = Y.shape
    mid = Y[:, 1:-1]
    if not np.any(Y[:, 1:] == Y[:, :-1]):
        k = np.flatnonzero((mid > Y[:, :-2]) & (mid > Y[:, 2:]))
        return k + 2 * (k // (N - 2)) + 1
    # Flat tops present: follow the sign of the slope, skipping flat stretches.
    slope = np.sign(np.diff(Y, axis=1)).ravel()
    moving = np.flatnonzero(slope)
    s = slope[moving]
    k = np.flatnonzero((s[:-1] > 0) & (s[1:] < 0))
    up, down = moving[k], moving[k + 1]  # indices into the (n, N - 1) slopes
    rows = up // (N - 1)
    same = rows == down // (N - 1)
    rows, up, down = rows[same], up[same], down[same]
    return rows * N + (up - rows * (N - 1) + 1 + down - rows * (N - 1)) // 2


def _settle(H: list, V: list, thresholds: list) -> list:
    """Indices of the items of ``H`` whose prominence reaches their row's threshold.

    ``H`` starts and ends with a wall (+inf) and has one between rows; ``V[t]`` is the lowest
    sample between items ``t`` and ``t + 1``; ``thresholds[r]`` belongs to row ``r``.
    """
    kept = []
    ties = []  # (peak, equal peak that popped it, lowest valley between, left base, threshold)
    right = {}
    st_h, st_base, st_idx = [], [], []
    row = 0
    thr = thresholds[0]
    for t in range(1, len(H)):
        h = H[t]
        cur = V[t - 1]
        while st_h and st_h[-1] <= h:
            hj = st_h.pop()
            bj = st_base.pop()
            j = st_idx.pop()
            if hj == h:
                ties.append((j, t, cur, bj, thr))
            else:
                right[j] = cur
                if hj - (bj if bj > cur else cur) >= thr:
                    kept.append(j)
            if bj < cur:
                cur = bj
        if h == _INF:  # wall: the next row starts
            row += 1
            if row < len(thresholds):
                thr = thresholds[row]
            continue
        st_h.append(h)
        st_base.append(cur)
        st_idx.append(t)
    for j, t, cur, bj, thr in reversed(ties):
        rj = right[t] if right[t] < cur else cur
        right[j] = rj
        if H[j] - (bj if bj > rj else rj) >= thr:
            kept.append(j)
    return kept


def prominent_peaks(Y: np.ndarray, min_prominence: np.ndarray) -> np.ndarray:
    """Peaks of each row whose prominence is at least that row's threshold.

    Parameters
    ----------
    Y : ndarray, shape (n, N), N >= 3
        Finite intensities, one spectrum per row.
    min_prominence : ndarray, shape (n,)
        Threshold per row, in the units of ``Y``.

    Returns
    -------
    ndarray of int, shape (k,)
        Flat index (``row * N + column``) of each kept peak, sorted.
    """
    n, N = Y.shape
    peaks = _candidates(Y)
    walls = np.arange(n + 1) * N
    # Sequence positions: wall r sits before the candidates of row r.
    order = np.concatenate((np.arange(n + 1) + np.searchsorted(peaks, walls), np.arange(peaks.size)
                            + np.searchsorted(walls, peaks, side="right")))
    pos = np.empty(n + 1 + peaks.size, dtype=np.intp)
    pos[order] = np.concatenate((walls, peaks))
    flat = np.append(Y.ravel(), _INF)  # walls read the +inf appended at index n * N
    is_wall = np.zeros(pos.size, dtype=bool)
    is_wall[order[: n + 1]] = True
    heights = flat[np.where(is_wall, n * N, pos)]
    valleys = np.minimum.reduceat(flat[:-1], pos[:-1])
    kept = _settle(heights.tolist(), valleys.tolist(), np.asarray(min_prominence, np.float64).tolist())
    return np.sort(pos[kept])
