"""raman-edge device runtime: spectra, features, model bundles and classification on NumPy alone.

Its names (``load_bundle``, ``Classifier``, ...) are loaded when first used, so a part that needs none of
them (the uplink) starts without NumPy; TensorFlow and SciPy are never needed here.
"""
from importlib import import_module

#: The package version, the one place it is written (pyproject.toml reads it from here).
__version__ = "0.1.0"

#: Each name this package offers -> the module that defines it.
_WHERE = {"RamanEdgeError": "device.errors", "ModelBundle": "device.inference.bundle",
          "load_bundle": "device.inference.bundle", "Classifier": "device.inference.classifier",
          "Prediction": "device.inference.classifier", "FEATURE_NAMES": "device.inference.features",
          "engineered_features": "device.inference.features", "Resampler": "device.inference.resample",
          "resample": "device.inference.resample", "Axis": "device.inference.spectrum",
          "Spectrum": "device.inference.spectrum"}

__all__ = [*_WHERE, "__version__"]


def __getattr__(name: str):
    if name not in _WHERE:
        raise AttributeError(f"module 'device' has no attribute {name!r}")
    return getattr(import_module(_WHERE[name]), name)
