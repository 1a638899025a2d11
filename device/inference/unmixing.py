"""Mixture analysis: a spectrum as a non-negative sum of library components plus a smooth background.

Physically, the Raman spectrum of a mixture is, on a linear intensity scale, the sum of its components'
spectra, each scaled by its share, plus a smooth background (fluorescence, the filter edge) of either sign
relative to the references. The model fits exactly that, in a linear representation of the spectra:

1. **Representation** ``T``: optionally a Savitzky-Golay first derivative (quadratic, ``derivative_window``
   points; sharp bands stay, broad structure shrinks), then the orthogonal projection that removes the
   Legendre polynomials of degree <= ``background_order`` over the axis (:func:`legendre_background`). ``T``
   is linear, so ``T(a A + b B + background) = a T(A) + b T(B)`` for any background ``T`` removes.
2. **Unmixing**: NNLS (:func:`nnls`, Lawson-Hanson) of ``T(y)`` on the unit-norm ``T(r_e)`` of the candidate
   references ``r_e`` (:func:`component_reference`).
3. **Verdict**: the best single component is the reference closest to ``T(y)`` (largest cosine: the
   one-column NNLS); the two-component fit refits, by NNLS, the two components of the unmixing with the
   largest contributions (below). The statistic is the share of the single fit's residual energy that the
   second component removes::

       statistic = 1 - E2 / E1,   E1, E2 = |T(y) - fit|^2 of the single and the two-component fit,

   in [0, 1], scale-free (0 when the unmixing uses one component). The spectrum is a mixture of the two
   when the statistic exceeds ``threshold`` (and both keep a positive share), which the trainer calibrates
   (:func:`trainer.evaluation.mixtures.calibrate_mixture`) on held-out single-class spectra so that about a
   stated share of them (1 %) are called mixtures.

Fractions are shares of band height: entry e's fitted contribution to the spectrum, ``c_e r_e``, has band
height ``c_e h_e`` (``h_e`` that of ``r_e``, :func:`device.inference.snr.band_height`), and its fraction is
``c_e h_e / sum(c h)``. The evidence arrays are on the spectrum's own scale: the fitted components
``sum(c r)``, the least-squares polynomial of the rest, and what remains. NumPy only.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from device.inference.preprocess import SavitzkyGolay
from device.inference.snr import band_height

#: Default degree of the Legendre polynomials removed as background (6 functions over the axis).
BACKGROUND_ORDER = 5
#: Highest background degree a model may hold.
MAX_BACKGROUND_ORDER = 30
#: Polynomial order of the Savitzky-Golay derivative of the representation.
DERIVATIVE_POLYORDER = 2
#: Residual energy of a single fit, relative to the spectrum's, at or below which the fit is exact (the
#: rest is rounding) and the statistic is 0.
EXACT = 1e-10
#: Names of the stored arrays, after the prefix (``mixture.`` by default).
ARRAY_NAMES = ("names", "references", "background_order", "derivative_window", "threshold",
               "false_mixture_rate", "mixture_detection_rate", "calibration_spectra")


def nnls(A, b, max_iter: int | None = None) -> tuple[np.ndarray, float]:
    """Non-negative least squares: ``argmin |A x - b|`` over ``x >= 0`` (Lawson-Hanson active set).

    Same answer as ``scipy.optimize.nnls``. The active-set iterations run on the normal equations
    (``A'A``, ``A'b``); the residual is computed from ``A`` and ``b``. Inputs are not modified.

    Parameters
    ----------
    A : array_like, shape (m, n)
        Columns to combine, finite.
    b : array_like, shape (m,)
        Target, finite.
    max_iter : int, optional
        Most least-squares solves of the passive set (default ``3 n``, at least 10).

    Returns
    -------
    x : ndarray of float64, shape (n,)
        The solution, every entry >= 0 (exactly 0 for the columns not used).
    rnorm : float
        ``|A x - b|``, in the units of ``b``.

    Raises
    ------
    ValueError
        For arrays of the wrong shape or with a non-finite value.
    RuntimeError
        If the iterations run out (not seen on any test problem; the bound keeps a device from hanging).
    """
    A = _finite(A, "A", 2)
    b = _finite(b, "b", 1)
    if b.shape[0] != A.shape[0]:
        raise ValueError(f"nnls: b has {b.shape[0]} rows but A has {A.shape[0]}; they must match")
    n = A.shape[1]
    x = _active_set(A.T @ A, A.T @ b, float(np.linalg.norm(b)), max(3 * n, 10) if max_iter is None else max_iter)
    return x, float(np.linalg.norm(A @ x - b))


def _active_set(G: np.ndarray, c: np.ndarray, scale: float, max_iter: int) -> np.ndarray:
    """Lawson-Hanson on the normal equations ``G x = c`` (G = A'A, c = A'b, ``scale`` = |b|): x (n,) >= 0."""
    n = c.size
    x = np.zeros(n)
    if n == 0:
        return x
    tol = 10.0 * n * np.finfo(float).eps * np.sqrt(max(float(np.max(np.diag(G))), 0.0)) * scale
    passive = np.zeros(n, dtype=bool)
    blocked = np.zeros(n, dtype=bool)  # entered and fell out at once, x unchanged: not offered until x moves
    solves = 0
    w = c - G @ x
    while True:
        free = ~passive & ~blocked & (w > tol)
        if not free.any():
            return x
        j = int(np.argmax(np.where(free, w, -np.inf)))
        passive[j] = True
        entering = True
        while True:
            solves += 1
            if solves > max_iter:
                raise RuntimeError(f"nnls did not converge in {max_iter} least-squares solves")
            idx = np.flatnonzero(passive)
            s = np.zeros(n)
            s[idx] = _solve(G[idx][:, idx], c[idx])
            if s[idx].min() > 0:
                x = s
                blocked[:] = False
                break
            if entering and s[j] <= 0:  # rounding: the column cannot enter at this x
                passive[j] = False
                blocked[j] = True
                break
            entering = False
            neg = idx[s[idx] <= 0]
            ratio = x[neg] / (x[neg] - s[neg])
            x = x + ratio.min() * (s - x)
            x[neg[np.argmin(ratio)]] = 0.0
            passive &= x > 0
            x[~passive] = 0.0
            blocked[:] = False
        w = c - G @ x


def _solve(G: np.ndarray, c: np.ndarray) -> np.ndarray:
    """``G s = c`` for the passive set; least squares (minimum norm) when ``G`` is singular."""
    if G.shape[0] == 1:
        return c / G[0] if G[0, 0] > 0 else np.zeros(1)
    try:
        s = np.linalg.solve(G, c)
    except np.linalg.LinAlgError:
        s = None
    return s if s is not None and np.isfinite(s).all() else np.linalg.lstsq(G, c, rcond=None)[0]


def legendre_background(points: int, order: int) -> np.ndarray:
    """Orthonormal basis of the polynomials of degree <= ``order`` over an axis of ``points`` points.

    Returns
    -------
    ndarray of float64, shape (points, order + 1)
        Orthonormal columns spanning the Legendre polynomials P_0 ... P_order on the points mapped to [-1, 1]
        (uniform, so shift or index give the same basis).
    """
    t = np.linspace(-1.0, 1.0, points)
    return np.linalg.qr(np.polynomial.legendre.legvander(t, order))[0]


def component_reference(Y, order: int = BACKGROUND_ORDER) -> np.ndarray:
    """The unmixing reference of one library entry from its spectra.

    Each spectrum minus its least-squares polynomial background (degree <= ``order``), scaled to unit norm;
    the mean of those, scaled to unit norm. Every spectrum weighs the same whatever its intensity.

    Parameters
    ----------
    Y : array_like, shape (n, P) or (P,)
        The entry's spectra on the common axis, linear intensity (counts or any units), finite.
    order : int
        Background degree; the :class:`MixtureModel` holding the reference should use the same.

    Returns
    -------
    ndarray of float64, shape (P,)
        Unit norm, no polynomial component of degree <= ``order``.

    Raises
    ------
    ValueError
        For non-finite values, fewer than ``order + 2`` points, a spectrum that is only background, or
        spectra that cancel out.
    """
    Y = _finite(np.atleast_2d(Y), "Y", 2)
    _check_order(order, Y.shape[1])
    B = legendre_background(Y.shape[1], order)
    Z = Y - (Y @ B) @ B.T
    norms = np.linalg.norm(Z, axis=1)
    only = norms <= 1e-12 * np.linalg.norm(Y, axis=1)
    if np.any(only):
        raise ValueError(f"spectrum {int(np.argmax(only))} of the entry is a polynomial of degree <= {order} "
                         "(nothing but background): it cannot serve as a reference")
    mean = (Z / norms[:, None]).mean(axis=0)
    size = np.linalg.norm(mean)
    if size <= 1e-12:
        raise ValueError("the entry's spectra cancel out (their background-free shapes are opposite): "
                         "check their signs")
    return mean / size


@dataclass(frozen=True, eq=False)
class Unmixing:
    """The unmixing of one spectrum (see the module docstring).

    Attributes
    ----------
    components : tuple of (str, float)
        The reported fit: the two components when :attr:`is_mixture`, else the best single one; each with
        its fraction of the fitted band height, summing to 1, largest first. Empty when no candidate
        correlates positively with the spectrum.
    best : str
        Best single component.
    best_residual : float
        Residual norm of its fit over the norm of the background-free spectrum (in the representation), in
        [0, 1].
    pair : tuple of str
        The two components of the two-component fit, larger first; empty when the unmixing uses fewer.
    pair_residual : float
        Relative residual norm of the two-component fit (``best_residual`` when there is none).
    statistic : float
        ``1 - (pair_residual / best_residual)^2``, in [0, 1].
    threshold : float
        The model's decision threshold on the statistic (inf: uncalibrated, never a mixture).
    is_mixture : bool
        ``statistic > threshold``.
    fitted : ndarray, shape (P,)
        Sum of the reported components, in the units of the spectrum.
    background : ndarray, shape (P,)
        Least-squares polynomial of the rest (degree ``background_order``, one more with the derivative).
    residual : ndarray, shape (P,)
        Spectrum minus ``fitted`` minus ``background``.
    contributions : ndarray, shape (len(components), P)
        Each reported component's part of ``fitted``, in the order of :attr:`components`.
    """

    components: tuple
    best: str
    best_residual: float
    pair: tuple
    pair_residual: float
    statistic: float
    threshold: float
    is_mixture: bool
    fitted: np.ndarray
    background: np.ndarray
    residual: np.ndarray
    contributions: np.ndarray


@dataclass(frozen=True, eq=False)
class MixtureModel:
    """References of the library entries and the calibrated mixture verdict.

    Attributes
    ----------
    names : tuple of str, length E
        Entry names, unique.
    references : ndarray, shape (E, P)
        One reference per entry on the axis (:func:`component_reference`), read-only.
    background_order : int
        Degree of the polynomials the representation removes.
    derivative_window : int
        Points of the Savitzky-Golay first derivative of the representation; 0 for none.
    threshold : float
        A statistic above it is a mixture; in [0, 1], or inf for a model never calibrated.
    false_mixture_rate : float
        Share of cross-validated held-out single-class spectra above ``threshold`` (NaN: not measured).
    mixture_detection_rate : float
        Share of cross-validated synthetic two-class mixtures above it (NaN: not measured).
    calibration_spectra : int
        Single-class spectra the threshold was set on (0: none).

    Notes
    -----
    :meth:`unmix` with ``k`` candidates costs about ``P (w + 4 (order + 1)) + k P + k^2 P`` multiply-adds
    (``w`` the derivative window; the spectrum's representation, the correlations, the Gram matrix) plus an
    NNLS of ``k`` columns: 0.7-0.8 ms of NumPy on a workstation core for ``k = 10``, ``P = 1499`` (measured,
    with and without the derivative). The Gram matrix grows as k^2 (10^4 entries: 10^11 multiply-adds and
    800 MB), so a large library unmixes among its top search hits, e.g. 10, not among all its entries.
    ``T(r_e)`` of each entry is computed the first time it is a candidate (``P (w + 4 (order + 1))``) and
    kept: 8 P bytes per entry used, at most ``E P`` float64.
    """

    names: tuple
    references: np.ndarray
    background_order: int
    derivative_window: int
    threshold: float
    false_mixture_rate: float
    mixture_detection_rate: float
    calibration_spectra: int

    def __post_init__(self):
        names = tuple(self.names)
        if not names or not all(isinstance(n, str) and n for n in names):
            raise ValueError("mixture model: names must be one non-empty string per entry")
        names = tuple(str(n) for n in names)
        if len(set(names)) != len(names):
            twice = next(n for n in names if names.count(n) > 1)
            raise ValueError(f"mixture model: entry name {twice!r} appears more than once")
        R = _finite(self.references, "references", 2).copy()
        if R.shape[0] != len(names):
            raise ValueError(f"mixture model: {R.shape[0]} references for {len(names)} names")
        order, window = _whole(self.background_order, "background_order"), _whole(self.derivative_window,
                                                                                  "derivative_window")
        _check_order(order, R.shape[1])
        derivative = None
        if window:
            if window > R.shape[1]:
                raise ValueError(f"mixture model: derivative window {window} is longer than the "
                                 f"{R.shape[1]}-point axis")
            try:
                derivative = SavitzkyGolay.design(window, DERIVATIVE_POLYORDER, 1, 1.0)
            except ValueError as exc:
                raise ValueError(f"mixture model: derivative window: {exc}") from None
        heights = band_height(R)
        if np.any(heights <= 0):
            raise ValueError(f"mixture model: reference {int(np.argmin(heights))} ({names[int(np.argmin(heights))]}) "
                             "has no band (its maximum is not above its median)")
        threshold = float(self.threshold)
        if not (0.0 <= threshold <= 1.0 or threshold == np.inf):
            raise ValueError(f"mixture model: threshold must be in [0, 1] (or inf, uncalibrated); got {threshold}")
        for name in ("false_mixture_rate", "mixture_detection_rate"):
            value = float(getattr(self, name))
            if not (0.0 <= value <= 1.0 or np.isnan(value)):
                raise ValueError(f"mixture model: {name} must be a share in [0, 1] (or NaN); got {value}")
            object.__setattr__(self, name, value)
        spectra = _whole(self.calibration_spectra, "calibration_spectra")
        R.flags.writeable = False
        for name, value in (("names", names), ("references", R), ("background_order", order),
                            ("derivative_window", window), ("threshold", threshold),
                            ("calibration_spectra", spectra), ("_derivative", derivative), ("_heights", heights),
                            ("_cache", {}),
                            ("_basis", legendre_background(R.shape[1], order)),
                            ("_display", legendre_background(R.shape[1], order + (1 if window else 0)))):
            object.__setattr__(self, name, value)

    @property
    def points(self) -> int:
        """Points of the axis the references are on."""
        return self.references.shape[1]

    def representation(self, Y) -> np.ndarray:
        """``T(Y)`` (module docstring) of spectra ``Y`` (n, P): the derivative if any, minus the polynomials."""
        X = np.atleast_2d(np.asarray(Y, dtype=np.float64))
        if self._derivative is not None:
            X = self._derivative.apply(X)
        return X - (X @ self._basis) @ self._basis.T

    def unmix(self, y, candidates=None) -> Unmixing:
        """Unmix one spectrum among all entries or among ``candidates``.

        Parameters
        ----------
        y : array_like, shape (P,)
            The spectrum on the model's axis, linear intensity, any units, finite.
        candidates : sequence of int, optional
            Entry indices to unmix among (e.g. the library search's top 10 hits); default all entries.

        Returns
        -------
        Unmixing

        Raises
        ------
        ValueError
            For a spectrum of the wrong length or with a non-finite value, one with no signal above a smooth
            background, or candidates that are not distinct entry indices.
        """
        y = _finite(y, "the spectrum", 1)
        if y.shape[0] != self.points:
            raise ValueError(f"the spectrum has {y.shape[0]} points; the mixture model's axis has {self.points}")
        idx = self._candidates(candidates)
        z = self.representation(y)[0]
        zz = float(z @ z)
        if zz <= (1e-12 * np.linalg.norm(y)) ** 2:
            raise ValueError("the spectrum has no signal above a smooth background: nothing to unmix")
        R, norms = self._working(idx)
        G, c = R @ R.T, R @ z
        gain = self._heights[idx] / np.where(norms > 0, norms, np.inf)  # band height per unit coefficient
        best = int(np.argmax(c))
        e1 = zz - max(float(c[best]), 0.0) ** 2
        x = _active_set(G, c, np.sqrt(zz), max(3 * idx.size, 10))
        support = np.flatnonzero(x > 0)
        pair, coef2, e2 = np.array([], dtype=int), np.array([]), e1
        if support.size >= 2:
            pair = support[np.argsort(x[support] * gain[support])[::-1][:2]]
            coef2 = _active_set(G[np.ix_(pair, pair)], c[pair], np.sqrt(zz), 10)
            e2 = min(e1, zz - 2.0 * float(coef2 @ c[pair]) + float(coef2 @ G[np.ix_(pair, pair)] @ coef2))
        statistic = 1.0 - e2 / e1 if e1 > EXACT * zz else 0.0  # an exact single fit leaves only rounding
        is_mixture = bool(statistic > self.threshold and pair.size == 2 and np.all(coef2 > 0))
        if is_mixture:
            chosen, coef = pair, coef2
        elif c[best] > 0:
            chosen, coef = np.array([best]), np.array([float(c[best])])
        else:
            chosen, coef = np.array([], dtype=int), np.array([])
        parts = (coef / np.where(norms[chosen] > 0, norms[chosen], np.inf))[:, None] * self.references[idx[chosen]]
        fitted = parts.sum(axis=0) if parts.size else np.zeros_like(y)
        rest = y - fitted
        background = self._display @ (self._display.T @ rest)
        share = coef * gain[chosen]
        order = np.argsort(share)[::-1]
        components = tuple((self.names[idx[chosen[i]]], float(share[i] / share.sum())) for i in order)
        names = tuple(self.names[idx[i]] for i in pair)
        return Unmixing(components, self.names[idx[best]], float(np.sqrt(max(e1, 0.0) / zz)), names,
                        float(np.sqrt(max(e2, 0.0) / zz)), float(statistic), self.threshold, is_mixture,
                        fitted, background, rest - background, parts[order].reshape(len(order), y.size))

    def _working(self, idx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Unit-norm ``T(r_e)`` (k, P) of entries ``idx`` and their norms before scaling (k,), cached per entry."""
        missing = [int(i) for i in idx if int(i) not in self._cache]
        if missing:
            T = self.representation(self.references[missing])
            for i, t, norm in zip(missing, T, np.linalg.norm(T, axis=1)):
                self._cache[i] = (t / norm if norm > 0 else t, float(norm))
        rows = [self._cache[int(i)] for i in idx]
        return np.stack([r[0] for r in rows]), np.array([r[1] for r in rows])

    def _candidates(self, candidates) -> np.ndarray:
        E = len(self.names)
        if candidates is None:
            return np.arange(E)
        try:
            idx = np.asarray(candidates)
            ok = idx.ndim == 1 and idx.size > 0 and np.issubdtype(idx.dtype, np.integer)
        except (TypeError, ValueError):
            ok = False
        if not ok:
            raise ValueError(f"candidates must be a non-empty sequence of entry indices; got {candidates!r}")
        idx = idx.astype(np.int64)
        if np.any((idx < 0) | (idx >= E)):
            raise ValueError(f"candidates must be entry indices in 0..{E - 1}; got {idx[(idx < 0) | (idx >= E)][0]}")
        if np.unique(idx).size != idx.size:
            raise ValueError("candidates must be distinct entry indices; one appears more than once")
        return idx

    def to_arrays(self, prefix: str = "mixture.") -> dict:
        """Named plain arrays (Unicode names, float64 references, scalars) for an ``.npz``, keys ``prefix + NAME``."""
        values = (np.array(self.names, dtype=str), np.asarray(self.references, np.float64),
                  np.array(self.background_order, np.int64), np.array(self.derivative_window, np.int64),
                  np.array(self.threshold), np.array(self.false_mixture_rate), np.array(self.mixture_detection_rate),
                  np.array(self.calibration_spectra, np.int64))
        return {prefix + name: value for name, value in zip(ARRAY_NAMES, values)}

    @classmethod
    def from_arrays(cls, arrays, points: int, prefix: str = "mixture.") -> "MixtureModel":
        """Rebuild from :meth:`to_arrays`' arrays (e.g. an ``.npz`` loaded with ``allow_pickle=False``).

        Raises
        ------
        ValueError
            A missing array, or one of the wrong kind, shape or range, named in the message; references not
            on an axis of ``points`` points.
        """
        missing = [prefix + name for name in ARRAY_NAMES if prefix + name not in arrays]
        if missing:
            raise ValueError(f"mixture model arrays: {', '.join(missing)} missing")
        a = {name: np.asarray(arrays[prefix + name]) for name in ARRAY_NAMES}
        if a["names"].dtype.kind != "U" or a["names"].ndim != 1:
            raise ValueError(f"mixture model arrays: {prefix}names must be a 1-D array of strings; got "
                             f"{a['names'].dtype} of shape {a['names'].shape}")
        for name in ARRAY_NAMES[1:]:
            if a[name].dtype.kind not in "iuf":
                raise ValueError(f"mixture model arrays: {prefix}{name} must be numbers; got {a[name].dtype}")
            if name != "references" and a[name].shape != ():
                raise ValueError(f"mixture model arrays: {prefix}{name} must be one number; got shape {a[name].shape}")
        if a["references"].shape != (a["names"].size, points):
            raise ValueError(f"mixture model arrays: {prefix}references has shape {a['references'].shape}, not "
                             f"({a['names'].size}, {points}) (one reference per name on the {points}-point axis)")
        try:
            return cls(tuple(str(n) for n in a["names"]), a["references"], *(a[n][()] for n in ARRAY_NAMES[2:]))
        except ValueError as exc:
            raise ValueError(f"mixture model arrays: {exc}") from None


def _finite(values, what: str, ndim: int) -> np.ndarray:
    """``values`` as a float64 array of ``ndim`` dimensions with finite entries, else ValueError."""
    try:
        arr = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError(f"{what} must be an array of numbers; got {type(values).__name__}") from None
    if arr.ndim != ndim:
        raise ValueError(f"{what} must be {ndim}-D; got shape {arr.shape}")
    bad = ~np.isfinite(arr)
    if bad.any():
        where = tuple(int(i) for i in np.argwhere(bad)[0])
        raise ValueError(f"{what} holds a non-finite value ({arr[where]}) at index {where if ndim > 1 else where[0]}")
    return arr


def _whole(value, what: str) -> int:
    number = float(value)
    if not number.is_integer() or number < 0:
        raise ValueError(f"mixture model: {what} must be a whole number >= 0; got {value!r}")
    return int(number)


def _check_order(order, points: int) -> None:
    if not (isinstance(order, (int, np.integer)) and 0 <= order <= MAX_BACKGROUND_ORDER):
        raise ValueError(f"background order must be a whole number in 0..{MAX_BACKGROUND_ORDER}; got {order!r}")
    if points < order + 2:
        raise ValueError(f"an axis of {points} points leaves nothing after removing a degree-{order} background; "
                         f"it needs at least {order + 2}")
