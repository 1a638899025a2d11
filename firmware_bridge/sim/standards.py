"""Spectra of the reference standards as a simulator shows them: polystyrene, cyclohexane and SRM 2241.

Polystyrene or cyclohexane serve the axis and the suitability test, SRM 2241 the intensity response.

The calibration commands and the suitability test are checked, and instruments calibrated in the transfer
benchmark, by showing these to a simulated spectrometer as its scene (:func:`write_scene`).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from firmware_bridge.raman_standards import RAMAN_STANDARDS
from firmware_bridge.response import SRM_2241

#: Relative heights of polystyrene's bands (:data:`~firmware_bridge.raman_standards.RAMAN_STANDARDS` order; 1001 cm-1
#: the strongest).
POLYSTYRENE_HEIGHTS = (0.25, 0.1, 1.0, 0.3, 0.2, 0.15, 0.1, 0.3, 0.15, 0.3, 0.6)
#: Relative heights of cyclohexane's bands (the same order; 801 cm-1 the strongest in the fingerprint, the C-H
#: stretches near it), roughly as its spectrum shows them: a simulator's scene, not reference intensities.
CYCLOHEXANE_HEIGHTS = (0.05, 0.2, 1.0, 0.4, 0.15, 0.3, 0.5, 0.1, 0.9, 0.8, 0.7)
#: Width (FWHM) of the standards' bands, cm-1.
POLYSTYRENE_FWHM_CM = 6.0
#: How far SRM 2241's glow is continued past each end of its certified range, cm-1 (the glass glows there
#: too, so the scene has no cliff at the range's edges).
SRM_2241_CONTINUED_CM = 150.0


def _bands(standard: str, heights: tuple) -> tuple[np.ndarray, np.ndarray]:
    """Lorentzian bands at ``standard``'s reference positions on a small floor; (shift cm-1, intensity)."""
    x = np.linspace(-200.0, 3800.0, 8000)
    half = POLYSTYRENE_FWHM_CM / 2
    y = 0.02 + sum(h / (1 + ((x - b) / half) ** 2) for b, h in zip(RAMAN_STANDARDS[standard], heights, strict=True))
    return x, y


def polystyrene() -> tuple[np.ndarray, np.ndarray]:
    """Polystyrene's spectrum (:data:`POLYSTYRENE_HEIGHTS`); (shift cm-1, intensity)."""
    return _bands("polystyrene", POLYSTYRENE_HEIGHTS)


def cyclohexane() -> tuple[np.ndarray, np.ndarray]:
    """Cyclohexane's spectrum (:data:`CYCLOHEXANE_HEIGHTS`); (shift cm-1, intensity)."""
    return _bands("cyclohexane", CYCLOHEXANE_HEIGHTS)


def srm_2241() -> tuple[np.ndarray, np.ndarray]:
    """SRM 2241's luminescence: its certified polynomial, continued past its range; (shift cm-1, intensity)."""
    lo, hi = SRM_2241.valid
    x = np.linspace(lo - SRM_2241_CONTINUED_CM, hi + SRM_2241_CONTINUED_CM, 2400)
    return x, np.polynomial.polynomial.polyval(x, SRM_2241.coefficients)


def write_scene(path, shift: np.ndarray, intensity: np.ndarray) -> Path:
    """Write one spectrum as a scene file (two columns, cm-1 and intensity); returns ``path``."""
    np.savetxt(path, np.column_stack([shift, intensity]), delimiter=",")
    return Path(path)
