"""Peaks by topographic prominence, identical to ``scipy.signal.find_peaks(y, prominence=p)``.

A peak is a local maximum (a flat top counts once, at its middle sample, as in SciPy). Its
prominence is its height minus the higher of its two bases; the base on each side is the lowest
sample between the peak and the nearest strictly higher sample on that side, or the end of the
spectrum. Peaks whose prominence is at least the threshold are kept.

Implementation: candidates are found with vectorised comparisons; every spectrum of the batch is
laid end to end as a sequence of items (a "wall" of infinite height at each row start, then the
row's candidates), with the minimum of the samples between consecutive items (the valleys) from one
``np.minimum.reduceat``. One left-to-right pass with a stack then yields both bases of every peak in
O(number of candidates): a peak's left base is fixed when it is pushed and its right base when a
strictly higher item pops it (ties defer to the equal peak that popped it).
"""
from __future__ import annotations

import numpy as np

_INF = float("inf")


def _candidates(Y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Local maxima of each row of ``Y`` (n, N), as (rows, cols) sorted by row then column."""
    n, N = Y.shape
    mid = Y[:, 1:-1]
    if not np.any(Y[:, 1:] == Y[:, :-1]):
        rows, cols = np.nonzero((mid > Y[:, :-2]) & (mid > Y[:, 2:]))
        return rows, cols + 1
    # Flat tops present: follow the sign of the slope, skipping flat stretches.
    slope = np.sign(np.diff(Y, axis=1)).ravel()
    moving = np.flatnonzero(slope)
    s = slope[moving]
    k = np.flatnonzero((s[:-1] > 0) & (s[1:] < 0))
    up, down = moving[k], moving[k + 1]
    rows = up // (N - 1)
    same = rows == down // (N - 1)
    rows, up, down = rows[same], up[same], down[same]
    cols = ((up - rows * (N - 1) + 1) + (down - rows * (N - 1))) // 2
    return rows, cols


def _bases(H: list, V: list) -> tuple[list, list]:
    """Left and right base of every item of the sequence ``H`` (walls are +inf).

    ``V[t]`` is the lowest sample between item ``t`` and item ``t + 1``.
    """
    T = len(H)
    left = [_INF] * T
    right = [_INF] * T
    ties = []
    st_h: list = []
    st_base: list = []
    st_idx: list = []
    cur = _INF
    for t in range(T):
        h = H[t]
        if t:
            cur = V[t - 1]
        while st_h and st_h[-1] <= h:
            hj = st_h.pop()
            bj = st_base.pop()
            j = st_idx.pop()
            right[j] = cur
            if hj == h:
                ties.append((j, t))
            if bj < cur:
                cur = bj
        left[t] = cur
        st_h.append(h)
        st_base.append(cur)
        st_idx.append(t)
    for j, t in reversed(ties):
        if right[t] < right[j]:
            right[j] = right[t]
    return left, right


def prominent_peaks(Y: np.ndarray, min_prominence: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Peaks of each row whose prominence is at least that row's threshold.

    Parameters
    ----------
    Y : ndarray, shape (n, N), N >= 3
        Finite intensities, one spectrum per row.
    min_prominence : ndarray, shape (n,)
        Threshold per row, in the units of ``Y``.

    Returns
    -------
    rows, cols : ndarray of int, shape (k,)
        Row and sample index of each kept peak, sorted by row then column.
    """
    n, N = Y.shape
    rows, cols = _candidates(Y)
    flat = Y.ravel()
    # Item sequence: wall of row 0, its candidates, wall of row 1, ..., final wall.
    m = rows.size
    item_pos = np.empty(n + 1 + m, dtype=np.intp)
    is_wall = np.zeros(n + 1 + m, dtype=bool)
    wall_at = np.arange(n + 1) + np.searchsorted(rows, np.arange(n + 1), side="left")
    is_wall[wall_at] = True
    item_pos[wall_at] = np.arange(n + 1) * N
    item_pos[~is_wall] = rows * N + cols
    valleys = np.minimum.reduceat(flat, item_pos[:-1])
    heights = np.full(item_pos.size, _INF)
    heights[~is_wall] = flat[rows * N + cols]
    left, right = _bases(heights.tolist(), valleys.tolist())
    peak = ~is_wall
    prominence = heights[peak] - np.maximum(np.array(left)[peak], np.array(right)[peak])
    keep = prominence >= min_prominence[rows]
    return rows[keep], cols[keep]
