"""One measurement from a driver: dark frame, laser gating, inversion, and the Raman-shift axis."""
from __future__ import annotations

import numpy as np

from firmware_bridge.calibration import Measurement, raman_shift
from firmware_bridge.errors import BridgeError, LaserError
from firmware_bridge.spectrometer import Spectrometer

#: Tries to switch the laser off before giving up (a reply lost on the line must not leave it on).
LASER_OFF_ATTEMPTS = 3
#: An accumulation takes one more dark frame after every this many scans.
SCANS_PER_DARK = 2


def switch_off(switch) -> None:
    """``switch(False)``, retried; raises :class:`LaserError` if the laser cannot be switched off."""
    for _ in range(LASER_OFF_ATTEMPTS):
        try:
            switch(False)
            return
        except BridgeError as exc:
            last = exc
    raise LaserError(f"the laser could not be switched off after {LASER_OFF_ATTEMPTS} attempts ({last}); "
                     "switch it off or cut its power, then check the spectrometer's cable")


def acquire_signal(spectrometer: Spectrometer, dark_frame: bool = True,
                   laser=None) -> tuple[np.ndarray, np.ndarray, dict]:
    """Acquire one spectrum and take out the dark: the signal, in pixel order.

    With a laser switch (the device's own laser line, such as OBP lamp enable, or else ``laser``, a
    callable taking True/False, e.g. a GPIO output) and ``dark_frame``, a dark spectrum is taken first
    with the laser off at the same integration time and subtracted; the laser is switched off again on
    every path, errors included (retried, see :func:`switch_off`). Inverted detectors (TCD1304) are
    inverted against their shielded dark elements. It is :func:`accumulate` of one scan.

    Parameters
    ----------
    spectrometer : Spectrometer
        An open driver, with integration time and averages set.
    dark_frame : bool
        Take and subtract a dark frame where the device can gate its laser.
    laser : callable, optional
        Laser switch for a device without a laser line.

    Returns
    -------
    signal : ndarray, shape (pixels,)
        Dark-subtracted (and, for inverted detectors, inverted) counts.
    raw : ndarray, shape (pixels,)
        The counts as the device sent them.
    meta : dict
        The device's metadata, with ``dark_subtracted``.
    """
    signals, raw, meta = accumulate(spectrometer, lambda *_: True, dark_frame, laser)  # one scan
    return signals[0], raw[0], meta


def dark_subtracted(counts: np.ndarray, dark: np.ndarray | None, meta: dict) -> np.ndarray:
    """The signal of one frame: ``counts`` less the ``dark`` frame (if any), inverted for inverted detectors.

    An inverted detector (TCD1304) without a dark frame is inverted against its shielded dark elements
    (``meta["dark_reference"]``).
    """
    if meta.get("inverted"):
        return meta["dark_reference"] - counts if dark is None else dark - counts
    return counts - dark if dark is not None else counts.copy()


def accumulate(spectrometer: Spectrometer, enough, dark_frame: bool = True, laser=None,
               quick_look_s: float | None = None) -> tuple[np.ndarray, np.ndarray, dict]:
    """Scan one sample again and again until ``enough`` says stop.

    Where the laser can be gated (the device's own laser line, else ``laser``) and ``dark_frame``, a dark
    frame is taken with the laser off first and one more after every :data:`SCANS_PER_DARK` scans, so that
    the dark's noise averages down with the scans' (a single dark would cap the mean's SNR near one scan's);
    every scan is taken with the laser on, at the set integration time and averages, and less the mean of
    the darks so far. After each scan ``enough`` gets every scan so far. With ``quick_look_s``, one scan
    at that integration time (and its own dark frame) comes first and ``enough`` is asked about it alone;
    unless it stops there, the set integration time returns and the scans start afresh (the quick look is
    not averaged in: its integration time differs). The laser is switched off on every path, errors
    included (retried, see :func:`switch_off`).

    Parameters
    ----------
    spectrometer : Spectrometer
        An open driver, with integration time and averages set.
    enough : callable
        ``enough(signals, raw, meta)``: True to stop; ``signals`` (dark-subtracted) and ``raw`` (as sent) of
        shape (scans, pixels), pixel order, and the last scan's metadata.
    dark_frame : bool
        Take and subtract dark frames where the device can gate its laser.
    laser : callable, optional
        Laser switch for a device without a laser line.
    quick_look_s : float, optional
        Integration time of a first, shorter scan, s.

    Returns
    -------
    signals : ndarray, shape (scans, pixels)
        The scans less the mean of their dark frames, in pixel order (the quick look alone if it stopped).
    raw : ndarray, shape (scans, pixels)
        The counts of each scan as the device sent them.
    meta : dict
        The device's metadata of the last scan, with ``dark_subtracted`` and ``dark_frames``.
    """
    switch = spectrometer.set_laser if spectrometer.has_laser else laser
    gated = switch is not None and dark_frame
    try:
        if quick_look_s is not None:
            full_s = spectrometer.integration_s
            spectrometer.set_integration_time(quick_look_s)
            try:
                *result, stopped = _scans(spectrometer, enough, switch, gated, most=1)
            finally:
                spectrometer.set_integration_time(full_s)
            if stopped:
                return tuple(result)
        return tuple(_scans(spectrometer, enough, switch, gated)[:3])
    finally:
        if switch is not None:
            switch_off(switch)


