"""Relative intensity response: how an instrument's optics and detector weight each pixel, and its correction.

Two instruments record the same sample with different spectral shapes: the grating's efficiency, the
filters and the detector's quantum efficiency fall off differently towards the ends of the range. A
reference whose true relative spectrum is known (a luminescence standard, or a calibrated white-light
source) measured on the instrument gives its response, pixel by pixel::

    response(p) = smooth(signal(p) / true(shift(p))),   scaled to a peak of 1,

and every later measurement is corrected by dividing its dark-subtracted signal by it. The ratio is smoothed
by a least-squares Legendre polynomial in the pixel index (:data:`RESPONSE_DEGREE`): a luminescence standard
has no narrow structure, so whatever is narrow in the ratio is noise (or a sign that the reference is not
the named standard, :func:`fit_response`).

**NIST SRM 2241** (785 nm excitation): the certified relative spectral intensity is a polynomial in the Raman
shift ``x`` (cm-1), ``A0 + A1 x + ... + A5 x^5``, valid from 200 to 3500 cm-1 at 20-25 C. The coefficients in
:data:`SRM_2241` are the certificate's as the open ramanchada2 project tabulates them (its configuration of
certified standards, citing tsapps.nist.gov/srmext/certificates/2241.pdf); the certificate itself could not be
read where this module was written, so check them against your standard's certificate, or give the curve as
a file (``raman-bridge calibrate-response --standard FILE``: two columns, Raman shift in cm-1 and relative
intensity).

Pixels whose correction would amplify them more than ``max_gain`` times (dead pixels, the filter edge, a
detector end with no light), and pixels outside the standard's range, are **masked**: reported, and
corrected by at most ``max_gain`` there, never divided by zero.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from firmware_bridge.errors import CalibrationError
from firmware_bridge.integrity import is_saturated, saturated_pixels

#: Legendre degree of the smoothed response over the pixels.
RESPONSE_DEGREE = 8
#: Default largest correction factor; pixels needing more are masked.
MAX_GAIN = 10.0
#: Least median signal over its noise for a reference to calibrate with.
MIN_REFERENCE_SNR = 50.0
#: Largest rms of the ratio around its smooth fit, as a share of the fit, for a smooth reference.
MAX_ROUGHNESS = 0.05
#: Least share of the pixels that must lie inside the standard's range and be usable.
MIN_USABLE = 0.5


@dataclass(frozen=True)
class Standard:
    """A reference whose true relative spectrum is known.

    Attributes
    ----------
    name : str
    coefficients : tuple of float or None
        Polynomial in the Raman shift (cm-1), lowest power first; None for a tabulated curve.
    shift, intensity : ndarray or None
        The tabulated curve (cm-1, relative), increasing shift; None for a polynomial.
    valid : (float, float)
        Raman-shift range (cm-1) over which the curve holds.
    laser_nm : float or None
        The excitation it is certified for (None: any).
    source : str
        Where the curve comes from.
    """

    name: str
    valid: tuple
    source: str
    coefficients: tuple | None = None
    shift: np.ndarray | None = None
    intensity: np.ndarray | None = None
    laser_nm: float | None = None

    def relative(self, shift) -> np.ndarray:
        """The true relative intensity at Raman shifts ``shift`` (cm-1); NaN outside :attr:`valid`."""
        x = np.asarray(shift, dtype=np.float64)
        if self.coefficients is not None:
            y = np.polynomial.polynomial.polyval(x, self.coefficients)
        else:
            y = np.interp(x, self.shift, self.intensity)
        inside = (x >= self.valid[0]) & (x <= self.valid[1])
        return np.where(inside, y, np.nan)


#: NIST SRM 2241, relative intensity correction standard for 785 nm excitation (see the module docstring).
SRM_2241 = Standard(
    name="NIST SRM 2241 (785 nm)", valid=(200.0, 3500.0), laser_nm=785.0,
    coefficients=(9.71937e-02, 2.28325e-04, -5.86762e-08, 2.16023e-10, -9.77171e-14, 1.15596e-17),
    source="NIST SRM 2241 certificate (tsapps.nist.gov/srmext/certificates/2241.pdf), coefficients as tabulated "
           "by the ramanchada2 project; check them against your standard's certificate")
#: Standards known by name.
STANDARDS = {"srm2241": SRM_2241}


def standard_from_file(path, name: str | None = None) -> Standard:
    """A tabulated standard from a two-column file: Raman shift (cm-1) and relative intensity.

    Raises
    ------
    CalibrationError
        If the file cannot be read or does not hold at least 10 finite, positive points of distinct shifts.
    """
    try:
        table = np.loadtxt(path, delimiter=None if not str(path).endswith(".csv") else ",", comments="#", ndmin=2)
    except (OSError, ValueError) as exc:
        raise CalibrationError(f"{path}: cannot read the standard's curve ({exc}); give two columns, Raman shift "
                               "in cm-1 and relative intensity") from None
    if table.shape[1] < 2 or table.shape[0] < 10 or not np.isfinite(table[:, :2]).all() or (table[:, 1] <= 0).any():
        raise CalibrationError(f"{path}: a standard's curve needs at least 10 rows of Raman shift (cm-1) and a "
                               "positive relative intensity")
    order = np.argsort(table[:, 0])
    x, y = table[order, 0], table[order, 1]
    if np.any(np.diff(x) <= 0):
        raise CalibrationError(f"{path}: two rows of the standard's curve have the same Raman shift")
    return Standard(name=name or str(path), valid=(float(x[0]), float(x[-1])), source=str(path),
                    shift=x, intensity=y)


@dataclass(frozen=True)
class Response:
    """An instrument's relative response, pixel by pixel (in the device's pixel order).

    Attributes
    ----------
    values : ndarray, shape (pixels,)
        Relative response, peak 1; at masked pixels, the value used there (``1 / max_gain`` at least).
    masked : ndarray of bool, shape (pixels,)
        Pixels not corrected in full: outside the standard's range, or needing more than ``max_gain``.
    max_gain : float
    standard : str
        The standard's name.
    laser_nm : float
        The laser line the response was measured with.
    """

    values: np.ndarray
    masked: np.ndarray
    max_gain: float
    standard: str
    laser_nm: float

    def correct(self, signal) -> np.ndarray:
        """``signal`` (pixels,), in the device's pixel order, divided by the response: same shape."""
        signal = np.asarray(signal, dtype=np.float64)
        if signal.shape != self.values.shape:
            raise CalibrationError(f"the response is for {self.values.size} pixels, the spectrum has {signal.size}; "
                                   "measure the response on this spectrometer (raman-bridge calibrate-response)")
        return signal / np.maximum(self.values, 1.0 / self.max_gain)

    def masked_ranges(self, shift) -> list[tuple[float, float]]:
        """The masked pixels as Raman-shift ranges (cm-1, lowest first), for reports."""
        x = np.asarray(shift, dtype=np.float64)
        edges = np.flatnonzero(np.diff(np.concatenate([[0], self.masked.astype(np.int8), [0]])))
        return sorted((float(min(x[a], x[b - 1])), float(max(x[a], x[b - 1]))) for a, b in zip(edges[::2], edges[1::2]))

    def to_json(self) -> dict:
        """The response as the calibration file stores it."""
        return {"response": [round(float(v), 7) for v in self.values], "masked": np.flatnonzero(self.masked).tolist(),
                "max_gain": self.max_gain, "standard": self.standard, "laser_nm": self.laser_nm}

    @classmethod
    def from_json(cls, data: dict, pixels: int | None = None) -> "Response":
        """The response of a calibration file's entries (see :meth:`to_json`).

        Raises
        ------
        CalibrationError
            If an entry is missing or malformed, or the response is not for ``pixels`` pixels.
        """
        try:
            values = np.asarray(data["response"], dtype=np.float64)
            masked = np.zeros(values.size, bool)
            masked[np.asarray(data["masked"], dtype=np.int64)] = True
            gain = float(data["max_gain"])
            response = cls(values, masked, gain, str(data["standard"]), float(data["laser_nm"]))
        except (KeyError, TypeError, ValueError, IndexError) as exc:
            raise CalibrationError(f"the response calibration is malformed ({exc}); measure it again with "
                                   "raman-bridge calibrate-response") from None
        if values.ndim != 1 or not np.isfinite(values).all() or (values <= 0).any() or values.max() > 1 + 1e-6 \
                or not gain > 1:
            raise CalibrationError("the response calibration holds values outside (0, 1] or a gain not above 1; "
                                   "measure it again with raman-bridge calibrate-response")
        if pixels is not None and values.size != pixels:
            raise CalibrationError(f"the response calibration is for {values.size} pixels, the spectrometer has "
                                   f"{pixels}; measure it on this spectrometer with raman-bridge calibrate-response")
        return response


