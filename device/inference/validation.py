"""Every check on spectra and axes, in one place.

Each function either returns normalised arrays or raises a specific
:class:`~device.errors.SpectrumError` subclass whose message names the problem and the remedy.
"""
from __future__ import annotations

import numpy as np

from device.errors import (
    AxisNotMonotonicError,
    InvalidAxisError,
    LengthMismatchError,
    NonFiniteError,
    NotOneDimensionalError,
    TooFewPointsError,
)

#: Fewest points a spectrum may have: derivative and peak features need three.
MIN_POINTS = 3
#: Most points a model axis may have: far above any model (the shipped one has 1,499), low enough for a
#: board's memory; a finer step is far below any spectrometer's resolution.
MAX_AXIS_POINTS = 65536


def _as_float_array(values, what: str) -> np.ndarray:
    try:
        arr = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise NotOneDimensionalError(
            f"{what} must be numbers; got {type(values).__name__} that cannot be converted ({exc})"
        ) from None
    return arr


def check_spectrum(shift, intensity) -> tuple[np.ndarray, np.ndarray]:
    """Validate one spectrum and return it on a strictly increasing axis.

    Parameters
    ----------
    shift : array_like, shape (N,)
        Raman shift in cm-1, strictly increasing or strictly decreasing.
    intensity : array_like, shape (N,)
        Intensities (counts or arbitrary units), finite.

    Returns
    -------
    shift, intensity : ndarray of float64, shape (N,)
        Read-only copies, reversed together if the axis was decreasing.

    Raises
    ------
    NotOneDimensionalError, LengthMismatchError, TooFewPointsError, NonFiniteError,
    AxisNotMonotonicError
    """
    x = _as_float_array(shift, "the Raman-shift axis")
    y = _as_float_array(intensity, "the intensities")
    if x.ndim != 1 or y.ndim != 1:
        raise NotOneDimensionalError(
            f"a spectrum needs a 1-D axis and 1-D intensities; got shapes {x.shape} and {y.shape}. "
            "Pass one spectrum at a time, or use the batch functions for a 2-D array."
        )
    if x.size != y.size:
        raise LengthMismatchError(
            f"the axis has {x.size} points but the intensities have {y.size}; "
            "they must pair up one to one (check that no header or footer line was read as data)."
        )
    if x.size < MIN_POINTS:
        raise TooFewPointsError(
            f"a spectrum needs at least {MIN_POINTS} points; this one has {x.size}."
        )
    _check_finite(x, "the Raman-shift axis")
    _check_finite(y, "the intensities")
    step = np.diff(x)
    if np.all(step > 0):
        pass
    elif np.all(step < 0):
        x, y = x[::-1], y[::-1]
    else:
        bad = int(np.flatnonzero(step <= 0)[0] if step[0] > 0 else np.flatnonzero(step >= 0)[0])
        raise AxisNotMonotonicError(
            f"the Raman-shift axis must be strictly increasing or decreasing, but it turns or repeats "
            f"at point {bad + 1} ({x[bad]:g} -> {x[bad + 1]:g} cm-1). Sort the spectrum by shift "
            "and merge duplicate shifts before classifying."
        )
    x = np.array(x, dtype=np.float64)
    y = np.array(y, dtype=np.float64)
    x.flags.writeable = False
    y.flags.writeable = False
    return x, y


def _check_finite(arr: np.ndarray, what: str) -> None:
    if np.isfinite(np.add.reduce(arr, axis=None)):  # a finite sum means every value is finite
        return
    finite = np.isfinite(arr)
    if not finite.all():
        bad = np.flatnonzero(~finite)
        raise NonFiniteError(
            f"{what} holds {bad.size} non-finite value(s) (NaN or inf), first at point {bad[0]}. "
            "Re-acquire the spectrum or repair the file; NaN usually means a failed read or division."
        )


def check_matrix(values, points: int) -> np.ndarray:
    """Validate a batch of spectra already on a model axis.

    Parameters
    ----------
    values : array_like, shape (n, points) or (points,)
    points : int
        Number of points the model axis has.

    Returns
    -------
    ndarray of float64, shape (n, points)
    """
    y = _as_float_array(values, "the intensities")
    if y.ndim == 1:
        y = y[None, :]
    if y.ndim != 2:
        raise NotOneDimensionalError(
            f"a batch of spectra must be a 2-D array (spectra, points); got shape {y.shape}."
        )
    if y.shape[1] != points:
        raise LengthMismatchError(
            f"spectra on the model axis must have {points} points; got {y.shape[1]}. "
            "Resample them onto the model's axis first."
        )
    _check_finite(y, "the intensities")
    return y


def check_axis(start: float, stop: float, points: int) -> tuple[float, float, int]:
    """Validate a model axis given as start and stop (cm-1, inclusive) and number of points.

    Raises
    ------
    InvalidAxisError
        One message per mistake: not numbers, POINTS not whole, ends not finite, START above or equal to
        STOP, fewer than :data:`MIN_POINTS` or more than :data:`MAX_AXIS_POINTS` points.
    """
    try:
        start, stop = float(start), float(stop)
        n = int(points)
    except (TypeError, ValueError):
        raise InvalidAxisError(
            f"an axis is START:STOP:POINTS with numbers, e.g. 501:1999:1499; got {start}:{stop}:{points}"
        ) from None
    if n != points:
        raise InvalidAxisError(f"an axis needs a whole number of points; got {points}")
    if not (np.isfinite(start) and np.isfinite(stop)):
        raise InvalidAxisError(f"an axis runs between finite Raman shifts in cm-1; got {start:g} to {stop:g}")
    if start > stop:
        raise InvalidAxisError(f"START {start:g} is above STOP {stop:g}; an axis runs from low to high shift: "
                               f"{stop:g}:{start:g}:{n}")
    if start == stop:
        raise InvalidAxisError(f"START and STOP are both {start:g} cm-1; give a range")
    if n < MIN_POINTS:
        raise InvalidAxisError(f"{n} point(s) are too few; an axis needs at least {MIN_POINTS}")
    if n > MAX_AXIS_POINTS:
        fine = min(int(round(stop - start)) + 1, MAX_AXIS_POINTS)
        raise InvalidAxisError(f"{n} points are more than a model may have ({MAX_AXIS_POINTS}; a step of "
                               f"{(stop - start) / (n - 1):.2g} cm-1 is far below any spectrometer's resolution); "
                               f"e.g. {start:g}:{stop:g}:{fine} has a step of about {(stop - start) / (fine - 1):.2g} "
                               "cm-1")
    return start, stop, n
