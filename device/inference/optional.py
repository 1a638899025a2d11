"""Optional imports, each with a clear message when missing."""
from __future__ import annotations

from device.errors import BackendUnavailableError

#: TFLite interpreter providers, in order of preference.
TFLITE_PROVIDERS = ("ai_edge_litert.interpreter", "tflite_runtime.interpreter", "tensorflow.lite")


def tflite_interpreter():
    """Return ``(Interpreter class, provider module name)`` of the first TFLite runtime installed.

    Order: ``ai_edge_litert`` (LiteRT, recommended), ``tflite_runtime`` (legacy, Python <= 3.11 and
    NumPy < 2), then full TensorFlow.

    Raises
    ------
    BackendUnavailableError
        If none is installed.
    """
    import importlib

    for name in TFLITE_PROVIDERS:
        try:
            module = importlib.import_module(name)
        except ImportError:
            continue
        return module.Interpreter, name.split(".")[0]
    raise BackendUnavailableError(
        "no TFLite runtime is installed; install one with `pip install 'raman-edge[device]'` "
        "(ai-edge-litert) or `pip install 'raman-edge[tflite]'` (tflite-runtime, Python <= 3.11), "
        "or use the NumPy backend (--backend numpy), which needs nothing else."
    )
