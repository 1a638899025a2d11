"""Linear resampling of spectra onto a model's axis, never extrapolating."""
from __future__ import annotations

import numpy as np

from device.errors import AxisCoverageError
from device.inference.spectrum import Axis

#: Slack allowed at each end of the coverage check, as a fraction of the model axis step:
#: a source axis that stops within this distance of the model axis still covers it.
COVERAGE_TOLERANCE = 1e-6


def covers(first: float, last: float, target: Axis) -> bool:
    """True if a source axis from ``first`` to ``last`` cm-1 (increasing) reaches both ends of ``target``."""
    slack = COVERAGE_TOLERANCE * target.step
    return first <= target.start + slack and last >= target.stop - slack


class Resampler:
    """Linear interpolation from one source axis onto a model axis, with precomputed weights.

    Build it once per instrument calibration; applying it costs two gathers and a blend.

    Parameters
    ----------
    source : ndarray, shape (M,)
        Strictly increasing Raman shift of the incoming spectra, cm-1.
    target : Axis
        The model's axis.

    Raises
    ------
    AxisCoverageError
        If the source axis does not reach both ends of the target axis.
    """

    def __init__(self, source: np.ndarray, target: Axis):
        source = np.asarray(source, dtype=np.float64)
        slack = COVERAGE_TOLERANCE * target.step
        if not covers(source[0], source[-1], target):
            raise AxisCoverageError(
                f"the spectrum covers {source[0]:g}-{source[-1]:g} cm-1 but the model needs "
                f"{target.start:g}-{target.stop:g} cm-1; it is refused rather than extrapolated. "
                "Acquire over a wider range or use a model whose axis fits inside the spectrum."
            )
        self.source = source
        self.target = target
        t = np.clip(target.values, source[0], source[-1])
        self.identity = source.size == target.points and bool(np.allclose(source, t, rtol=0, atol=slack))
        left = np.clip(np.searchsorted(source, t, side="right") - 1, 0, source.size - 2)
        self._left = left
        self._right = left + 1
        self._w = (t - source[left]) / (source[left + 1] - source[left])

    def __call__(self, intensity: np.ndarray) -> np.ndarray:
        """Resample intensities, shape (M,) or (n, M), onto the target axis: (points,) or (n, points)."""
        y = np.asarray(intensity, dtype=np.float64)
        if self.identity:
            return y.copy()
        lo = y[..., self._left]
        return lo + (y[..., self._right] - lo) * self._w

    def matches(self, source: np.ndarray) -> bool:
        """True if ``source`` is this resampler's source axis."""
        return source is self.source or (
            source.shape == self.source.shape and bool(np.array_equal(source, self.source))
        )


class ResamplerCache:
    """Resamplers onto one target axis for the last ``size`` source axes seen (instruments rarely change)."""

    def __init__(self, target: Axis, size: int = 8):
        self.target = target
        self.size = size
        self._items: list[Resampler] = []

    def get(self, source: np.ndarray) -> Resampler:
        """The resampler for ``source`` (built and kept if new).

        Raises
        ------
        AxisCoverageError
            If ``source`` does not cover the target axis.
        """
        for r in self._items:
            if r.matches(source):
                return r
        r = Resampler(source, self.target)
        self._items = [r] + self._items[: self.size - 1]
        return r


def resample(shift: np.ndarray, intensity: np.ndarray, target: Axis) -> np.ndarray:
    """Resample one spectrum (or a batch sharing ``shift``) onto ``target`` by linear interpolation.

    Parameters
    ----------
    shift : ndarray, shape (M,)
        Strictly increasing Raman shift, cm-1.
    intensity : ndarray, shape (M,) or (n, M)
    target : Axis

    Returns
    -------
    ndarray, shape (points,) or (n, points)
    """
    return Resampler(shift, target)(intensity)
