"""Inferior acquisitions: spectra as a weaker, shorter, noisier measurement would record them.

Part B of the methods compares models on spectra taken with too little laser power or too short an
integration, and trains the SE-ResNet with augmentation that imitates such acquisitions. This module
is the one implementation of that degradation, for the accuracy-against-SNR sweep (:func:`degrade`
at each of :data:`SNR_LEVELS`) and for training (:func:`augment`). NumPy only.

The acquisition model
---------------------
The input spectra ``Y`` (n, N) are taken as the noise-free signal of a full acquisition (laser power
x integration time factor s = 1), in any units (counts, min-max scaled, ...). Everything is set
relative to each spectrum's band height ``H = max(y) - median(y)`` (:func:`device.inference.snr.band_height`),
so the units do not matter.

1. **Shift** (``shift_cm``, default 0): the spectrum is moved rigidly by ``d`` cm-1, ``y(x - d)`` by
   linear interpolation, holding the end values beyond the ends of the axis (positive ``d`` moves
   bands to higher shift). ``y`` below is the shifted spectrum and ``H`` its band height.
2. **Another instrument** (``broaden_cm`` and ``response``, default none): the line spread is widened by a
   Gaussian of FWHM ``broaden_cm`` cm-1 (a coarser resolution), and the spectrum multiplied by a relative
   response ``r(x)`` (positive, one curve per spectrum: the weight another instrument's optics and detector
   give each shift). ``y`` below is the result and ``H`` its band height.
3. **Fluorescence** (``background``, default 0): a smooth, positive background ``b = a H c(x)`` is
   added, where ``a`` is the relative amplitude and ``c`` a broad Gaussian of peak 1 on the axis, its
   centre uniform over the axis widened by a quarter of its span each side and its standard deviation
   uniform in 0.3-1 span.
4. **Scaling**: a factor ``s`` in (0, 1] scales signal and background together: ``s (y + b)``.
5. **Noise**: shot noise of variance ``g s max(y + b, 0)`` at each point (Poisson in the
   large-count limit, drawn as Gaussian) plus read noise of constant variance ``sigma_r^2``. The
   constants are fixed per spectrum so that the full acquisition has SNR ``full_snr`` (F) with a
   fraction ``shot_fraction`` (f) of its mean noise variance from shot noise::

       g m = f H^2 / F^2,    sigma_r^2 = (1 - f) H^2 / F^2,    m = mean over the axis of max(y + b, 0).

6. **Cosmic spikes** (``spikes``, default 0): a Poisson number of spikes per spectrum with that mean,
   each one or two points wide (equally likely) at a uniform position, amplitude uniform in
   [0.5, 3] x ``s H``, added after the noise.

**SNR** (the x axis of the sweep) is that of :mod:`device.inference.snr`, the one the device measures: the
band height of the scaled clean signal over the RMS along the axis of the added noise's standard deviation::

    SNR(s) = s H / sqrt(g s m + sigma_r^2) = F s / sqrt(f s + 1 - f),

the same for every spectrum, so a requested SNR fixes one ``s`` (:func:`signal_scale`, the positive
root of ``s^2 - f r^2 s - (1 - f) r^2 = 0`` with ``r = SNR / F``): ``s = r^2`` for pure shot noise,
``s = r`` for pure read noise, ``s = 1`` at ``SNR = F``. An SNR above F would need more than the full
acquisition and is refused. Since ``m`` includes the background, the requested SNR holds with or
without it: fluorescence moves shot noise along the axis (more under the background, less on the
bands) rather than adding to the total. ``SNR = inf`` means no scaling and no noise (s = 1); the
shift, background and spikes still apply when asked for.

Randomness: each effect draws from its own child stream of the given generator, so for one seed the
background, the spike positions and the spike factors are the same at every SNR level (common random
numbers for the sweep), and ``degrade(..., snr) - s * degrade(..., inf)`` is the noise alone.
"""
from __future__ import annotations

import numpy as np

from device.inference.quality import is_flat
from device.inference.resolution import broaden
from device.inference.snr import band_height
from device.inference.spectrum import Axis