def _noise(signal: np.ndarray) -> float:
    """Noise rms of a smooth signal from its second differences (median absolute deviation)."""
    d2 = np.diff(signal, 2)
    return float(1.4826 * np.median(np.abs(d2 - np.median(d2))) / np.sqrt(6.0))


def fit_response(shift, signal, standard: Standard, laser_nm: float, raw=None, full_scale: float | None = None,
                 inverted: bool = False, max_gain: float = MAX_GAIN) -> Response:
    """The instrument's response from one dark-subtracted measurement of ``standard``.

    Parameters
    ----------
    shift : array_like, shape (pixels,)
        Raman shift of every pixel, cm-1, in the device's pixel order.
    signal : array_like, shape (pixels,)
        Dark-subtracted counts of the standard.
    standard : Standard
    laser_nm : float
        The laser line it was measured with (checked against the standard's).
    raw, full_scale, inverted
        The raw counts and the detector's full scale, for the saturation check (skipped without them).
    max_gain : float
        Largest correction factor; pixels needing more are masked.

    Raises
    ------
    CalibrationError
        Nothing is stored when the reference is saturated, too weak, not smooth like the named standard, or
        covers too little of its range, or the laser does not fit the standard; the message says which.
    """
    x = np.asarray(shift, dtype=np.float64)
    s = np.asarray(signal, dtype=np.float64)
    if not max_gain > 1:
        raise CalibrationError(f"the largest correction must be above 1, not {max_gain:g}")
    if standard.laser_nm is not None and abs(laser_nm - standard.laser_nm) > 5:
        raise CalibrationError(f"{standard.name} is certified for {standard.laser_nm:g} nm excitation, and this "
                               f"laser is {laser_nm:g} nm; use the standard made for your laser")
    if raw is not None and is_saturated(raw, full_scale, inverted):
        raise CalibrationError(f"the reference is saturated ({saturated_pixels(raw, full_scale, inverted)} pixels "
                               "at full scale): shorten the integration time or lower the laser power, then measure "
                               "it again; nothing stored")
    true = standard.relative(x)
    inside = np.isfinite(true) & (true > 0)
    if inside.mean() < MIN_USABLE:
        raise CalibrationError(f"only {100 * inside.mean():.0f} % of the pixels lie in {standard.name}'s range "
                               f"{standard.valid[0]:g}-{standard.valid[1]:g} cm-1; check the laser line and the "
                               "wavelength calibration; nothing stored")
    noise = _noise(s[inside])
    level = float(np.median(s[inside]))
    if not level > MIN_REFERENCE_SNR * max(noise, 1e-12):
        snr = level / noise if noise > 0 else 0.0
        raise CalibrationError(f"the reference is too weak: median signal {level:.4g} counts, {snr:.0f} times its "
                               f"noise, below {MIN_REFERENCE_SNR:g}; lengthen the integration time or average more "
                               "scans; nothing stored")
    pixels = np.arange(x.size, dtype=np.float64)
    t = 2 * pixels / max(x.size - 1, 1) - 1
    ratio = np.where(inside, s / np.where(inside, true, 1.0), np.nan)
    dark = inside & (ratio < np.nanmedian(ratio) / max_gain)  # dead pixels, a filter edge: no light to correct
    fitted = inside & ~dark
    fit = np.polynomial.legendre.Legendre.fit(t[fitted], ratio[fitted], RESPONSE_DEGREE, domain=[-1, 1])
    smooth = fit(t)
    rough = float(np.sqrt(np.mean((ratio[fitted] - smooth[fitted]) ** 2)) / np.max(np.abs(smooth[fitted])))
    if rough > MAX_ROUGHNESS:
        raise CalibrationError(f"the reference does not look like {standard.name}: its ratio to the certified "
                               f"curve varies by {100 * rough:.1f} % around a smooth response (at most "
                               f"{100 * MAX_ROUGHNESS:g} %), as bands or another source would; measure the named "
                               "standard, or give its curve with --standard FILE; nothing stored")
    values = np.where(dark, 0.0, smooth / np.max(smooth[fitted]))
    masked = ~fitted | (values < 1.0 / max_gain)
    return Response(np.clip(np.nan_to_num(values, nan=0.0), 1.0 / max_gain, 1.0), masked, float(max_gain),
                    standard.name, float(laser_nm))
