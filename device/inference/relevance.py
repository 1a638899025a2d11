"""Relevance: which Raman bands decided a model's verdict (NumPy only, on the model's axis).

Convolutional bundles get **Grad-CAM** (methods.md, part B). For class c with score y_c (the logit before
the softmax) and last feature maps A (length T, K channels), the channel weights are
``w_k = mean_t dy_c/dA[t, k]`` and the map is ``ReLU(sum_k w_k A[:, k])``, stretched onto the input axis
by linear interpolation between the centres of the map's cells. The networks here end in global
average pooling and one dense layer, ``y_c = sum_k W[k, c] mean_t A[t, k] + b_c``, so the gradient is
exactly ``W[k, c] / T`` at every position and no automatic differentiation is needed.

The compact network gets **gradient x input** over its standardised inputs z (intensities, then the 22
features): ``z_i dy_c/dz_i``, with ``dy_c/dz = W1 diag(act'(h)) W2[:, c]``, the network's view of how
far each input, measured from the training mean, pushed the score of class c. Every other dense
network (the linear models: one softmax layer, or a projection and a head) gets the same over its
inputs, the preprocessed intensities: for a linear model ``z_i W[i, c]``, with ``W`` the product of
its kernels.

The top bands are the highest local maxima of a map, at least :data:`BAND_SEPARATION_CM` apart. The
device records them with a verdict (:mod:`device.service.record`); ``raman-train explain`` draws them.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from device.inference.bundle import ModelBundle
from device.inference.inputs import normalise

#: Least distance between two labelled bands, cm-1.
BAND_SEPARATION_CM = 15.0
TOP_BANDS = 5


@dataclass(frozen=True)
class Relevance:
    """Relevance maps of a batch of spectra for the classes explained.

    Attributes
    ----------
    maps : ndarray of float64, shape (n, points)
        One map per spectrum on the model's axis, raw (Grad-CAM is non-negative; gradient x input signed).
    method : str
        ``Grad-CAM``, ``gradient x input`` or ``gradient x input (standardised inputs)``.
    features : ndarray of float64, shape (n, 22), or None
        Gradient x input of the engineered features, for a network that takes them.
    """

    maps: np.ndarray
    method: str
    features: np.ndarray | None = None

    def scaled(self) -> np.ndarray:
        """The maps (n, points) each divided by its largest magnitude, so its peak is 1 (a zero map stays zero)."""
        peak = np.abs(self.maps).max(axis=1, keepdims=True)
        return np.divide(self.maps, peak, out=self.maps.astype(np.float64), where=peak > 0)


def relevance(bundle: ModelBundle, Y: np.ndarray, classes: np.ndarray) -> Relevance:
    """Relevance of spectra ``Y`` (n, points) on the bundle's axis for ``classes`` (n,) (class indices).

    Grad-CAM for a convolutional bundle, gradient x input for a dense one.
    """
    if bundle.convnet is not None:
        return Relevance(grad_cam(bundle.convnet, normalise(Y, bundle.normalisation), classes), "Grad-CAM")
    gxi = gradient_x_input(bundle, Y, classes)
    points = bundle.axis.points
    return Relevance(gxi[:, :points],
                     "gradient x input" + (" (standardised inputs)" if bundle.standardizer is not None else ""),
                     gxi[:, points:] if bundle.features else None)


def grad_cam(net, X: np.ndarray, classes: np.ndarray) -> np.ndarray:
    """Grad-CAM maps (n, points) of a :class:`~device.inference.convnet.ConvNet` for normalised spectra ``X``.

    ``X`` has shape (n, points); ``classes`` (n,) are the classes explained.
    """
    A = net.feature_maps(X)                                   # (n, T, K)
    n, T, _ = A.shape
    weights = net.head_kernel[:, classes].T / T               # (n, K): dy_c/dA[t, k], the same for every t
    cam = np.maximum(np.einsum("ntk,nk->nt", A, weights), 0.0)
    points = X.shape[1]
    centres = (np.arange(T) + 0.5) * points / T - 0.5         # input index at the centre of each cell
    return np.stack([np.interp(np.arange(points), centres, row) for row in cam])


def gradient_x_input(bundle: ModelBundle, Y: np.ndarray, classes: np.ndarray) -> np.ndarray:
    """Gradient x input (n, inputs) of a dense network's class logit for spectra ``Y`` (n, points) on its axis.

    The inputs are the bundle's network inputs (:meth:`~device.inference.bundle.ModelBundle.inputs`): points + 22
    for the compact network, points for a linear model.
    """
    Z = bundle.inputs(Y)
    *hidden, out = bundle.layers
    slopes, a = [], Z
    for layer in hidden:
        h = a @ layer.kernel + layer.bias
        if layer.activation == "leaky_relu":
            slope_at = np.where(h >= 0, 1.0, bundle.leaky_slope)
        elif layer.activation == "relu":
            slope_at = (h > 0).astype(float)
        else:
            slope_at = np.ones_like(h)
        slopes.append(slope_at)
        a = h * slope_at
    grad = out.kernel[:, classes].T                                  # (n, units): d logit / d last hidden
    for layer, slope_at in zip(reversed(hidden), reversed(slopes)):
        grad = (slope_at * grad) @ layer.kernel.T
    return grad * Z


def top_bands(shift: np.ndarray, values: np.ndarray, k: int = TOP_BANDS) -> list[dict]:
    """The ``k`` highest positive local maxima of ``values`` (points,) on ``shift`` (points,) cm-1.

    At least :data:`BAND_SEPARATION_CM` apart, highest first, each ``{"shift": cm-1, "weight": value}``.
    """
    interior = np.flatnonzero((values[1:-1] > values[:-2]) & (values[1:-1] >= values[2:])) + 1
    chosen: list[int] = []
    for i in interior[np.argsort(-values[interior], kind="stable")]:
        if values[i] <= 0 or len(chosen) == k:
            break
        if all(abs(shift[i] - shift[j]) >= BAND_SEPARATION_CM for j in chosen):
            chosen.append(int(i))
    return [{"shift": round(float(shift[i]), 1), "weight": round(float(values[i]), 6)} for i in chosen]
