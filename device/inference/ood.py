"""Out-of-distribution score: how far a spectrum lies from everything the model was trained on.

A softmax always names a class, even for a substance the model never saw. The detector, fitted at
training time (:mod:`trainer.evaluation.ood`) and stored in the bundle, measures each SNV-normalised spectrum on the
model axis against the training spectra:

* project it onto the training set's first ``k`` principal components: ``t = P (x - m)``;
* ``T2_c = (t - mu_c)' S^-1 (t - mu_c)``, the Mahalanobis distance to class c's mean with the pooled
  within-class covariance S of the scores;
* ``Q = |x - m - P' t|^2 / q``, the energy the components cannot express, over its mean ``q`` in training;
* score = ``min_c T2_c / k + Q``: about 2 for a typical training spectrum, large when the spectrum is far
  from every class or has structure no training spectrum had.

A spectrum scores above ``threshold`` -> the verdict is ``unknown``. The threshold is the
(1 - ``false_rejection``) quantile of scores of held-out known spectra, so about that share of genuine
samples of the known classes is called ``unknown`` (the price of the guard, stated in the model card).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from device.inference.inputs import normalise


@dataclass(frozen=True)
class OODDetector:
    """The fitted detector (see the module docstring).

    Attributes
    ----------
    mean : ndarray, shape (points,)
    components : ndarray, shape (k, points)
        Orthonormal rows.
    class_means : ndarray, shape (C, k)
    precision : ndarray, shape (k, k)
        Inverse of the pooled within-class covariance of the scores.
    residual_scale : float
        Mean residual energy ``q`` of the training spectra.
    threshold : float
    false_rejection : float
        Share of held-out known spectra scoring above ``threshold`` when it was set.
    """

    mean: np.ndarray
    components: np.ndarray
    class_means: np.ndarray
    precision: np.ndarray
    residual_scale: float
    threshold: float
    false_rejection: float

    def scores(self, Y: np.ndarray) -> np.ndarray:
        """Scores (n,) for spectra ``Y`` (n, points) on the model axis (normalised here, by SNV)."""
        X = normalise(np.atleast_2d(Y), "snv") - self.mean
        T = X @ self.components.T
        residual = np.einsum("ij,ij->i", X, X) - np.einsum("ij,ij->i", T, T)
        D = T[:, None, :] - self.class_means[None, :, :]
        t2 = np.einsum("nck,kl,ncl->nc", D, self.precision, D).min(axis=1)
        return t2 / self.components.shape[0] + np.maximum(residual, 0.0) / self.residual_scale

    def to_arrays(self) -> dict:
        """Named arrays for ``model.npz`` (prefix ``ood.``)."""
        return {"ood.mean": self.mean, "ood.components": self.components, "ood.class_means": self.class_means,
                "ood.precision": self.precision, "ood.residual_scale": np.array(self.residual_scale),
                "ood.threshold": np.array(self.threshold), "ood.false_rejection": np.array(self.false_rejection)}

    @classmethod
    def from_arrays(cls, arrays: dict, points: int, n_classes: int) -> "OODDetector":
        """Rebuild from ``model.npz`` arrays; ValueError/KeyError for missing or inconsistent ones."""
        d = cls(np.asarray(arrays["ood.mean"], np.float64), np.asarray(arrays["ood.components"], np.float64),
                np.asarray(arrays["ood.class_means"], np.float64), np.asarray(arrays["ood.precision"], np.float64),
                float(arrays["ood.residual_scale"]), float(arrays["ood.threshold"]),
                float(arrays["ood.false_rejection"]))
        k = d.components.shape[0] if d.components.ndim == 2 else -1
        if d.mean.shape != (points,) or d.components.shape != (k, points) or d.class_means.shape != (n_classes, k) \
                or d.precision.shape != (k, k) or not d.residual_scale > 0 or not np.isfinite(d.threshold):
            raise ValueError("out-of-distribution detector arrays do not fit the model's axis and classes")
        return d