#: The sweep's default SNR levels, from the full acquisition down.
SNR_LEVELS = (300.0, 100.0, 50.0, 20.0, 10.0, 5.0, 2.0)
#: SNR of the full acquisition (s = 1) assumed for the input spectra.
FULL_SNR = 300.0
#: Share of the full acquisition's mean noise variance that is shot noise.
SHOT_FRACTION = 0.5
#: Range of a cosmic spike's amplitude, in units of the scaled band height s H.
SPIKE_HEIGHT = (0.5, 3.0)
#: The background's centre lies within the axis widened by this share of its span on each side.
BACKGROUND_CENTRE_SLACK = 0.25
#: Range of the background's standard deviation, in units of the axis span.
BACKGROUND_WIDTH = (0.3, 1.0)
#: Training default: largest tilt and curvature of another instrument's response (Legendre P1 and P2
#: coefficients over the axis): up to +-30 % at the ends. A prior on how instruments differ, not chosen by
#: any score: cross-validation on one instrument's data cannot measure what it buys on another.
RESPONSE_MAX = 0.3
#: Training default: largest widening of the line spread, FWHM cm-1 (resolutions of 785 nm handhelds differ
#: by a few to about 10 cm-1).
BROADEN_MAX_CM = 8.0


def signal_scale(snr, full_snr: float = FULL_SNR, shot_fraction: float = SHOT_FRACTION):
    """Laser power x integration time factor ``s`` that gives a requested SNR.

    Parameters
    ----------
    snr : float or array_like
        Requested SNR, in (0, ``full_snr``] or ``inf`` (no degradation, s = 1).
    full_snr : float
        SNR of the full acquisition (s = 1).
    shot_fraction : float
        Share of the full acquisition's mean noise variance that is shot noise, in [0, 1].

    Returns
    -------
    float or ndarray
        ``s`` in (0, 1], a float for a scalar ``snr``, else an array of the shape of ``snr``.

    Raises
    ------
    ValueError
        For an SNR that is not a number, not positive or above ``full_snr``, or bad model constants.
    """
    full_snr, f = _check_model(full_snr, shot_fraction)
    value = _check_snr(np.asarray(snr, dtype=np.float64), full_snr)
    r2 = (np.where(np.isinf(value), full_snr, value) / full_snr) ** 2
    s = 0.5 * (f * r2 + np.sqrt((f * r2) ** 2 + 4.0 * (1.0 - f) * r2))
    return float(s) if s.ndim == 0 else s


