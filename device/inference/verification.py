"""Verification against an expected material: whether its own variation explains a spectrum's differences.

A library entry holds ``n`` replicate spectra of one material, already preprocessed on the library axis.
Its variation model, fitted from them (:meth:`VariationModel.fit`):

* mean ``m`` and the first ``k`` principal components ``V`` (k, P) of the centred replicates, with score
  variances ``s_j^2 = l_j / (n - 1)`` (``l_j`` the eigenvalues of the centred Gram matrix);
* ``k`` by the broken-stick rule (Frontier 1976; Jackson, *Ecology* 74:2204, 1993): component ``j`` of
  ``r = min(n - 1, P)`` is kept while its share of the variance exceeds ``(1/r) sum_{i=j..r} 1/i``, the
  share the ``j``-th longest piece of a stick broken at random would have; at least 1, at most ``n - 2``.
  A fixed rule, set before any data set was looked at: it keeps the directions that stand out from
  noise and leaves the rest to the residual.

A spectrum ``x`` is tested (:meth:`VariationModel.test`) on two statistics:

* ``T^2 = sum_j t_j^2 / s_j^2`` of its scores ``t = V (x - m)``, in its prediction form: for a new
  observation independent of the ``n`` replicates, ``x - m ~ N(0, (1 + 1/n) S)`` and ``(n - 1) S`` is
  Wishart with ``n - 1`` degrees of freedom, so ``n T^2 / (n + 1)`` is Hotelling's ``T^2(k, n - 1)``
  and ``T^2 ~ (n + 1) k (n - 1) / (n (n - k)) F(k, n - k)`` (Tracy, Young & Mason, *J. Quality Technology*
  24:88, 1992; Jackson, *A User's Guide to Principal Components*, 1991, section 1.7). With the components
  estimated from few spectra of many points, the sample eigenvalues overstate the variance a new spectrum
  has along them, so this part errs on the side of passing;
* ``Q = |x - m - V' t|^2``, the residual outside the ``k`` components, modelled as ``g chi^2_h`` (Box,
  *Ann. Math. Stat.* 25:290, 1954) with ``g = v / (2 mu)``, ``h = 2 mu^2 / v`` matched to the mean ``mu``
  and variance ``v`` of the replicates' own leave-one-out residuals (each replicate's ``Q`` under the
  model of the other ``n - 1``, with the same ``k``), as Nomikos & MacGregor (*Technometrics* 37:41, 1995)
  match it to the training residuals. Residuals of the fitted replicates themselves would be too small
  (the components fit their noise) and make the test fail genuine spectra; the leave-one-out ones are
  what a new replicate meets. They come from the ``n x n`` Gram matrix, without refitting on the points.
  Like ``T^2``, ``Q`` is referred to its prediction form: the scale ``g`` is estimated by ``mu / h`` from
  ``n`` residuals, and if those are ``g chi^2_h`` then ``n mu / g`` is ``chi^2_{n h}`` and a new
  spectrum's ``Q / mu`` follows ``F(h, n h)``, wider than ``chi^2_h / h`` for few replicates.

The two p-values are combined by Bonferroni, ``p = min(1, 2 min(p_T2, p_Q))``: the spectrum PASSES when
``p >= alpha`` (:data:`ALPHA` by default), i.e. when ``T^2`` and ``Q`` both stay within their limits at
``alpha / 2``, so a genuine replicate fails with probability at most about ``alpha``. With few
replicates the estimated ``h`` is uncertain too, which the prediction form does not cover: on Gaussian
replicates (three components and noise) genuine spectra fail 0.04-0.055 of the time with 60 replicates,
but 0.06-0.08 with 12 and 0.07-0.11 with 6, so a library should hold 20 or more replicates per entry
where the verdict matters.

Fitting costs ``O(n^2 P + n^4)``: 50-80 ms for ``n = 60`` replicates of ``P = 1500`` points on one x86-64
core (the batched ``eigh`` of the ``n`` leave-one-out Gram matrices and the two inverse distribution
functions take most of it; a Raspberry Pi 4 is several times slower), and testing a spectrum about 1 ms,
so the device fits an entry's model from the stored replicates when it is first needed.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from device.errors import LengthMismatchError, NonFiniteError, RamanEdgeError
from device.inference.distributions import f_isf, f_sf

#: Default significance level: a genuine replicate fails with about this probability.
ALPHA = 0.05
#: Fewest replicates an entry needs: the residual reference is matched to the mean and variance of
#: this many leave-one-out residuals (a variance from fewer than five is little more than a guess),
#: and the ``T^2`` reference needs ``n - k >= 2``.
MIN_REPLICATES = 5
#: Eigenvalues below this share of the largest are directions the replicates do not vary in; replicates
#: whose largest is below this share of their energy are copies of one spectrum.
RANK_TOLERANCE = 1e-12


class ReplicateVariationError(RamanEdgeError, ValueError):
    """An entry's replicate spectra cannot model its measurement variation."""


