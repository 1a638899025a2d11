"""Auto-exposure: the integration time that puts the brightest pixel at a set fraction of the detector's range.

A short probe frame (laser on) less the detector's offset (one frame at the device's shortest integration
time, laser off, taken once) is extrapolated linearly in time: the signal grows with the integration time,
the offset under it does not (to first order). A probe costs one frame, not a dark frame as well.
A probe too faint to extrapolate from is followed by a longer one (at most :data:`GROWTH` times longer);
a saturated probe by a shorter one (:data:`SHRINK`); a probe saturated at the device's shortest
integration time means the sample is too bright for any setting, and the laser must be turned down.

"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from firmware_bridge.errors import SettingError, TooBrightError
from firmware_bridge.integrity import is_saturated
from firmware_bridge.measure import acquire_signal

#: Default share of the detector's range the brightest pixel is brought to.
TARGET_FRACTION = 0.7
#: Default integration time of the first probe, s (clamped to the device's range).
PROBE_S = 0.01
#: A probe too faint to extrapolate from is followed by one this much longer.
GROWTH = 20.0
#: A saturated probe is followed by one this much shorter.
SHRINK = 10.0
#: A probe's brightest pixel must stand this many noise widths above the frame's median to be extrapolated.
MIN_PEAK_SIGMAS = 10.0
#: Most probe frames before the last estimate is used.
MAX_PROBES = 6


def peak_fraction(signal, raw, meta: dict) -> float:
    """The share of the detector's range the brightest pixel uses (1 at saturation).

    For a detector counting up it is the raw count of the brightest signal pixel over full scale; for an
    inverted one (TCD1304), the signal over its dark reference, the whole swing down to zero.

    Parameters
    ----------
    signal, raw : ndarray, shape (pixels,)
        Dark-subtracted signal and raw counts, as :func:`~firmware_bridge.measure.acquire_signal` returns.
    meta : dict
        The frame's metadata, with ``full_scale`` (and ``inverted``, ``dark_reference``).
    """
    k = int(np.argmax(signal))
    if meta.get("inverted"):
        return float(signal[k] / meta["dark_reference"])
    return float(raw[k] / meta["full_scale"])


def next_integration(signal, raw, meta: dict, probe_s: float, target: float, shortest_s: float,
                     longest_s: float, saturated_s: float = np.inf) -> tuple[float, bool, bool]:
    """From one probe frame, the next integration time and whether it is final.

    Parameters
    ----------
    signal, raw : ndarray, shape (pixels,)
        The probe's dark-subtracted signal and raw counts.
    meta : dict
        The probe's metadata, with ``full_scale`` (and ``inverted``, ``dark_reference``).
    probe_s : float
        The probe's integration time, s.
    target : float
        Share of the detector's range to bring the brightest pixel to, in (0, 1).
    shortest_s, longest_s : float
        The range the time may take, s: the device's, and the configured maximum.
    saturated_s : float
        The shortest time an earlier probe saturated at, s. A faint frame grows to at most half of it (the
        dark current fills the range too); an extrapolation stays below it.

    Returns
    -------
    integration_s : float
        The time for the measurement (final) or for the next probe, s.
    final : bool
        False when another probe is needed first (this one saturated, or too faint to extrapolate from).
    limited : bool
        Final with the brightest pixel expected below the target: at the longest time, or where the frame
        (its dark current) fills the range before any band stands out.

    Raises
    ------
    TooBrightError
        The probe is saturated at the shortest time.
    """
    if is_saturated(raw, meta.get("full_scale"), bool(meta.get("inverted"))):
        if probe_s <= shortest_s * (1 + 1e-9):
            raise TooBrightError(
                f"too bright: reduce laser power or move the sample (saturated at the shortest integration time, "
                f"{shortest_s * 1e3:g} ms)")
        return max(shortest_s, probe_s / SHRINK), False, False
    s = np.asarray(signal, dtype=np.float64)
    noise = 1.4826 * np.median(np.abs(np.diff(s) - np.median(np.diff(s)))) / np.sqrt(2)
    height = s.max() - np.median(s)
    now = peak_fraction(s, raw, meta)
    offset = 0.0 if meta.get("inverted") else (raw[int(np.argmax(s))] - s.max()) / meta["full_scale"]
    if not height > MIN_PEAK_SIGMAS * noise:  # nothing to extrapolate from yet: integrate longer, as far as
        filled = probe_s * (target - offset) / (now - offset) if now > offset else np.inf  # dark current allows
        grow_to = min(longest_s, saturated_s / 2)
        if min(probe_s * GROWTH, filled) >= grow_to:
            return grow_to, True, True
        if filled < probe_s * GROWTH:  # the frame fills up before any band stands out
            return max(shortest_s, filled), True, True
        return probe_s * GROWTH, False, False
    wanted = probe_s * (target - offset) / max(now - offset, 1e-12)
    return float(np.clip(wanted, shortest_s, min(longest_s, saturated_s / (1 + 1e-3)))), True, wanted > longest_s


@dataclass
class Exposure:
    """What auto-exposure chose, and the probes it took to choose it.

    Attributes
    ----------
    integration_s : float
        The chosen integration time, s.
    limited : bool
        The time is the longest allowed, and the brightest pixel stays below the target.
    probes : list of (float, float)
        Each probe's integration time (s) and the share of the detector's range its brightest pixel used.
    """

    integration_s: float
    limited: bool
    probes: list = field(default_factory=list)

    def to_json(self) -> dict:
        """The record's entry: chosen time, whether the limit held it, and the probes."""
        return {"integration_s": self.integration_s, "limited": self.limited,
                "probes": [[round(t, 6), round(f, 4)] for t, f in self.probes]}


