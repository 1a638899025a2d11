"""PCA and PLS projections: fitted with scikit-learn, stored as one linear layer of the dense network.

A projection maps preprocessed spectra (n, points) to ``k`` scores (n, k) by an affine map; the bundle
stores it as ``Dense(k, linear)`` (the loadings as its kernel, the centring folded into its bias), so the
device runs it as a matrix product and needs nothing of scikit-learn. The heads that follow it are a
logistic regression (``pca-logreg``, ``pls-logreg``: :mod:`trainer.models.linear`) or the compact network
(``pca-compact``, ``pls-compact``: :mod:`trainer.models.candidates`).

``pca``  ``PCA(k)`` of the training inputs (centred, not scaled).
``pls``  ``PLSRegression(k, scale=False)`` of the training inputs on the one-hot classes (PLS-DA scores).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from device.inference.network import Dense

#: The projection methods, by the prefix of their kinds' names.
PROJECTIONS = ("pca", "pls")
#: Scores kept by a projection unless told otherwise.
DEFAULT_COMPONENTS = 30


def max_components(n_train: int, points: int) -> int:
    """Most scores a projection can have on ``n_train`` training spectra of ``points`` inputs."""
    return min(n_train - 1, points)


@dataclass(frozen=True)
class Projection:
    """A fitted projection.

    Attributes
    ----------
    layer : Dense
        ``Dense(k, linear)``: kernel (points, k), bias (k,); ``X @ kernel + bias`` are the scores.
    transform : callable
        scikit-learn's own ``transform`` (n, points) -> (n, k): the reference the layer is checked against.
    """

    layer: Dense
    transform: object


def fit_projection(method: str, X: np.ndarray, y: np.ndarray, components: int, n_classes: int,
                   seed: int) -> Projection:
    """Fit a ``method`` projection (:data:`PROJECTIONS`) to ``components`` scores.

    Parameters
    ----------
    method : str
        ``pca`` or ``pls``.
    X : ndarray, shape (n, points)
        Training inputs.
    y : ndarray of int, shape (n,)
        Classes in [0, ``n_classes``) (PLS only).
    components : int
    n_classes : int
    seed : int
        Seed of PCA's randomised solver.

    Raises
    ------
    ValueError
        If ``components`` is more than the training spectra allow (:func:`max_components`).
    """
    from sklearn.cross_decomposition import PLSRegression
    from sklearn.decomposition import PCA

    if method not in PROJECTIONS:
        raise ValueError(f"unknown projection {method!r}; choose one of {', '.join(PROJECTIONS)}")
    n, points = X.shape
    if components > max_components(n, points):
        raise ValueError(f"--components {components} needs more than {components} training spectra; there are "
                         f"{n}: use --components {max_components(n, points)} or fewer")
    fitted = (PCA(n_components=components, random_state=seed).fit(X) if method == "pca"
              else PLSRegression(n_components=components, scale=False).fit(X, np.eye(n_classes)[y]))
    return Projection(affine_layer(fitted.transform, points), fitted.transform)


def affine_layer(transform, points: int) -> Dense:
    """A linear layer equal to an affine ``transform`` (n, points) -> (n, k): its values at 0 and the unit vectors."""
    bias = transform(np.zeros((1, points)))[0]
    kernel = transform(np.eye(points)) - bias
    return Dense(kernel, bias, "linear")


def describe(method: str, components: int) -> str:
    """The projection in words, for the model card."""
    return (f"{method.upper()} projection to {components} scores, Dense({components}) linear (stored matrix, "
            "mean folded into the bias)")
