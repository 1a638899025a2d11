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


@dataclass(frozen=True)
class DenseNet:
    """A dense network as a bundle holds it: layers applied in order, Leaky ReLU slope shared.

    The compact network (Dense(5) + Leaky ReLU -> Dense(C) + softmax), a multinomial linear model
    (one softmax layer) and a projection followed by a linear head (a linear layer, then a softmax
    layer) are all this.

    Attributes
    ----------
    layers : tuple of Dense
    leaky_slope : float
    """

    layers: tuple
    leaky_slope: float = 0.0

    def probabilities(self, Z: np.ndarray) -> np.ndarray:
        """Class probabilities (n, C) for network inputs ``Z`` (n, inputs)."""
        return forward(Z, self.layers, self.leaky_slope)

    def flop(self, inputs: int) -> int:
        """Operations of one forward pass, counted as :mod:`device.inference.cost` does.

        Per layer: a multiply-accumulate per weight (2), a bias add per unit; ReLU and Leaky ReLU 2 per unit
        (compare, scale), softmax 4 per unit (max-subtract, exp, sum, divide), linear nothing more.
        ``inputs`` is implied by the kernels.
        """
        total = 0
        for layer in self.layers:
            fan_in, units = layer.kernel.shape
            total += 2 * fan_in * units + units
            if layer.activation in ("relu", "leaky_relu"):
                total += 2 * units
            elif layer.activation == "softmax":
                total += 4 * units
        return total

    @property
    def parameters(self) -> int:
        """Number of stored weights and biases."""
        return int(sum(layer.kernel.size + layer.bias.size for layer in self.layers))
