"""Error types raised by the device runtime.

Every error a user can cause carries a message that says what is wrong and what to do about it.
The command-line tools print these messages instead of tracebacks.
"""


class RamanEdgeError(Exception):
    """Base class of every error raised on purpose by raman-edge."""


class SpectrumError(RamanEdgeError, ValueError):
    """A spectrum is unusable as given (shape, values or axis)."""


class NotOneDimensionalError(SpectrumError):
    """Axis or intensities are not 1-D arrays."""


class LengthMismatchError(SpectrumError):
    """Axis and intensities differ in length."""


class TooFewPointsError(SpectrumError):
    """A spectrum has fewer points than the computation needs."""


class NonFiniteError(SpectrumError):
    """A spectrum holds NaN or infinite values."""


class AxisNotMonotonicError(SpectrumError):
    """The Raman-shift axis is not strictly increasing or strictly decreasing."""


class AxisCoverageError(SpectrumError):
    """A spectrum does not cover the model's Raman-shift axis."""


class InvalidAxisError(SpectrumError):
    """A model axis (start, stop, points) is malformed."""


class SpectrumFileError(RamanEdgeError):
    """A spectrum file cannot be read or parsed."""


class BundleError(RamanEdgeError):
    """A model bundle is missing, corrupt, tampered with or of an unknown version."""


class LibraryError(BundleError):
    """A reference library is missing, corrupt, tampered with, of an unknown version, or cannot take a spectrum."""


class SignatureError(BundleError):
    """A bundle or library is unsigned, signed by another key, or its signature does not match its card."""


class SigningKeyError(RamanEdgeError):
    """A signing key file cannot be used, or the ``cryptography`` package that signatures need is missing."""


class ResolutionError(RamanEdgeError):
    """An instrument's resolution is coarser than a model's, or a model needs it and it is not given."""


class BackendUnavailableError(RamanEdgeError):
    """The requested inference backend is not installed."""
