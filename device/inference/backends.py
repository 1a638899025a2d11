"""Inference backends: each turns a bundle's network inputs (n, D) into class probabilities (n, C)."""
from __future__ import annotations

import numpy as np

from device.errors import BackendUnavailableError, BundleError
from device.inference.bundle import ModelBundle
from device.inference.optional import tflite_interpreter

BACKENDS = ("numpy", "tflite")


class NumpyBackend:
    """The network evaluated with NumPy from ``model.npz``: no ML runtime needed."""

    name = "numpy"

    def __init__(self, bundle: ModelBundle):
        self._network = bundle.network

    def probabilities(self, Z: np.ndarray) -> np.ndarray:
        """Class probabilities for the network's inputs ``Z`` (n, D): shape (n, C), float64."""
        return self._network.probabilities(Z)


class TFLiteBackend:
    """The network evaluated by a TFLite interpreter from ``model.tflite``.

    The runtime is the first available of LiteRT (``ai_edge_litert``), ``tflite_runtime`` and
    ``tensorflow.lite``; :attr:`provider` says which.
    """

    name = "tflite"

    def __init__(self, model: bytes, input_size: int):
        Interpreter, self.provider = tflite_interpreter()
        self._interp = Interpreter(model_content=model)
        self._in = self._interp.get_input_details()[0]["index"]
        self._out = self._interp.get_output_details()[0]["index"]
        self._width = input_size
        self._batch = None

    @classmethod
    def from_bundle(cls, bundle: ModelBundle) -> "TFLiteBackend":
        """The backend for a bundle's ``model.tflite``."""
        try:
            return cls(bundle.tflite_path.read_bytes(), bundle.input_size)
        except (ValueError, RuntimeError) as exc:
            raise BundleError(f"model bundle {bundle.path}: model.tflite cannot be loaded ({exc}); "
                              "re-export the bundle.") from None

    def probabilities(self, Z: np.ndarray) -> np.ndarray:
        """Class probabilities for the network's inputs ``Z`` (n, D): shape (n, C), float32 precision."""
        n = Z.shape[0]
        if n != self._batch:
            self._interp.resize_tensor_input(self._in, [n, self._width])
            self._interp.allocate_tensors()
            self._batch = n
        self._interp.set_tensor(self._in, np.ascontiguousarray(Z, dtype=np.float32))
        self._interp.invoke()
        return self._interp.get_tensor(self._out).astype(np.float64)


def make_backend(bundle: ModelBundle, name: str = "numpy"):
    """Create the backend called ``name`` (one of :data:`BACKENDS`) for ``bundle``."""
    if name == "numpy":
        return NumpyBackend(bundle)
    if name == "tflite":
        return TFLiteBackend.from_bundle(bundle)
    raise BackendUnavailableError(f"unknown backend {name!r}; choose one of {', '.join(BACKENDS)}.")
