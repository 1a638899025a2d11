"""The pure-NumPy forward pass of the 1-D convolutional networks (plain CNN, ResNet, SE-ResNet).

A network is a sequence of operations over spectra laid out channels-last, shape (n, length,
channels), as Keras lays out ``Conv1D`` inputs. Batch normalisation is folded into the preceding
convolution at export, so a convolution here is ``activation(conv(x) + bias)``. Operations:

``conv``      1-D convolution, "same" padding (TensorFlow's: ``ceil(L / stride)`` outputs, the odd
              padding point at the end), stride, bias, then ``linear`` or ``relu``.
``maxpool``   non-overlapping maximum over ``size`` points (a partial window at the end is dropped).
``residual``  ``relu(conv2(relu(conv1(x))) * se + shortcut(x))``: ``conv1`` carries the stride, ``se`` is
              the optional Squeeze-and-Excitation gate ``sigmoid(W2 relu(W1 mean_t(h) + b1) + b2)``
              per channel, ``shortcut`` a 1 x 1 strided convolution when the shape changes, else identity.
``gap``       global average over the length axis -> (n, channels).
``dense``     ``x @ kernel + bias`` then ``softmax`` (the classifier head).

:class:`ConvNet` also returns the last feature maps before ``gap``, which Grad-CAM weighs.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from device.inference.network import softmax

#: Operation names a convolutional bundle may use, in the spec's ``op`` field.
OPS = ("conv", "maxpool", "residual", "gap", "dense")


@dataclass(frozen=True)
class Conv:
    """One convolution with folded batch normalisation.

    Attributes
    ----------
    kernel : ndarray, shape (width, in_channels, out_channels)
    bias : ndarray, shape (out_channels,)
    stride : int
    activation : str
        ``linear`` or ``relu``.
    """

    kernel: np.ndarray
    bias: np.ndarray
    stride: int = 1
    activation: str = "linear"

    def __call__(self, x: np.ndarray) -> np.ndarray:
        """Apply to ``x`` (n, L, in_channels): shape (n, ceil(L / stride), out_channels)."""
        width, _, cout = self.kernel.shape
        n, length, cin = x.shape
        s = self.stride
        out = -(-length // s)
        pad = max((out - 1) * s + width - length, 0)
        xp = np.pad(x, ((0, 0), (pad // 2, pad - pad // 2), (0, 0))) if pad else x
        span = s * (out - 1) + 1
        y = xp[:, :span:s, :] @ self.kernel[0] + self.bias
        for k in range(1, width):  # one matrix product per kernel tap
            y += xp[:, k:k + span:s, :] @ self.kernel[k]
        return np.maximum(y, 0.0, out=y) if self.activation == "relu" else y

    def flop(self, length: int) -> int:
        """Operations for an input of ``length`` points: MACs x 2, bias, ReLU compare."""
        width, cin, cout = self.kernel.shape
        out = -(-length // self.stride)
        return out * cout * (2 * width * cin + 1 + (self.activation == "relu"))


@dataclass(frozen=True)
class SqueezeExcitation:
    """Channel gate: ``sigmoid(relu(mean_t(h) @ w1 + b1) @ w2 + b2)``; w1 (C, C/r), w2 (C/r, C)."""

    w1: np.ndarray
    b1: np.ndarray
    w2: np.ndarray
    b2: np.ndarray

    def __call__(self, h: np.ndarray) -> np.ndarray:
        """Gate the feature maps ``h`` (n, L, C) per spectrum and channel: same shape."""
        z = np.maximum(h.mean(axis=1) @ self.w1 + self.b1, 0.0) @ self.w2 + self.b2
        return h * (1.0 / (1.0 + np.exp(-z)))[:, None, :]

    def flop(self, length: int) -> int:
        """Operations on feature maps of ``length`` points: mean, two dense layers, sigmoid, scaling."""
        c, r = self.w1.shape
        return length * c + c + (2 * c * r + 2 * r) + (2 * r * c + c) + 3 * c + length * c


@dataclass(frozen=True)
class Residual:
    """A residual block (see the module docstring); ``se`` and ``shortcut`` may be None."""

    conv1: Conv
    conv2: Conv
    se: SqueezeExcitation | None = None
    shortcut: Conv | None = None

    def __call__(self, x: np.ndarray) -> np.ndarray:
        """Apply to ``x`` (n, L, in_channels): shape (n, ceil(L / conv1.stride), out_channels)."""
        h = self.conv2(self.conv1(x))
        if self.se is not None:
            h = self.se(h)
        h += self.shortcut(x) if self.shortcut is not None else x
        return np.maximum(h, 0.0, out=h)

    def flop(self, length: int) -> int:
        """Operations for an input of ``length`` points: both convolutions, the gate, shortcut, add and ReLU."""
        out = -(-length // self.conv1.stride)
        channels = self.conv2.kernel.shape[2]
        n = self.conv1.flop(length) + self.conv2.flop(out) + 2 * out * channels  # add, ReLU
        n += self.se.flop(out) if self.se is not None else 0
        return n + (self.shortcut.flop(length) if self.shortcut is not None else 0)


@dataclass(frozen=True)
class MaxPool:
    """Maximum over non-overlapping windows of ``size`` points; a partial window at the end is dropped."""

    size: int

    def __call__(self, x: np.ndarray) -> np.ndarray:
        """Apply to ``x`` (n, L, C): shape (n, L // size, C)."""
        n, length, c = x.shape
        out = length // self.size
        return x[:, :out * self.size].reshape(n, out, self.size, c).max(axis=2)

    def flop(self, length: int, channels: int) -> int:
        """Comparisons for an input of ``length`` points and ``channels`` channels."""
        return (length // self.size) * (self.size - 1) * channels


@dataclass(frozen=True)
class ConvNet:
    """A convolutional classifier: ``body`` (conv, maxpool, residual) -> global average -> softmax head.

    Attributes
    ----------
    body : tuple of Conv, MaxPool or Residual
    head_kernel : ndarray, shape (channels, classes)
    head_bias : ndarray, shape (classes,)
    """

    body: tuple
    head_kernel: np.ndarray
    head_bias: np.ndarray

    def feature_maps(self, X: np.ndarray) -> np.ndarray:
        """The last feature maps for spectra ``X`` (n, points): shape (n, length, channels)."""
        a = np.asarray(X, dtype=np.float64)[:, :, None]
        for op in self.body:
            a = op(a)
        return a

    def probabilities(self, X: np.ndarray, chunk: int = 256) -> np.ndarray:
        """Class probabilities (n, C) for normalised spectra ``X`` (n, points), in chunks of rows."""
        out = [softmax(self.feature_maps(X[i:i + chunk]).mean(axis=1) @ self.head_kernel + self.head_bias)
               for i in range(0, len(X), chunk)]
        return np.concatenate(out) if out else np.empty((0, self.head_bias.size))

    def flop(self, points: int) -> int:
        """Operations of one forward pass on ``points`` inputs, counted as :mod:`device.inference.cost` does."""
        length, channels, total = points, 1, 0
        for op in self.body:
            if isinstance(op, MaxPool):
                total += op.flop(length, channels)
                length //= op.size
                continue
            total += op.flop(length)
            first = op.conv1 if isinstance(op, Residual) else op
            length = -(-length // first.stride)
            channels = (op.conv2 if isinstance(op, Residual) else op).kernel.shape[2]
        classes = self.head_bias.size
        return total + length * channels + channels + 2 * channels * classes + classes + 4 * classes

    @property
    def parameters(self) -> int:
        """Number of stored weights (after folding batch normalisation)."""
        arrays = [self.head_kernel, self.head_bias]
        for op in self.body:
            convs = ([op] if isinstance(op, Conv) else [op.conv1, op.conv2, op.shortcut] if isinstance(op, Residual)
                     else [])
            arrays += [a for c in convs if c is not None for a in (c.kernel, c.bias)]
            if isinstance(op, Residual) and op.se is not None:
                arrays += [op.se.w1, op.se.b1, op.se.w2, op.se.b2]
        return int(sum(a.size for a in arrays))


def to_arrays(net: ConvNet) -> tuple[list[dict], dict]:
    """The network as a JSON-able spec (one dict per operation) and named float32 arrays."""
    spec, arrays = [], {}

    def conv(prefix: str, c: Conv) -> dict:
        arrays[f"{prefix}.kernel"], arrays[f"{prefix}.bias"] = c.kernel, c.bias
        return {"stride": c.stride, "activation": c.activation}

    for i, op in enumerate(net.body):
        name = f"op{i}"
        if isinstance(op, Conv):
            spec.append({"op": "conv", "name": name, **conv(name, op)})
        elif isinstance(op, MaxPool):
            spec.append({"op": "maxpool", "size": op.size})
        else:
            entry = {"op": "residual", "name": name, "conv1": conv(f"{name}.conv1", op.conv1),
                     "conv2": conv(f"{name}.conv2", op.conv2), "se": op.se is not None,
                     "shortcut": op.shortcut is not None}
            if op.se is not None:
                for k in ("w1", "b1", "w2", "b2"):
                    arrays[f"{name}.se.{k}"] = getattr(op.se, k)
            if op.shortcut is not None:
                entry["shortcut_stride"] = conv(f"{name}.shortcut", op.shortcut)["stride"]
            spec.append(entry)
    spec += [{"op": "gap"}, {"op": "dense", "name": "head", "activation": "softmax"}]
    arrays["head.kernel"], arrays["head.bias"] = net.head_kernel, net.head_bias
    return spec, {k: np.asarray(v, np.float32) for k, v in arrays.items()}


def from_arrays(spec: list, arrays: dict) -> ConvNet:
    """Rebuild a network from :func:`to_arrays` output (arrays as float64).

    Raises
    ------
    ValueError, KeyError, TypeError
        For an unknown operation, a missing array or shapes that do not chain; the bundle loader
        turns these into a :class:`~device.errors.BundleError`.
    """
    get = lambda key: np.asarray(arrays[key], dtype=np.float64)  # noqa: E731

    def conv(prefix: str, entry: dict, channels: int) -> Conv:
        c = Conv(get(f"{prefix}.kernel"), get(f"{prefix}.bias"), int(entry["stride"]), str(entry["activation"]))
        if c.kernel.ndim != 3 or c.kernel.shape[1] != channels or c.bias.shape != (c.kernel.shape[2],) \
                or c.stride < 1 or c.activation not in ("linear", "relu"):
            raise ValueError(f"{prefix} has kernel {c.kernel.shape}, bias {c.bias.shape}, stride {c.stride}, "
                             f"activation {c.activation!r}; expected {channels} input channels")
        return c

    if [e.get("op") for e in spec[-2:]] != ["gap", "dense"]:
        raise ValueError("the network must end in global average pooling and a dense softmax head")
    body, channels = [], 1
    for entry in spec[:-2]:
        op = entry.get("op")
        if op == "conv":
            body.append(conv(entry["name"], entry, channels))
            channels = body[-1].kernel.shape[2]
        elif op == "maxpool":
            if int(entry["size"]) < 1:
                raise ValueError("maxpool size must be at least 1")
            body.append(MaxPool(int(entry["size"])))
        elif op == "residual":
            name = entry["name"]
            c1 = conv(f"{name}.conv1", entry["conv1"], channels)
            c2 = conv(f"{name}.conv2", entry["conv2"], c1.kernel.shape[2])
            se = SqueezeExcitation(*(get(f"{name}.se.{k}") for k in ("w1", "b1", "w2", "b2"))) if entry["se"] else None
            out = c2.kernel.shape[2]
            if se is not None and (se.w1.shape[0] != out or se.w2.shape != (se.w1.shape[1], out)):
                raise ValueError(f"{name} squeeze-excitation weights do not fit {out} channels")
            sc = conv(f"{name}.shortcut", {"stride": entry["shortcut_stride"], "activation": "linear"}, channels) \
                if entry["shortcut"] else None
            if sc is None and (channels != out or c1.stride != 1):
                raise ValueError(f"{name} changes the shape without a shortcut convolution")
            body.append(Residual(c1, c2, se, sc))
            channels = out
        else:
            raise ValueError(f"unknown operation {op!r} (known: {', '.join(OPS)})")
    head_kernel, head_bias = get("head.kernel"), get("head.bias")
    if head_kernel.shape != (channels, head_bias.size):
        raise ValueError(f"head kernel {head_kernel.shape} does not fit {channels} channels")
    return ConvNet(tuple(body), head_kernel, head_bias)