def auto_expose(spectrometer, longest_s: float, target: float = TARGET_FRACTION, probe_s: float = PROBE_S,
                laser=None) -> Exposure:
    """Probe, then set the integration time that brings the brightest pixel to ``target`` of the range.

    The driver is left at the chosen time, with its averages as they were; the laser is off on every path.

    Parameters
    ----------
    spectrometer : Spectrometer
        An open driver whose integration time can be set (:attr:`integration_range_s` is not None).
    longest_s : float
        Configured maximum integration time, s (the device's own maximum applies too).
    target : float
        Share of the detector's range for the brightest pixel, in (0, 1).
    probe_s : float
        The first probe's shortest integration time, s: it is at least ``longest_s / GROWTH``, so that a probe
        too faint to extrapolate from is followed by the final time, not by another probe.
    laser : callable, optional
        Laser switch for a device without a laser line, as for :func:`~firmware_bridge.measure.acquire_signal`.
        The offset frame is taken before any probe, the laser off where it can be gated (else too short to
        collect light); an inverted detector (TCD1304) gives its own dark reference instead.

    Raises
    ------
    SettingError
        The device's integration time is fixed.
    TooBrightError
        Saturated at the device's shortest integration time.
    """
    if spectrometer.integration_range_s is None:
        raise SettingError(f"{spectrometer.PROTOCOL.device} has a fixed integration time, so auto-exposure cannot "
                           "choose one: use the fixed exposure")
    shortest, device_longest = spectrometer.integration_range_s
    longest = min(longest_s, device_longest)
    averages = spectrometer.averages
    t = float(np.clip(max(probe_s, longest / GROWTH), shortest, longest))  # a faint probe leads to the end
    probes, offset, saturated_s = [], None, np.inf
    try:
        spectrometer.set_averages(1)
        for _ in range(MAX_PROBES):
            spectrometer.set_integration_time(t)
            signal, raw, meta = acquire_signal(spectrometer, False, laser)
            if not meta["dark_subtracted"]:  # the offset under the light: a frame too short to collect any
                if offset is None:
                    spectrometer.set_integration_time(shortest)
                    offset = spectrometer.acquire()[0]
                signal = raw - offset
            saturated = is_saturated(raw, meta.get("full_scale"), bool(meta.get("inverted")))
            probes.append((t, 1.0 if saturated else peak_fraction(signal, raw, meta)))
            if saturated:
                saturated_s = min(saturated_s, t)
            t, final, limited = next_integration(signal, raw, meta, t, target, shortest, longest, saturated_s)
            if final:
                break
    finally:
        spectrometer.set_averages(averages)
    spectrometer.set_integration_time(t)
    return Exposure(spectrometer.integration_s, limited, probes)  # as the device rounded it
