"""raman-edge device runtime: spectra, features, model bundles and classification on NumPy alone.

Importing this package loads NumPy and nothing heavier; TensorFlow and SciPy are never needed here.
"""
from device.errors import RamanEdgeError
from device.inference.bundle import ModelBundle, load_bundle
from device.inference.classifier import Classifier, Prediction
from device.inference.features import FEATURE_NAMES, engineered_features
from device.inference.resample import Resampler, resample
from device.inference.spectrum import Axis, Spectrum

#: The package version, the one place it is written (pyproject.toml reads it from here).
__version__ = "0.1.0"

__all__ = [
    "Axis", "Classifier", "FEATURE_NAMES", "ModelBundle", "Prediction", "RamanEdgeError", "Resampler",
    "Spectrum", "engineered_features", "load_bundle", "resample", "__version__",
]