class TooFewReplicatesError(ReplicateVariationError):
    """An entry has fewer replicate spectra than verification needs.

    Attributes
    ----------
    replicates : int
        How many the entry has.
    needed : int
        How many verification needs (:data:`MIN_REPLICATES`).
    """

    def __init__(self, replicates: int, entry: str = "this entry", needed: int = MIN_REPLICATES):
        self.replicates, self.needed = replicates, needed
        super().__init__(f"{entry} has {replicates} replicate spectra; verification needs at least {needed} to "
                         f"model the material's own variation: measure {needed - replicates} more and add them "
                         "to the library")


@dataclass(frozen=True)
class Verification:
    """The verification of one spectrum against one entry.

    Attributes
    ----------
    passed : bool
        ``p_value >= alpha``: the differences from the entry are explained by its own variation.
    p_value : float
        ``min(1, 2 min(p_t2, p_q))``.
    t2, t2_limit, p_t2 : float
        Hotelling's ``T^2`` of the scores, the value above which it alone fails the spectrum (at ``alpha / 2``)
        and its p-value.
    q, q_limit, p_q : float
        Residual energy outside the components (squared preprocessed intensity), its limit and p-value.
    k : int
        Principal components of the entry's model.
    n : int
        Replicates it was fitted on.
    alpha : float
    """

    passed: bool
    p_value: float
    t2: float
    t2_limit: float
    p_t2: float
    q: float
    q_limit: float
    p_q: float
    k: int
    n: int
    alpha: float


@dataclass(frozen=True, eq=False)
class VariationModel:
    """One entry's variation model (see the module docstring).

    Attributes
    ----------
    mean : ndarray, shape (P,)
        Mean replicate.
    components : ndarray, shape (k, P)
        Orthonormal principal axes, largest variance first.
    score_variance : ndarray, shape (k,)
        Variance of the replicates' scores on each axis.
    q_mean, q_dof : float
        Mean ``mu`` of the leave-one-out residuals and ``h``: a new spectrum's ``Q / mu`` follows ``F(h, n h)``.
    n : int
        Replicates.
    alpha : float
        Significance level of :meth:`test`.
    t2_limit, q_limit : float
        ``T^2`` and ``Q`` a passing spectrum stays within (each at ``alpha / 2``).
    """

    mean: np.ndarray
    components: np.ndarray
    score_variance: np.ndarray
    q_mean: float
    q_dof: float
    n: int
    alpha: float
    t2_limit: float
    q_limit: float

    @property
    def k(self) -> int:
        """Principal components kept."""
        return self.components.shape[0]

    @classmethod
    def fit(cls, X, alpha: float = ALPHA, entry: str = "this entry") -> "VariationModel":
        """Fit the model of one entry from its replicates.

        Parameters
        ----------
        X : array_like, shape (n, P)
            Replicate spectra, preprocessed on the library axis.
        alpha : float
            Significance level, 0 < alpha < 1.
        entry : str
            The entry's name, for messages.

        Raises
        ------
        TooFewReplicatesError
            Fewer than :data:`MIN_REPLICATES` replicates.
        ReplicateVariationError
            Replicates that do not vary (copies of one spectrum).
        NonFiniteError
            NaN or infinite values.
        """
        X = np.array(X, dtype=np.float64, ndmin=2)
        if X.ndim != 2:
            raise ValueError(f"the replicates of {entry} must be a 2-D array (spectra, points), not {X.ndim}-D")
        if not 0 < alpha < 1:
            raise ValueError(f"the significance level must lie strictly between 0 and 1, not {alpha}")
        n, points = X.shape
        if n < MIN_REPLICATES:
            raise TooFewReplicatesError(n, entry)
        if not np.isfinite(X).all():
            raise NonFiniteError(f"the replicates of {entry} hold NaN or infinite values")
        mean = X.mean(axis=0)
        Xc = X - mean
        gram = Xc @ Xc.T
        eigenvalues, vectors = _descending_eigh(gram)
        if not eigenvalues[0] > RANK_TOLERANCE * np.einsum("ij,ij->", X, X):
            raise ReplicateVariationError(f"the {n} replicate spectra of {entry} are identical, so they say nothing "
                                          "about its measurement variation: store separate measurements")
        k = broken_stick_components(eigenvalues, n, points)
        components = (vectors[:, :k].T @ Xc) / np.sqrt(eigenvalues[:k])[:, None]
        q_loo = leave_one_out_residuals(gram, k)
        mu, v = float(q_loo.mean()), float(q_loo.var(ddof=1))
        if not (mu > 0 and v > 0):
            raise ReplicateVariationError(f"the {n} replicate spectra of {entry} vary along {k} direction(s) "
                                          "only, which leaves no residual variation to model: store separate "
                                          "measurements")
        h = 2 * mu * mu / v
        return cls(mean, components, eigenvalues[:k] / (n - 1), mu, h, n, float(alpha),
                   t2_factor(n, k) * f_isf(alpha / 2, k, n - k), mu * f_isf(alpha / 2, h, n * h))

    def statistics(self, X) -> tuple[np.ndarray, np.ndarray]:
        """``T^2`` and ``Q`` of spectra ``X`` (m, P) or (P,), preprocessed like the replicates: two arrays (m,).

        Raises
        ------
        LengthMismatchError
            Spectra of another number of points than the replicates.
        NonFiniteError
            NaN or infinite values.
        """
        X = np.array(X, dtype=np.float64, ndmin=2)
        if X.ndim != 2 or X.shape[1] != self.mean.size:
            raise LengthMismatchError(f"the spectra to verify have shape {X.shape}; the entry's replicates have "
                                      f"{self.mean.size} points each")
        if not np.isfinite(X).all():
            raise NonFiniteError("a spectrum to verify holds NaN or infinite values")
        D = X - self.mean
        T = D @ self.components.T
        R = D - T @ self.components
        return np.sum(T * T / self.score_variance, axis=1), np.einsum("ij,ij->i", R, R)

    def test(self, X) -> tuple[Verification, ...]:
        """Verify each spectrum of ``X`` (m, P) or (P,) against the entry: one :class:`Verification` each."""
        t2, q = self.statistics(X)
        p_t2 = f_sf(t2 / t2_factor(self.n, self.k), self.k, self.n - self.k)
        p_q = f_sf(q / self.q_mean, self.q_dof, self.n * self.q_dof)
        p = np.minimum(1.0, 2 * np.minimum(p_t2, p_q))
        return tuple(Verification(bool(p[i] >= self.alpha), float(p[i]), float(t2[i]), self.t2_limit,
                                  float(p_t2[i]), float(q[i]), self.q_limit, float(p_q[i]), self.k, self.n,
                                  self.alpha) for i in range(len(p)))


