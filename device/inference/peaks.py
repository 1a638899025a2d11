"""Peaks by topographic prominence, identical to ``scipy.signal.find_peaks(y, prominence=p)``.

A peak is a local maximum (a flat top counts once, at its middle sample, as in SciPy). Its
prominence is its height minus the higher of its two bases; the base on each side is the lowest
sample between the peak and the nearest strictly higher sample on that side, or the end of the
spectrum. Peaks whose prominence is at least the threshold are kept.

Implementation: candidates are found with vectorised comparisons; every spectrum of the batch is
laid end to end as a sequence of items (a "wall" of infinite height at each row start, then the
row's candidates, and a last wall), with the minimum of the samples between consecutive items (the
valleys) from one ``np.minimum.reduceat``. Two vectorised rounds drop the candidates that provably
fall short (see :func:`_prune`); one left-to-right pass with a stack then settles the rest in
O(candidates left): a peak's left base is known when it is pushed, its right base when a strictly
higher item pops it (a peak popped by an equal one takes that one's right base too).
"""
from __future__ import annotations

import numpy as np

_INF = float("inf")

#: Vectorised pruning rounds before the exact pass; on real spectra two rounds leave about a
#: quarter of the local maxima, little more than the prominent peaks themselves.
PRUNE_ROUNDS = 2


def _candidates(Y: np.ndarray) -> np.ndarray:
    """Flat indices (into ``Y.ravel()``) of the local maxima of each row of ``Y`` (n, N), sorted."""
    n, N = Y.shape
    d = Y[:, 1:] - Y[:, :-1]
    if np.count_nonzero(d) == d.size:
        rising = d > 0
        k = np.flatnonzero(rising[:, :-1] > rising[:, 1:])  # up, then down
        return k + 2 * (k // (N - 2)) + 1
    # Flat tops present: follow the sign of the slope, skipping flat stretches.
    slope = np.sign(d).ravel()
    moving = np.flatnonzero(slope)
    s = slope[moving]
    k = np.flatnonzero((s[:-1] > 0) & (s[1:] < 0))
    up, down = moving[k], moving[k + 1]  # indices into the (n, N - 1) slopes
    rows = up // (N - 1)
    same = rows == down // (N - 1)
    rows, up, down = rows[same], up[same], down[same]
    return rows * N + (up - rows * (N - 1) + 1 + down - rows * (N - 1)) // 2


def _prune(H: np.ndarray, V: np.ndarray, thr: np.ndarray, index: np.ndarray):
    """Drop the peaks that provably fall short, keeping every other peak's verdict unchanged.

    A peak whose neighbour on one side is strictly higher (a wall counts as higher) across a valley
    above ``height - threshold`` has its base on that side at that valley, so its prominence is
    below the threshold. Removing it and merging its two valleys into their minimum cannot change
    whether any other peak reaches its threshold: a lower peak whose range ended at it now also spans
    that valley, which lies above its own ``height - threshold`` too. The condition survives the
    removal of other such peaks, so all of them go at once.

    Parameters
    ----------
    H : ndarray, shape (T,)
        Item heights, +inf for walls; the first and last items are walls.
    V : ndarray, shape (T - 1,)
        Lowest sample between consecutive items.
    thr : ndarray, shape (T,)
        Threshold of each item's row.
    index : ndarray, shape (T,)
        Original position of each item in the sequence.

    Returns
    -------
    H, V, thr, index
        The same four arrays for the items left.
    """
    h = H[1:-1]
    low = h - thr[1:-1]
    dead = ((H[2:] > h) & (V[1:] > low)) | ((H[:-2] > h) & (V[:-1] > low))
    alive = np.flatnonzero(np.concatenate(([True], ~dead, [True])))
    return H[alive], np.minimum.reduceat(V, alive[:-1]), thr[alive], index[alive]


def _settle(H: list, V: list, thr: list) -> list:
    """Indices of the items of ``H`` whose prominence reaches their threshold ``thr``.

    ``H`` starts and ends with a wall (+inf) and has one between rows; ``V[t]`` is the lowest
    sample between items ``t`` and ``t + 1``.
    """
    T = len(H)
    right = [_INF] * T
    base = [_INF] * T
    kept = []
    ties = []  # (peak, equal peak that popped it, lowest valley between them, its left base)
    stack = [0]  # a wall: no finite height pops it
    for t in range(1, T):
        h = H[t]
        cur = V[t - 1]
        if h == _INF:  # a wall: it settles every peak of the row and starts the next
            for j in reversed(stack[1:]):
                right[j] = cur
                bj = base[j]
                if H[j] - (bj if bj > cur else cur) >= thr[j]:
                    kept.append(j)
                if bj < cur:
                    cur = bj
            stack = [t]
            continue
        j = stack[-1]
        hj = H[j]
        while hj <= h:
            stack.pop()
            bj = base[j]
            if hj == h:
                ties.append((j, t, cur, bj))
            else:
                right[j] = cur
                if hj - (bj if bj > cur else cur) >= thr[j]:
                    kept.append(j)
            if bj < cur:
                cur = bj
            j = stack[-1]
            hj = H[j]
        base[t] = cur
        stack.append(t)
    for j, t, cur, bj in reversed(ties):
        rj = right[t] if right[t] < cur else cur
        right[j] = rj
        if H[j] - (bj if bj > rj else rj) >= thr[j]:
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
    # Item sequence: wall of row 0, its candidates, wall of row 1, ..., final wall.
    wall_seq = np.arange(n + 1) + np.searchsorted(peaks, np.arange(n + 1) * N)
    is_wall = np.zeros(n + 1 + peaks.size, dtype=bool)
    is_wall[wall_seq] = True
    pos = np.empty(is_wall.size, dtype=np.intp)
    pos[wall_seq] = np.arange(n + 1) * N
    pos[~is_wall] = peaks
    flat = Y.ravel()
    V = np.minimum.reduceat(flat, pos[:-1])
    H = np.full(is_wall.size, _INF)
    H[~is_wall] = flat[peaks]
    thr = np.append(np.asarray(min_prominence, np.float64), _INF)[np.cumsum(is_wall) - 1]
    index = np.arange(is_wall.size)
    for _ in range(PRUNE_ROUNDS):
        H, V, thr, index = _prune(H, V, thr, index)
    kept = _settle(H.tolist(), V.tolist(), thr.tolist())
    return np.sort(pos[index[kept]])