def degrade(Y, shift, snr, rng: np.random.Generator, *, full_snr: float = FULL_SNR,
            shot_fraction: float = SHOT_FRACTION, background=0.0, shift_cm=0.0, spikes=0.0, broaden_cm=0.0,
            response=None) -> np.ndarray:
    """The spectra as an acquisition of the requested SNR would record them (module docstring).

    ``snr``, ``background``, ``shift_cm``, ``spikes`` and ``broaden_cm`` each take one value for every spectrum
    or an array of shape (n,) with one value per spectrum.

    Parameters
    ----------
    Y : array_like, shape (n, N)
        Noise-free spectra of the full acquisition, any units; not modified.
    shift : array_like, shape (N,), or Axis
        Raman shift, cm-1, strictly increasing.
    snr : float or array_like, shape (n,)
        Requested SNR, in (0, ``full_snr``], or ``inf`` for no scaling and no noise.
    rng : numpy.random.Generator
        Source of every random draw.
    full_snr : float
        SNR of the full acquisition.
    shot_fraction : float
        Share of the full acquisition's mean noise variance that is shot noise, in [0, 1].
    background : float or array_like, shape (n,)
        Peak of the fluorescence background relative to the band height H, >= 0 (0: none).
    shift_cm : float or array_like, shape (n,)
        Rigid shift of the spectrum, cm-1 (positive: towards higher shift).
    spikes : float or array_like, shape (n,)
        Mean number of cosmic spikes per spectrum, >= 0.
    broaden_cm : float or array_like, shape (n,)
        FWHM of the Gaussian the line spread is widened by, cm-1, >= 0 (0: none).
    response : array_like, shape (N,) or (n, N), optional
        Relative response the spectra are multiplied by, positive.

    Returns
    -------
    ndarray of float64, shape (n, N)

    Raises
    ------
    ValueError
        For non-finite or wrongly shaped spectra or axis, a response that is not positive, a flat spectrum
        (H = 0), an SNR that is not
        positive or above ``full_snr``, negative background or spike rates, bad model constants, or
        shot noise asked of a spectrum with no positive intensity.
    TypeError
        If ``rng`` is not a numpy Generator.
    """
    Y = _spectra(Y)
    x = _axis(shift, Y.shape[1])
    _check_rng(rng)
    n = Y.shape[0]
    full_snr, f = _check_model(full_snr, shot_fraction)
    snr = _check_snr(_per_spectrum(snr, n, "snr", finite=False), full_snr)
    background = _per_spectrum(background, n, "background", minimum=0.0)
    shift_cm = _per_spectrum(shift_cm, n, "shift_cm")
    spikes = _per_spectrum(spikes, n, "spikes", minimum=0.0)
    broaden_cm = _per_spectrum(broaden_cm, n, "broaden_cm", minimum=0.0)
    if response is not None:
        response = np.asarray(response, dtype=np.float64)
        if response.shape not in ((Y.shape[1],), Y.shape) or not np.all(np.isfinite(response) & (response > 0)):
            raise ValueError(f"response must be positive and finite, of shape ({Y.shape[1]},) or {Y.shape}")
    s = signal_scale(snr, full_snr, f)
    seeds = np.random.SeedSequence(rng.integers(0, 2**32, size=4)).spawn(3)
    background_rng, noise_rng, spike_rng = (np.random.default_rng(seed) for seed in seeds)

    clean = _shift(Y, x, shift_cm) if np.any(shift_cm) else Y
    if np.any(broaden_cm):
        clean = broaden(clean, x, broaden_cm)
    if response is not None:
        clean = clean * response
    height = band_height(clean)
    flat = is_flat(clean)
    if np.any(flat):
        i = int(np.flatnonzero(flat)[0])
        raise ValueError(f"spectrum {i} is flat (device.inference.quality.is_flat: its maximum is not above its "
                         "median), so it has no band height and its SNR is undefined; remove it or check the data.")
    total = clean
    if np.any(background):
        total = clean + (background * height)[:, None] * _fluorescence(x, n, background_rng)
    out = s[:, None] * total
    noisy = np.isfinite(snr)
    if np.any(noisy):
        variance = (height / full_snr) ** 2  # mean noise variance of the full acquisition
        positive = np.maximum(total, 0.0)
        m = positive.mean(axis=1)
        if f > 0 and np.any(noisy & (m == 0)):
            i = int(np.flatnonzero(noisy & (m == 0))[0])
            raise ValueError(f"spectrum {i} has no positive intensity, so it has no shot noise; "
                             "offset it to non-negative values or use shot_fraction=0.")
        g = np.divide(f * variance, m, out=np.zeros(n), where=m > 0)
        std = np.sqrt((g * s)[:, None] * positive + ((1.0 - f) * variance)[:, None])
        out += np.where(noisy[:, None], std, 0.0) * noise_rng.standard_normal(out.shape)
    if np.any(spikes):
        _add_spikes(out, s * height, spikes, spike_rng)
    return out


