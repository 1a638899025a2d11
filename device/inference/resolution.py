"""Resolution harmonisation: spectra of instruments with different line widths brought to one width.

Instruments differ in resolution: the same sample's bands are 5 cm-1 wide on one and 35 on another, and a
model trained on one sees another's bands as a different pattern. As in the harmonisation of CEN CWA 18134
(the ramanchada2 project), every spectrum is brought to one common, coarser resolution by Gaussian
broadening: a model states the resolution its training spectra were brought to, each instrument states its
own, and the device widens its spectra by the difference. Line widths of Gaussian profiles add in quadrature,
so the extra width is ``sqrt(model**2 - instrument**2)``; for the same reason a resolution measured as the
FWHM of a standard's bands (the system suitability test's ``fwhm_cm1``, which includes the bands' own width)
gives the same difference as the instrument's line spread alone, as long as both are measured on the same
standard. Broadening cannot sharpen: an instrument coarser than the model cannot be harmonised.
"""
from __future__ import annotations

import numpy as np

#: FWHM of a Gaussian over its standard deviation, 2 sqrt(2 ln 2).
FWHM_PER_SIGMA = 2.0 * np.sqrt(2.0 * np.log(2.0))
#: How much coarser (relative) an instrument may measure than the model's resolution and still be used, for the
#: scatter of a measured band width between suitability tests; such a spectrum is not broadened.
COARSER_TOLERANCE = 0.1


def broaden(Y: np.ndarray, x: np.ndarray, fwhm_cm1) -> np.ndarray:
    """``Y``'s rows convolved with Gaussians of FWHM ``fwhm_cm1`` cm-1 (at the axis' median step): (n, N).

    In the Fourier domain, all rows at once; the ends are held beyond the axis (edge padding), so nothing
    wraps around.

    Parameters
    ----------
    Y : ndarray, shape (n, N)
        Spectra on ``x``.
    x : ndarray, shape (N,)
        Raman shift, cm-1, ascending.
    fwhm_cm1 : float or ndarray, shape (n,)
        Width added to every row (or to each), cm-1; 0 leaves a row as it is.
    """
    Y = np.asarray(Y, dtype=np.float64)
    fwhm = np.broadcast_to(np.asarray(fwhm_cm1, dtype=np.float64), (Y.shape[0],))
    sigma = fwhm / FWHM_PER_SIGMA / float(np.median(np.diff(x)))  # points
    pad = int(min(Y.shape[1], np.ceil(4.0 * sigma.max()) + 1))
    padded = np.pad(Y, ((0, 0), (pad, pad)), mode="edge")
    frequency = np.fft.rfftfreq(padded.shape[1])  # cycles per point
    transfer = np.exp(-2.0 * (np.pi * sigma[:, None] * frequency) ** 2)
    return np.fft.irfft(np.fft.rfft(padded, axis=1) * transfer, n=padded.shape[1], axis=1)[:, pad:pad + Y.shape[1]]


def coarsest_accepted(fwhm_cm1: float) -> float:
    """The widest band (FWHM, cm-1) still taken as this resolution: it, plus :data:`COARSER_TOLERANCE`."""
    return fwhm_cm1 * (1.0 + COARSER_TOLERANCE)


def coarser_than(instrument_fwhm_cm1: float, model_fwhm_cm1: float) -> bool:
    """True when an instrument's resolution is too coarse to be harmonised to the model's (beyond the tolerance)."""
    return instrument_fwhm_cm1 > coarsest_accepted(model_fwhm_cm1)


def harmonising_fwhm(instrument_fwhm_cm1: float, model_fwhm_cm1: float) -> float:
    """The Gaussian FWHM (cm-1) that widens an instrument's bands to the model's resolution; 0 if none is needed.

    Raises
    ------
    ValueError
        If the instrument is coarser than the model beyond :data:`COARSER_TOLERANCE`.
    """
    if coarser_than(instrument_fwhm_cm1, model_fwhm_cm1):
        raise ValueError(f"a resolution of {instrument_fwhm_cm1:g} cm-1 is coarser than {model_fwhm_cm1:g} cm-1 "
                         "and cannot be broadened to it")
    return float(np.sqrt(max(model_fwhm_cm1 ** 2 - instrument_fwhm_cm1 ** 2, 0.0)))


def resolution_problem(instrument_fwhm_cm1: float | None, model_fwhm_cm1: float | None,
                       setting: str = "spectrometer.resolution_cm1") -> str | None:
    """Why spectra of an instrument of this resolution cannot be given to a model of that one, or None.

    Parameters
    ----------
    instrument_fwhm_cm1 : float or None
        The instrument's resolution (``spectrometer.resolution_cm1``), cm-1; None when not configured.
    model_fwhm_cm1 : float or None
        The resolution the model's training spectra were brought to (its card's ``resolution``); None: the
        model takes spectra as recorded.
    """
    if model_fwhm_cm1 is None:
        return None
    if instrument_fwhm_cm1 is None:
        return (f"the model was trained on spectra brought to a resolution of {model_fwhm_cm1:g} cm-1 and "
                f"{setting} is not given: run raman-device sst on the instrument and give its fwhm_cm1 as {setting}")
    if coarser_than(instrument_fwhm_cm1, model_fwhm_cm1):
        return (f"the spectrometer's resolution ({instrument_fwhm_cm1:g} cm-1) is coarser than the model's "
                f"({model_fwhm_cm1:g} cm-1): retrain with raman-train fit --resolution-cm1 "
                f"{instrument_fwhm_cm1:g} or more, or check the instrument's focus")
    return None
