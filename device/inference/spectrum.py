"""The spectrum and axis types of the device runtime."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping

import numpy as np

from device.errors import InvalidAxisError
from device.inference.validation import check_axis, check_spectrum


@dataclass(frozen=True)
class Axis:
    """A uniform Raman-shift axis owned by a model.

    Attributes
    ----------
    start, stop : float
        First and last Raman shift, cm-1, both included.
    points : int
        Number of points (so the step is ``(stop - start) / (points - 1)`` cm-1).
    """

    start: float
    stop: float
    points: int

    def __post_init__(self):
        start, stop, points = check_axis(self.start, self.stop, self.points)
        object.__setattr__(self, "start", start)
        object.__setattr__(self, "stop", stop)
        object.__setattr__(self, "points", points)
        values = np.linspace(start, stop, points)
        values.flags.writeable = False
        object.__setattr__(self, "_values", values)

    @property
    def step(self) -> float:
        """Spacing between points, cm-1."""
        return (self.stop - self.start) / (self.points - 1)

    @property
    def values(self) -> np.ndarray:
        """The axis as a read-only array of shape (points,), cm-1."""
        return self._values

    @classmethod
    def parse(cls, text: str, name: str = "axis") -> "Axis":
        """Build an axis from ``"START:STOP:POINTS"``, e.g. ``"501:1999:1499"``.

        Every message starts with ``name`` and the text given (e.g. ``--axis '600:1800:0': ...``).

        Raises
        ------
        InvalidAxisError
            One message per mistake (see :func:`device.inference.validation.check_axis`).
        """
        given = f"{name} {text!r}"
        parts = [p.strip() for p in text.split(":")]
        if len(parts) != 3:
            raise InvalidAxisError(f"{given}: an axis is START:STOP:POINTS in cm-1, e.g. 600:1800:1201")
        ends = []
        for what, part in zip(("START", "STOP"), parts[:2]):
            try:
                ends.append(float(part))
            except ValueError:
                raise InvalidAxisError(f"{given}: {what} {part!r} is not a number (cm-1)") from None
        try:
            points = int(parts[2])
        except ValueError:
            raise InvalidAxisError(f"{given}: POINTS {parts[2]!r} is not a whole number") from None
        try:
            return cls(ends[0], ends[1], points)
        except InvalidAxisError as exc:
            raise InvalidAxisError(f"{given}: {exc}") from None

    def __str__(self) -> str:
        return f"{self.start:g}:{self.stop:g}:{self.points}"


@dataclass(frozen=True)
class Spectrum:
    """One Raman spectrum: intensities on a Raman-shift axis, with metadata.

    Construction validates the data (see :mod:`device.inference.validation`) and stores read-only float64
    arrays on a strictly increasing axis.

    Attributes
    ----------
    shift : ndarray, shape (N,)
        Raman shift, cm-1, strictly increasing.
    intensity : ndarray, shape (N,)
        Intensity at each shift (counts or arbitrary units).
    meta : mapping
        Free-form metadata: source file, instrument, laser line, integration time, ...
    """

    shift: np.ndarray
    intensity: np.ndarray
    meta: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self):
        x, y = check_spectrum(self.shift, self.intensity)
        object.__setattr__(self, "shift", x)
        object.__setattr__(self, "intensity", y)
        object.__setattr__(self, "meta", dict(self.meta))

    def __len__(self) -> int:
        return self.shift.size

    @classmethod
    def from_measurement(cls, measurement) -> "Spectrum":
        """The spectrum of a :class:`firmware_bridge.calibration.Measurement`, a spectrometer's calibrated output.

        Its device identity and settings become the spectrum's metadata.
        """
        return cls(measurement.shift, measurement.intensity, dict(measurement.meta))
