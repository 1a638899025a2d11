"""Model inputs: intensities on the model axis followed by the 22 engineered features, standardised."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .features import engineered_features
from .spectrum import Axis


def raw_inputs(Y: np.ndarray, axis: Axis, prominence: float) -> np.ndarray:
    """Unscaled model inputs for spectra on ``axis``.

    Parameters
    ----------
    Y : ndarray, shape (n, points)
    axis : Axis
    prominence : float
        Peak threshold of the features (fraction of each spectrum's range).

    Returns
    -------
    ndarray, shape (n, points + 22)
        The intensities, then the features in :data:`device.features.FEATURE_NAMES` order.
    """
    F = engineered_features(Y, axis, prominence)
    Y = np.asarray(Y, dtype=np.float64).reshape(F.shape[0], -1)
    return np.concatenate((Y, F), axis=1)


@dataclass(frozen=True)
class Standardizer:
    """Column-wise standardisation ``(x - mean) / scale``.

    A column that is constant in the training data gets scale 1, so it maps to 0 instead of NaN.
    """

    mean: np.ndarray
    scale: np.ndarray

    @classmethod
    def fit(cls, X: np.ndarray) -> "Standardizer":
        """Statistics of the training inputs ``X`` (n, D): mean and population standard deviation."""
        X = np.asarray(X, dtype=np.float64)
        mean = X.mean(axis=0)
        std = X.std(axis=0)
        return cls(mean, np.where(std > 0, std, 1.0))

    def transform(self, X: np.ndarray) -> np.ndarray:
        """Standardise ``X`` (n, D)."""
        return (X - self.mean) / self.scale
