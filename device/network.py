"""The pure-NumPy forward pass of the dense networks the bundles hold."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

#: Activations a bundle may name, in the order layers apply them.
ACTIVATIONS = ("linear", "relu", "leaky_relu", "softmax")


@dataclass(frozen=True)
class Dense:
    """One fully connected layer: ``activation(x @ kernel + bias)``.

    Attributes
    ----------
    kernel : ndarray, shape (inputs, units)
    bias : ndarray, shape (units,)
    activation : str
        One of :data:`ACTIVATIONS`.
    """

    kernel: np.ndarray
    bias: np.ndarray
    activation: str


def softmax(logits: np.ndarray) -> np.ndarray:
    """Row-wise softmax of ``logits`` (n, C), stable for any magnitude (max subtracted first)."""
    z = logits - logits.max(axis=1, keepdims=True)
    np.exp(z, out=z)
    z /= z.sum(axis=1, keepdims=True)
    return z


def forward(Z: np.ndarray, layers: tuple[Dense, ...], leaky_slope: float) -> np.ndarray:
    """Run standardised inputs through the layers.

    Parameters
    ----------
    Z : ndarray, shape (n, inputs)
        Standardised model inputs.
    layers : tuple of Dense
    leaky_slope : float
        Slope of Leaky ReLU for negative inputs.

    Returns
    -------
    ndarray, shape (n, units of the last layer)
        For a softmax output layer, class probabilities summing to 1 per row.
    """
    a = Z
    for layer in layers:
        a = a @ layer.kernel + layer.bias
        if layer.activation == "leaky_relu":
            a = np.where(a >= 0, a, a * leaky_slope)
        elif layer.activation == "relu":
            a = np.maximum(a, 0.0)
        elif layer.activation == "softmax":
            a = softmax(a)
    return a