def augment(Y, shift, rng: np.random.Generator, *, snr_range=(5.0, FULL_SNR), background_max: float = 0.5,
            shift_max_cm: float = 3.0, spike_rate: float = 0.3, response_max: float = RESPONSE_MAX,
            broaden_max_cm: float = BROADEN_MAX_CM, full_snr: float = FULL_SNR,
            shot_fraction: float = SHOT_FRACTION) -> np.ndarray:
    """Training augmentation: each spectrum degraded with its own random acquisition on its own instrument.

    Per spectrum: SNR log-uniform in ``snr_range``, background amplitude uniform in
    [0, ``background_max``] x H, shift uniform in +-``shift_max_cm`` cm-1, Poisson(``spike_rate``)
    cosmic spikes, a line spread widened by a FWHM uniform in [0, ``broaden_max_cm``] cm-1 and a response
    ``1 + a P1(u) + b P2(u)`` (Legendre polynomials of the position ``u`` in [-1, 1] along the axis) with
    ``a`` and ``b`` uniform in +-``response_max``; then :func:`degrade`, vectorised over the batch.

    Parameters
    ----------
    Y : array_like, shape (n, N)
        Noise-free spectra of the full acquisition, any units; not modified.
    shift : array_like, shape (N,), or Axis
        Raman shift, cm-1, strictly increasing.
    rng : numpy.random.Generator
        Source of every random draw.
    snr_range : (float, float)
        Lowest and highest SNR, 0 < low <= high <= ``full_snr``.
    background_max : float
        Largest background peak relative to H, >= 0.
    shift_max_cm : float
        Largest rigid shift, cm-1, >= 0.
    spike_rate : float
        Mean number of cosmic spikes per spectrum, >= 0.
    response_max : float
        Largest tilt and curvature of the response, in [0, 0.5) (the response stays positive).
    broaden_max_cm : float
        Largest widening of the line spread, FWHM cm-1, >= 0.
    full_snr, shot_fraction : float
        As for :func:`degrade`.

    Returns
    -------
    ndarray of float64, shape (n, N)

    Raises
    ------
    ValueError, TypeError
        As for :func:`degrade`, and for a bad ``snr_range`` or a negative or non-finite setting.
    """
    Y = _spectra(Y)
    _check_rng(rng)
    n = Y.shape[0]
    full_snr, _ = _check_model(full_snr, shot_fraction)
    try:
        low, high = (float(v) for v in snr_range)
    except (TypeError, ValueError):
        raise ValueError(f"snr_range must be two numbers (low, high); got {snr_range!r}") from None
    if not (0 < low <= high <= full_snr):
        raise ValueError(f"snr_range must satisfy 0 < low <= high <= full_snr ({full_snr:g}); "
                         f"got ({low:g}, {high:g})")
    background_max = _setting(background_max, "background_max")
    shift_max_cm = _setting(shift_max_cm, "shift_max_cm")
    spike_rate = _setting(spike_rate, "spike_rate")
    response_max = _setting(response_max, "response_max")
    if response_max >= 0.5:
        raise ValueError(f"response_max must be below 0.5, so the response stays positive; got {response_max:g}")
    broaden_max_cm = _setting(broaden_max_cm, "broaden_max_cm")
    snr = np.clip(np.exp(rng.uniform(np.log(low), np.log(high), n)), low, high)
    background = rng.uniform(0.0, background_max, n)
    shift_cm = rng.uniform(-shift_max_cm, shift_max_cm, n)
    broaden_cm = rng.uniform(0.0, broaden_max_cm, n) if broaden_max_cm else 0.0
    response = None
    if response_max:
        u = np.linspace(-1.0, 1.0, Y.shape[1])
        tilt, curvature = rng.uniform(-response_max, response_max, (2, n, 1))
        response = 1.0 + tilt * u + curvature * (1.5 * u * u - 0.5)
    return degrade(Y, shift, snr, rng, full_snr=full_snr, shot_fraction=shot_fraction,
                   background=background, shift_cm=shift_cm, spikes=spike_rate, broaden_cm=broaden_cm,
                   response=response)


def _shift(Y: np.ndarray, x: np.ndarray, d: np.ndarray) -> np.ndarray:
    """``Y[i]`` at ``x - d[i]`` by linear interpolation, end values held beyond the ends: (n, N)."""
    t = np.clip(x - d[:, None], x[0], x[-1])
    left = np.clip(np.searchsorted(x, t, side="right") - 1, 0, x.size - 2)
    w = (t - x[left]) / (x[left + 1] - x[left])
    return (1.0 - w) * np.take_along_axis(Y, left, axis=1) + w * np.take_along_axis(Y, left + 1, axis=1)


