"""Pixel -> wavelength -> Raman shift, and the corrections applied to raw counts."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


def wavelengths(coefficients, pixels: int, first_pixel: int = 0) -> np.ndarray:
    """lambda(p) = sum_i c_i p^i (nm) for p = first_pixel ... first_pixel + pixels - 1."""
    p = np.arange(first_pixel, first_pixel + pixels, dtype=np.float64)
    return np.polynomial.polynomial.polyval(p, np.asarray(coefficients, dtype=np.float64))


def raman_shift(wavelength_nm, laser_nm: float) -> np.ndarray:
    """Raman shift (cm-1, Stokes positive) of wavelengths (nm) for the measured laser line (nm)."""
    return 1e7 / laser_nm - 1e7 / np.asarray(wavelength_nm, dtype=np.float64)


def wavelength_of_shift(shift_cm1, laser_nm: float) -> np.ndarray:
    """Wavelength (nm) at which a Raman shift (cm-1) appears for a laser line (nm)."""
    return 1.0 / (1.0 / laser_nm - np.asarray(shift_cm1, dtype=np.float64) * 1e-7)


@dataclass(frozen=True)
class Measurement:
    """A calibrated spectrum from a spectrometer, ready to be resampled onto a model's axis.

    Attributes
    ----------
    shift : ndarray, shape (N,)
        Raman shift, cm-1, increasing.
    intensity : ndarray, shape (N,)
        Dark-subtracted (and, for inverted detectors, inverted) counts.
    raw : ndarray
        The counts as the device sent them.
    meta : dict
        Device identity and settings.
    """

    shift: np.ndarray
    intensity: np.ndarray
    raw: np.ndarray
    meta: dict = field(default_factory=dict)
