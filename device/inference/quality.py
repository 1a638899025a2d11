"""Is a measured spectrum fit to classify? Saturated, too weak and flat spectra are refused with reasons.

(A spectrum that does not cover the model's axis is refused by the resampler, which never extrapolates.)

* **saturated**: at least :data:`~firmware_bridge.integrity.SATURATED_PIXELS` raw pixels at the detector's
  full scale (within 1 %; at zero for an inverted detector such as the TCD1304), where the driver reports its
  full scale;
* **flat**: no band at all, its maximum not above its median (:func:`is_flat`; a disconnected detector,
  the shutter closed, the laser dead, or a clipped or zero-filled export). This is the one definition of
  flat: the trainer refuses such spectra when it loads training data, and the SNR sweep of
  :mod:`trainer.data.degrade` cannot scale a spectrum that has no band height;
* **too weak**: the SNR measured on the dark-subtracted intensity (:func:`device.inference.snr.measured_snr`,
  the definition the SNR sweep of :mod:`trainer.data.degrade` sets) below the limit.
"""
from __future__ import annotations

import numpy as np

from device.inference.snr import band_height, measured_snr
from firmware_bridge.integrity import is_saturated, saturated_pixels

#: Default least SNR for a verdict.
MIN_SNR = 5.0
#: A band height (max - median) at most this share of the largest absolute intensity is no band.
FLAT_TOLERANCE = 1e-12


def is_flat(intensity) -> np.ndarray | bool:
    """True for a spectrum with no band: its maximum does not rise above its median.

    Parameters
    ----------
    intensity : array_like, shape (N,) or (n, N)
        One spectrum or a batch, any units.

    Returns
    -------
    bool, or ndarray of bool of shape (n,) for a batch
        Band height ``max - median`` at most :data:`FLAT_TOLERANCE` x the largest absolute intensity
        (so a constant spectrum, or one whose top half is a plateau, is flat).
    """
    y = np.asarray(intensity, dtype=np.float64)
    flat = np.asarray(band_height(y)) <= FLAT_TOLERANCE * np.abs(y).max(axis=-1)
    return bool(flat) if flat.ndim == 0 else flat


def problems(intensity: np.ndarray, raw: np.ndarray | None = None, meta: dict | None = None,
             min_snr: float = MIN_SNR) -> list[str]:
    """The reasons (each with what to do) why a measured spectrum should not be classified; empty when fit.

    Parameters
    ----------
    intensity : ndarray, shape (N,)
        Dark-subtracted counts.
    raw : ndarray, shape (N,), optional
        The counts as the detector sent them (for saturation).
    meta : dict, optional
        The measurement's metadata: ``full_scale`` (counts) and ``inverted`` when the driver knows them.
    min_snr : float
        Least measured SNR; 0 turns the check off.
    """
    meta = meta or {}
    y = np.asarray(intensity, dtype=np.float64)
    found = []
    full = meta.get("full_scale")
    if raw is not None and is_saturated(raw, full, bool(meta.get("inverted"))):
        at_limit = saturated_pixels(raw, full, bool(meta.get("inverted")))
        found.append(f"saturated: {at_limit} pixels at the detector's full scale ({full} counts); "
                         "shorten the integration time or lower the laser power")
    if is_flat(y):
        found.append("flat: the spectrum holds no band (its maximum is not above its median); check the laser, "
                     "the sample and the light path")
    elif min_snr > 0:
        snr = measured_snr(y)
        if snr < min_snr:
            found.append(f"too weak: SNR {snr:.1f}, below {min_snr:g}; lengthen the integration time, average "
                         "more spectra or bring the sample into focus")
    return found