def _scans(spectrometer: Spectrometer, enough, switch, gated: bool, most: int | None = None):
    """:func:`accumulate`'s scans at one integration time: signals, raw, meta, and whether ``enough`` stopped."""
    darks, raw = [], []
    while True:
        if gated and len(raw) == SCANS_PER_DARK * len(darks):
            switch(False)
            darks.append(spectrometer.acquire()[0])
            switch(True)
        elif switch is not None and not raw:
            switch(True)
        counts, meta = spectrometer.acquire()
        raw.append(counts)
        dark = np.mean(darks, axis=0) if darks else None
        signals = np.array([dark_subtracted(c, dark, meta) for c in raw])
        stopped = bool(enough(signals, np.array(raw), meta))
        if stopped or (most is not None and len(raw) >= most):
            meta = dict(meta, dark_subtracted=bool(darks) or bool(meta.get("inverted")), dark_frames=len(darks))
            return signals, np.array(raw), meta, stopped


def measure(spectrometer: Spectrometer, laser_nm: float, dark_frame: bool = True, laser=None,
            response=None) -> Measurement:
    """Acquire one spectrum (:func:`acquire_signal`) and calibrate it, pixels by increasing Raman shift.

    Parameters
    ----------
    spectrometer : Spectrometer
        An open driver, with integration time and averages set.
    laser_nm : float
        The measured laser line, nm.
    dark_frame : bool
        Take and subtract a dark frame where the device can gate its laser.
    laser : callable, optional
        Laser switch for a device without a laser line.
    response : Response, optional
        The instrument's relative intensity response (:mod:`firmware_bridge.response`): the dark-subtracted
        signal is divided by it, and ``meta`` names the standard and the masked Raman-shift ranges.
    """
    signal, counts, meta = acquire_signal(spectrometer, dark_frame, laser)
    return signal_calibrator(spectrometer, laser_nm, response)(signal, counts, meta)


def signal_calibrator(spectrometer: Spectrometer, laser_nm: float, response=None):
    """``to_measurement(signal, counts, meta)``: :func:`calibrate_signal` for this device, its identity in ``meta``.

    The device is asked for its identity and wavelengths once, so that the scans of an accumulation
    (:func:`accumulate`) are calibrated without a word on the line. ``laser_nm`` and ``response`` are as
    for :func:`measure`.
    """
    device = spectrometer.identify()
    wavelengths_nm = spectrometer.wavelengths()

    def to_measurement(signal: np.ndarray, counts: np.ndarray, meta: dict) -> Measurement:
        meta = dict(meta, **{k: v for k, v in device.items() if k not in meta})
        return calibrate_signal(signal, counts, meta, wavelengths_nm, laser_nm, response)

    return to_measurement


def calibrate_signal(signal: np.ndarray, counts: np.ndarray, meta: dict, wavelengths_nm: np.ndarray,
                     laser_nm: float, response=None) -> Measurement:
    """A dark-subtracted signal (:func:`acquire_signal`) on its Raman-shift axis, pixels by increasing shift.

    Parameters
    ----------
    signal, counts : ndarray, shape (pixels,)
        The signal and the raw counts, in pixel order.
    meta : dict
        The device's metadata.
    wavelengths_nm : ndarray, shape (pixels,)
        Wavelength of every pixel, nm.
    laser_nm : float
        The measured laser line, nm.
    response : Response, optional
        As for :func:`measure`.
    """
    shift = raman_shift(wavelengths_nm, laser_nm)
    intensity = signal
    if response is not None:
        intensity = response.correct(signal)
        meta = dict(meta, response_corrected=response.standard,
                    response_masked_cm1=[[round(a, 1), round(b, 1)] for a, b in response.masked_ranges(shift)])
    order = np.argsort(shift)
    return Measurement(shift[order], intensity[order], counts[order], dict(meta, laser_nm=laser_nm))
