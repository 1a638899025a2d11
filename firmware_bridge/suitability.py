"""The system suitability test: is the instrument still calibrated? Band positions, resolution and SNR of a standard.

A measured spectrum of polystyrene (or cyclohexane) is checked against the standard's band positions
(:data:`firmware_bridge.raman_standards.RAMAN_STANDARDS`, ASTM E1840 values as customarily quoted), as commercial
analysers do before a session:

* **positions**: each reference band inside the spectrum's range and resolved at the instrument's resolution
  (no other reference band within :data:`RESOLVED_FWHM` line widths) must be found (a peak,
  :func:`firmware_bridge.calibration.find_peaks`, within :data:`SEARCH_CM` of it) and lie within
  ``tolerance_cm1`` of its reference position, widened by three times the band's own centre uncertainty
  (:func:`centroid_uncertainty`: a weak band's centre is known less well, and noise must not fail a healthy
  instrument); bands less than :data:`LOCATE_SNR` times the noise high are
  reported but not located; at least :data:`MIN_BANDS` bands must be located. A drifted
  laser line moves every band alike (0.3 nm at 785 nm: about 5 cm-1); a wrong wavelength polynomial moves
  them by different amounts;
* **resolution**: the median FWHM of the bands found, cm-1, at most ``max_fwhm_cm1``;
* **SNR**: the strongest band's height over the spectrum's noise, at least ``min_snr``.

Every figure is returned, so the record keeps why a test passed or failed.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from firmware_bridge.calibration import find_peaks, noise_level
from firmware_bridge.raman_standards import RAMAN_STANDARDS

#: A reference band is looked for within this distance of its position, cm-1.
SEARCH_CM = 15.0
#: Reference bands closer than this many line widths to another blend and pull each other's centres:
#: they are not checked.
RESOLVED_FWHM = 2.5
#: A band must stand this many times the noise above the spectrum's median to be located (weaker ones are
#: reported but not checked).
LOCATE_SNR = 15.0
#: Fewest bands a test must find.
MIN_BANDS = 3
#: Default tolerance on each band's position, cm-1.
TOLERANCE_CM = 2.0
#: Default largest median band width, cm-1 (a handheld's resolution: the OBP STS simulator's bands are 26).
MAX_FWHM_CM = 35.0
#: Default least SNR of the strongest band.
MIN_SNR = 20.0


@dataclass(frozen=True)
class Suitability:
    """The result of one system suitability test.

    Attributes
    ----------
    passed : bool
    standard : str
    bands : tuple of dict
        Each checked band: ``reference`` and ``found`` (cm-1; found None when missing or too weak to locate),
        ``error`` (cm-1), ``snr`` (its height over the noise) and ``limit`` (the largest error it may have, cm-1).
    fwhm_cm1 : float
        Median width of the bands found (NaN when none).
    snr : float
        The strongest band's height over the noise.
    limits : dict
        ``tolerance_cm1``, ``max_fwhm_cm1``, ``min_snr``, ``min_bands``.
    reasons : tuple of str
        Why it failed (empty when it passed).
    offset_cm1 : float
        Mean error of the bands located, cm-1 (NaN when none): the part a laser-line error gives, which
        moves every band alike.
    laser_nm_fit : float or None
        The laser line that would take :attr:`offset_cm1` away (:func:`fitted_laser_line`), when the test was
        given the configured one.
    """

    passed: bool
    standard: str
    bands: tuple
    fwhm_cm1: float
    snr: float
    limits: dict
    reasons: tuple
    offset_cm1: float = float("nan")
    laser_nm_fit: float | None = None

    def to_json(self) -> dict:
        """The result as the record and the control port give it."""
        return {"result": "PASS" if self.passed else "FAIL", "standard": self.standard, "bands": list(self.bands),
                "fwhm_cm1": None if np.isnan(self.fwhm_cm1) else round(self.fwhm_cm1, 2),
                "snr": round(self.snr, 1), "limits": self.limits, "reasons": list(self.reasons),
                "offset_cm1": None if np.isnan(self.offset_cm1) else round(self.offset_cm1, 2),
                "laser_nm_fit": None if self.laser_nm_fit is None else round(self.laser_nm_fit, 3)}


def fitted_laser_line(laser_nm: float, offset_cm1: float) -> float:
    """The laser line (nm) that moves every band back by ``offset_cm1`` when ``laser_nm`` was assumed.

    A shift is the laser's wavenumber less the scattered light's, so an error in the laser line adds the
    same ``1e7 / laser_nm - 1e7 / true`` cm-1 to every band: ``true = 1e7 / (1e7 / laser_nm - offset_cm1)``.
    """
    return 1e7 / (1e7 / laser_nm - offset_cm1)


def centroid_uncertainty(fwhm_cm1: float, snr: float) -> float:
    """Standard error (cm-1) of a band centre found in noise: about its width over twice its SNR."""
    return fwhm_cm1 / (2.0 * max(snr, 1e-12))


def system_suitability(shift, intensity, standard: str = "polystyrene", tolerance_cm1: float = TOLERANCE_CM,
                       max_fwhm_cm1: float = MAX_FWHM_CM, min_snr: float = MIN_SNR,
                       laser_nm: float | None = None) -> Suitability:
    """Test one measured spectrum of ``standard`` (see the module docstring).

    Parameters
    ----------
    shift : array_like, shape (N,)
        Raman shift, cm-1, increasing (as :func:`firmware_bridge.measure.measure` returns it).
    intensity : array_like, shape (N,)
        Dark-subtracted intensity.
    standard : str
        A key of :data:`firmware_bridge.raman_standards.RAMAN_STANDARDS`.
    tolerance_cm1, max_fwhm_cm1, min_snr : float
        The limits.
    laser_nm : float, optional
        The laser line the shifts were computed with: the result then gives the line that fits the bands.
    """
    x = np.asarray(shift, dtype=np.float64)
    y = np.asarray(intensity, dtype=np.float64)
    limits = {"tolerance_cm1": tolerance_cm1, "max_fwhm_cm1": max_fwhm_cm1, "min_snr": min_snr,
              "min_bands": MIN_BANDS}
    centres, widths = find_peaks(y)
    pixels = np.arange(x.size, dtype=np.float64)
    found = np.interp(centres, pixels, x)
    step = np.gradient(x)
    width_cm = widths * np.interp(centres, pixels, step)
    reference = np.array([b for b in RAMAN_STANDARDS[standard] if x[0] + SEARCH_CM <= b <= x[-1] - SEARCH_CM])
    fwhm = float(np.nanmedian(width_cm)) if np.isfinite(width_cm).any() else float("nan")
    line = fwhm if np.isfinite(fwhm) else 3 * float(np.median(step))
    resolved = [b for b in reference if np.all((np.abs(reference - b) >= RESOLVED_FWHM * line) | (reference == b))]
    noise = max(noise_level(y), 1e-12)
    base = float(np.median(y))
    bands, band_widths = [], []
    for b in resolved:
        near = np.flatnonzero(np.abs(found - b) <= SEARCH_CM)
        hit = near[np.argmin(np.abs(found[near] - b))] if near.size else None
        height = (float(np.interp(found[hit], x, y)) - base) / noise if hit is not None else 0.0
        located = hit is not None and height >= LOCATE_SNR
        if located:
            band_widths.append(float(width_cm[hit]))
        bands.append({"reference": float(b), "found": round(float(found[hit]), 2) if located else None,
                      "error": round(float(found[hit] - b), 2) if located else None, "snr": round(float(height), 1),
                      "limit": round(tolerance_cm1 + 3 * centroid_uncertainty(line, height), 2) if located else None})
    snr = float((y.max() - base) / noise)
    if len(band_widths) >= MIN_BANDS:  # the standard's own resolved bands, not every peak, give the resolution
        fwhm = float(np.median(band_widths))
    reasons = []
    present = [band for band in bands if band["found"] is not None]
    off = [band for band in present if abs(band["error"]) > band["limit"]]
    offset = float(np.mean([band["error"] for band in present])) if present else float("nan")
    fit = fitted_laser_line(laser_nm, offset) if laser_nm is not None and present else None
    if not bands:
        width = f"its peaks are {fwhm:.0f} cm-1 wide" if np.isfinite(fwhm) else "no peak stands out at all"
        reasons.append(f"no {standard} band inside the range is resolved ({width}): the test needs a spectrometer "
                       "that separates the standard's bands")
    elif len(present) < MIN_BANDS:
        reasons.append(f"only {len(present)} of the {len(bands)} resolved {standard} bands found (at least {MIN_BANDS} "
                       "needed): is the standard in the beam and the laser on?")
    if off:
        hint = f": {fit:.3f} nm fits the bands' mean offset" if fit is not None else ""
        reasons.append(f"bands off their positions by more than {tolerance_cm1:g} cm-1 (and their noise): " + ", ".join(
            f"{band['reference']:g} at {band['found']:g} ({band['error']:+.1f})" for band in off)
                       + f"; check the laser line (spectrometer.laser_nm{hint}) and the wavelength calibration")
    if bands and np.isfinite(fwhm) and fwhm > max_fwhm_cm1:
        reasons.append(f"resolution: bands {fwhm:.1f} cm-1 wide (FWHM), more than {max_fwhm_cm1:g}: check the focus "
                       "and the slit")
    if snr < min_snr:
        reasons.append(f"SNR {snr:.0f}, below {min_snr:g}: lengthen the integration or check the laser power")
    return Suitability(not reasons, standard, tuple(bands), fwhm, snr, limits, tuple(reasons), offset, fit)
