"""Model inputs: preprocessed intensities on the model axis followed by the 22 engineered features, standardised."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from device.inference.features import engineered_features
from device.inference.preprocess import SNV, Chain
from device.inference.spectrum import Axis

#: The one-step chains bundles without a ``preprocess`` entry name in ``normalisation``: ``none`` (the
#: published method's raw intensities) or ``snv`` (standard normal variate: each spectrum minus its mean,
#: divided by its standard deviation), which makes the model indifferent to gain, laser power, integration
#: time and a constant baseline offset.
NORMALISATIONS = ("none", "snv")


def normalise(Y: np.ndarray, method: str) -> np.ndarray:
    """Apply a per-spectrum normalisation to ``Y`` (n, points); a flat spectrum becomes zeros under SNV."""
    Y = np.asarray(Y, dtype=np.float64)
    if method == "none":
        return Y
    if method == "snv":
        return SNV().apply(np.atleast_2d(Y))
    raise ValueError(f"unknown normalisation {method!r}; choose one of {', '.join(NORMALISATIONS)}")


def as_chain(preprocess, axis: Axis) -> Chain:
    """``preprocess`` as a :class:`~device.inference.preprocess.Chain`.

    ``preprocess`` is a chain, or its text (``none``, ``snv``, ...), parsed for ``axis``.
    """
    return preprocess if isinstance(preprocess, Chain) else Chain.parse(preprocess, axis.step, axis.points)


def raw_inputs(Y: np.ndarray, axis: Axis, prominence: float, preprocess="none") -> np.ndarray:
    """Unscaled model inputs for spectra on ``axis``.

    Parameters
    ----------
    Y : ndarray, shape (n, points)
    axis : Axis
    prominence : float
        Peak threshold of the features (fraction of each spectrum's range).
    preprocess : Chain or str
        The preprocessing chain (or its text, e.g. ``snv``), applied to each spectrum before anything else.

    Returns
    -------
    ndarray, shape (n, points + 22)
        The preprocessed intensities, then the features in :data:`device.inference.features.FEATURE_NAMES` order.
    """
    Y = as_chain(preprocess, axis).apply(Y)
    F = engineered_features(Y, axis, prominence)
    return np.concatenate((Y, F), axis=1)


def network_inputs(Y: np.ndarray, axis: Axis, prominence: float, preprocess, features: bool,
                   standardizer: "Standardizer | None") -> np.ndarray:
    """A bundle's network inputs for spectra ``Y`` (n, points) on ``axis``.

    The preprocessing chain, then the 22 features if ``features``, then the column standardisation if
    ``standardizer`` is not None. Returns shape (n, points + 22) with features, else (n, points).
    """
    R = raw_inputs(Y, axis, prominence, preprocess) if features else as_chain(preprocess, axis).apply(Y)
    return standardizer.transform(R) if standardizer is not None else R


#: Relative spread under which a training column counts as constant.
CONSTANT_RTOL = 1e-12


@dataclass(frozen=True)
class Standardizer:
    """Column-wise standardisation ``(x - mean) / scale``.

    A column that is constant in the training data (its standard deviation at most
    :data:`CONSTANT_RTOL` x max(1, |mean|), i.e. rounding noise) gets scale 1, so it maps to ~0: never
    NaN, and never rounding noise blown up to unit size (after SNV, features such as the mean are
    constant by construction).
    """

    mean: np.ndarray
    scale: np.ndarray

    @classmethod
    def fit(cls, X: np.ndarray) -> "Standardizer":
        """Statistics of the training inputs ``X`` (n, D): mean and population standard deviation."""
        X = np.asarray(X, dtype=np.float64)
        mean = X.mean(axis=0)
        std = X.std(axis=0)
        return cls(mean, np.where(std > CONSTANT_RTOL * np.maximum(1.0, np.abs(mean)), std, 1.0))

    def transform(self, X: np.ndarray) -> np.ndarray:
        """Standardise ``X`` (n, D)."""
        return (X - self.mean) / self.scale
