"""Checks on a frame's counts: saturation, and isolated spikes for protocols that carry no checksum.

Saturation (:func:`saturated_pixels`) is the one test every saturation check of the project uses.
The TCD1304 and C12880MA protocols (binary frames, text lines) carry no checksum. Their optics spread every
real spectral feature over several pixels, so a single pixel far out of line with both neighbours is a
corrupted value or a cosmic ray; either way the acquisition is refused so that it can be repeated, never
passed on as a spectrum. A saturated frame is not checked for spikes: its clipped bands have edges sharper
than the optics make, and it is refused as saturated instead.
"""
from __future__ import annotations

import numpy as np

from firmware_bridge.errors import SpikeError

#: Raw pixels at the detector's limit that make a frame saturated.
SATURATED_PIXELS = 2
#: A raw pixel within this share of full scale of its limit (full scale, or zero when inverted) is at it.
SATURATION_MARGIN = 0.01
#: A pixel is isolated when its second difference exceeds this many robust noise widths (the larger of
#: the whole frame's and its neighbourhood's: shot noise grows with the signal, so a bright band is noisier
#: than the dark between bands)...
SPIKE_SIGMAS = 12.0
#: Pixels over which the neighbourhood's noise width is taken (odd).
NOISE_WINDOW = 31
#: ... and this many counts (so that quantisation steps on a flat dark never count) ...
SPIKE_MIN_COUNTS = 8.0
#: ... and this fraction of its height above the pixels two away. A one-pixel spike has a second
#: difference equal to its height (ratio ~1); a peak resolved by the optics over two pixels or more
#: has at most ~0.55.
SPIKE_SHAPE = 0.8


def check_no_isolated_spikes(counts: np.ndarray, what: str) -> None:
    """Raise :class:`SpikeError` if one pixel stands out from both neighbours beyond noise and optics.

    The noise width at a pixel is 1.4826 x the median absolute deviation of the second differences, over the
    frame or over the :data:`NOISE_WINDOW` pixels around it, whichever is larger (a median, so the spike itself
    does not raise it). The two pixels at each end are not checked (their neighbourhood is incomplete).
    """
    y = np.asarray(counts, dtype=np.float64)
    d = y[2:-2] - 0.5 * (y[1:-3] + y[3:-1])  # second difference at pixels 2 .. N-3
    h = y[2:-2] - 0.5 * (y[:-4] + y[4:])  # height above the pixels two away
    all_d = y[1:-1] - 0.5 * (y[:-2] + y[2:])
    deviation = np.abs(all_d - np.median(all_d))
    sigma = 1.4826 * np.median(deviation)
    half = NOISE_WINDOW // 2
    if deviation.size > NOISE_WINDOW:
        padded = np.pad(deviation, half, mode="edge")
        local = 1.4826 * np.median(np.lib.stride_tricks.sliding_window_view(padded, NOISE_WINDOW), axis=1)
        noise = np.maximum(sigma, local[1:-1])  # at pixels 2 .. N-3, as d
    else:
        noise = np.full(d.size, sigma)
    limit = np.maximum(SPIKE_SIGMAS * noise, SPIKE_MIN_COUNTS)
    bad = np.flatnonzero((np.abs(d) > limit) & (np.abs(d) > SPIKE_SHAPE * np.abs(h)))
    if bad.size:
        k = int(bad[np.argmax(np.abs(d[bad]) / limit[bad])])
        raise SpikeError(f"{what}: pixel {k + 2} stands {abs(d[k]):.0f} counts out of line with its neighbours "
                         f"(noise there {noise[k]:.1f}): a transmission error or a cosmic ray; acquire again")


def saturated_pixels(raw, full_scale: float | None, inverted: bool = False) -> int:
    """How many raw pixels sit at the detector's limit (full scale; zero for an inverted detector).

    Parameters
    ----------
    raw : ndarray, shape (pixels,)
        The counts as the detector sent them.
    full_scale : float or None
        The detector's largest count; None (unknown) gives 0.
    inverted : bool
        The detector's counts fall with light (TCD1304).
    """
    if not full_scale:
        return 0
    r = np.asarray(raw, dtype=np.float64)
    limit = SATURATION_MARGIN * full_scale
    return int((r <= limit).sum() if inverted else (r >= full_scale - limit).sum())


def is_saturated(raw, full_scale: float | None, inverted: bool = False) -> bool:
    """Whether :data:`SATURATED_PIXELS` or more raw pixels are at the limit (:func:`saturated_pixels`)."""
    return saturated_pixels(raw, full_scale, inverted) >= SATURATED_PIXELS