def t2_factor(n: int, k: int) -> float:
    """``(n + 1) k (n - 1) / (n (n - k))``: a new spectrum's ``T^2`` over this follows ``F(k, n - k)``."""
    return (n + 1) * k * (n - 1) / (n * (n - k))


def broken_stick_components(eigenvalues: np.ndarray, n: int, points: int) -> int:
    """Components the broken-stick rule keeps (see the module docstring), between 1 and ``n - 2``.

    Parameters
    ----------
    eigenvalues : ndarray, shape (n,)
        Eigenvalues of the centred replicates' Gram matrix, largest first.
    n, points : int
        Replicates and points per spectrum.
    """
    r = min(n - 1, points)
    share = eigenvalues[:r] / max(eigenvalues[:r].sum(), np.finfo(float).tiny)
    stick = np.cumsum(1.0 / np.arange(r, 0, -1))[::-1] / r  # stick[j] = (1/r) sum_{i=j+1..r} 1/i
    below = np.flatnonzero(share <= stick)
    kept = int(below[0]) if below.size else r
    return max(1, min(kept, n - 2))


def leave_one_out_residuals(gram: np.ndarray, k: int) -> np.ndarray:
    """Each replicate's residual ``Q`` under the ``k``-component model of the other replicates.

    Parameters
    ----------
    gram : ndarray, shape (n, n)
        ``Xc Xc'`` of the centred replicates (any common centring gives the same result).
    k : int
        Components, at most ``n - 2``.

    Returns
    -------
    ndarray, shape (n,)
        Squared distance of replicate ``i`` from the mean of the others, less its squared scores on their
        first ``k`` principal axes (kernel form: ``eigh`` of the others' centred Gram matrix).
    """
    n = gram.shape[0]
    rest = np.array([np.delete(np.arange(n), i) for i in range(n)])  # (n, n - 1): the others of each
    G = gram[rest[:, :, None], rest[:, None, :]]  # (n, n - 1, n - 1)
    cross = gram[rest, np.arange(n)[:, None]]  # (n, n - 1): each replicate against the others
    row = G.mean(axis=2)
    total = row.mean(axis=1)
    centred = G - row[:, :, None] - row[:, None, :] + total[:, None, None]
    values, vectors = np.linalg.eigh(centred)
    values, vectors = np.maximum(values[:, ::-1][:, :k], 0.0), vectors[:, :, ::-1][:, :, :k]
    offset = cross - cross.mean(axis=1, keepdims=True) - row + total[:, None]  # the others' centring
    projections = np.einsum("ijk,ij->ik", vectors, offset)
    varying = values > values[:, :1] * RANK_TOLERANCE  # an empty direction scores 0
    scores = np.where(varying, projections, 0.0) / np.sqrt(np.where(varying, values, 1.0))
    distance = np.diag(gram) - 2 * cross.mean(axis=1) + total
    return np.maximum(distance - np.einsum("ik,ik->i", scores, scores), 0.0)


def _descending_eigh(S: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Eigenvalues (clipped at 0) and eigenvectors of the symmetric ``S``, largest first."""
    values, vectors = np.linalg.eigh(S)
    return np.maximum(values[::-1], 0.0), vectors[:, ::-1]