def _fluorescence(x: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` broad Gaussian backgrounds over ``x``, each of peak 1 on the axis: (n, N)."""
    span = x[-1] - x[0]
    slack = BACKGROUND_CENTRE_SLACK * span
    centre = rng.uniform(x[0] - slack, x[-1] + slack, n)
    width = rng.uniform(*BACKGROUND_WIDTH, n) * span
    curve = np.exp(-0.5 * ((x - centre[:, None]) / width[:, None]) ** 2)
    return curve / curve.max(axis=1, keepdims=True)


def _add_spikes(out: np.ndarray, height: np.ndarray, rate: np.ndarray, rng: np.random.Generator) -> None:
    """Add Poisson(``rate[i]``) spikes of 1-2 points and amplitude U(0.5, 3) x ``height[i]`` to row i."""
    rows = np.repeat(np.arange(out.shape[0]), rng.poisson(rate))
    wide = rng.integers(0, 2, rows.size)
    first = rng.integers(0, out.shape[1] - wide)
    amplitude = rng.uniform(*SPIKE_HEIGHT, rows.size) * height[rows]
    np.add.at(out, (rows, first), amplitude)
    two = wide == 1
    np.add.at(out, (rows[two], first[two] + 1), amplitude[two])


def _spectra(Y) -> np.ndarray:
    try:
        Y = np.asarray(Y, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError(f"Y must be an array of numbers; got {type(Y).__name__}") from None
    if Y.ndim != 2:
        raise ValueError(f"Y must be 2-D (spectra, points); got shape {Y.shape} "
                         "(for one spectrum pass Y[None, :])")
    if Y.shape[1] < 2:
        raise ValueError(f"each spectrum needs at least 2 points; got {Y.shape[1]}")
    bad = ~np.isfinite(Y)
    if bad.any():
        i, j = np.argwhere(bad)[0]
        raise ValueError(f"Y holds a non-finite value ({Y[i, j]}) in spectrum {i} at point {j}")
    return Y


def _axis(shift, points: int) -> np.ndarray:
    x = shift.values if isinstance(shift, Axis) else np.asarray(shift, dtype=np.float64)
    if x.shape != (points,):
        raise ValueError(f"shift must have shape ({points},), one Raman shift per point of Y; got {x.shape}")
    if not np.all(np.isfinite(x)):
        raise ValueError("shift holds non-finite values (NaN or inf)")
    if np.any(np.diff(x) <= 0):
        i = int(np.flatnonzero(np.diff(x) <= 0)[0])
        raise ValueError(f"shift must be strictly increasing (cm-1); it is not at point {i + 1} "
                         f"({x[i]:g} -> {x[i + 1]:g})")
    return x


def _check_rng(rng) -> None:
    if not isinstance(rng, np.random.Generator):
        raise TypeError(f"rng must be a numpy Generator, e.g. np.random.default_rng(seed); got {type(rng).__name__}")


def _check_model(full_snr, shot_fraction) -> tuple[float, float]:
    full_snr, shot_fraction = float(full_snr), float(shot_fraction)
    if not (np.isfinite(full_snr) and full_snr > 0):
        raise ValueError(f"full_snr must be a finite positive number; got {full_snr:g}")
    if not 0.0 <= shot_fraction <= 1.0:
        raise ValueError(f"shot_fraction must be in [0, 1]; got {shot_fraction:g}")
    return full_snr, shot_fraction


def _check_snr(snr: np.ndarray, full_snr: float) -> np.ndarray:
    if np.any(np.isnan(snr)):
        raise ValueError("snr must be a number; got NaN")
    if np.any(snr <= 0):
        raise ValueError(f"snr must be positive; got {snr[snr <= 0].flat[0]:g}")
    above = np.isfinite(snr) & (snr > full_snr)
    if np.any(above):
        raise ValueError(f"snr {snr[above].flat[0]:g} is above full_snr ({full_snr:g}), the SNR of the "
                         "full acquisition: no acquisition of these spectra can be better than that. "
                         "Raise full_snr if the data are cleaner, or use inf for no degradation.")
    return snr


def _per_spectrum(value, n: int, name: str, minimum: float | None = None, finite: bool = True) -> np.ndarray:
    """One value per spectrum, shape (n,), from a scalar or an (n,) array."""
    try:
        v = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a number or one number per spectrum; got {value!r}") from None
    if v.ndim == 0:
        v = np.full(n, float(v))
    elif v.shape != (n,):
        raise ValueError(f"{name} must be a number or an array of shape ({n},), one per spectrum; got shape {v.shape}")
    if finite and not np.all(np.isfinite(v)):
        raise ValueError(f"{name} must be finite; got {v[~np.isfinite(v)][0]}")
    if minimum is not None and np.any(v < minimum):
        raise ValueError(f"{name} must be >= {minimum:g}; got {v[v < minimum][0]:g}")
    return v


def _setting(value, name: str) -> float:
    """A single finite number >= 0."""
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a single number; got {value!r}") from None
    if not (np.isfinite(v) and v >= 0):
        raise ValueError(f"{name} must be a finite number >= 0; got {v:g}")
    return v
