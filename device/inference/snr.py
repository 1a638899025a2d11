"""Signal-to-noise ratio of a Raman spectrum: its band height over its noise standard deviation.

The one definition of SNR, which :mod:`trainer.data.degrade` sets (on the clean signal, with noise of
known variance) and :func:`measured_snr` reads off one measured spectrum (the too-weak check of
:mod:`device.inference.quality`)::

    SNR = H / sigma,    H = max(y) - median(y)  (band_height),    sigma = RMS over the axis of the noise sd.

On one noisy spectrum, ``H`` is taken of its 3-point moving average (which keeps noise spikes from posing
as bands) and ``sigma`` is estimated from its second differences (1.4826 MAD / sqrt(6), which white noise
gives and smooth Raman bands barely change). The reading is within ~15 % at SNR >= 5 and high below
(noise still lifts the maximum: a true SNR of 2 reads about 3).
"""
from __future__ import annotations

import numpy as np


def band_height(intensity):
    """Band height ``max(y) - median(y)`` of one spectrum (N,) or of each of a batch (n, N), in its units.

    Returns
    -------
    float, or ndarray of float64 of shape (n,) for a batch
    """
    y = np.asarray(intensity, dtype=np.float64)
    height = y.max(axis=-1) - np.median(y, axis=-1)
    return float(height) if height.ndim == 0 else height


def noise_sd(intensity):
    """Noise standard deviation of one spectrum (N,) or of each of a batch (n, N), from second differences.

    Returns
    -------
    float, or ndarray of float64 of shape (n,) for a batch
        1.4826 x the median absolute deviation of the second differences, over sqrt(6), in the units of
        the spectrum.
    """
    d2 = np.diff(np.asarray(intensity, dtype=np.float64), 2, axis=-1)
    mad = np.median(np.abs(d2 - np.median(d2, axis=-1, keepdims=True)), axis=-1)
    sd = 1.4826 * mad / np.sqrt(6.0)
    return float(sd) if sd.ndim == 0 else sd


def measured_snr(intensity):
    """SNR read off one measured spectrum (N,) or each of a batch (n, N), N >= 3 (inf when no noise is seen).

    Returns
    -------
    float, or ndarray of float64 of shape (n,) for a batch
        :func:`band_height` of the 3-point moving average over :func:`noise_sd`.
    """
    y = np.asarray(intensity, dtype=np.float64)
    smooth = (y[..., :-2] + y[..., 1:-1] + y[..., 2:]) / 3.0
    height, sd = np.asarray(band_height(smooth)), np.asarray(noise_sd(y))
    snr = np.divide(height, sd, out=np.full(sd.shape, np.inf), where=sd > 0)
    return float(snr) if snr.ndim == 0 else snr
