"""The base of every simulated device: an instrument looking at a scene, behind a simulated line.

Each protocol's byte-level state machine, as its firmware behaves, is in its package's ``simulator``.
"""
from __future__ import annotations

import numpy as np

from firmware_bridge.sim.instrument import Instrument, Scene


class SimulatedDevice:
    """Base: an instrument looking at a scene, talking through a :class:`~.line.SimulatedLine`."""

    baud = 115200
    #: False for native USB-CDC devices, where the host's baud setting does not matter.
    baud_sensitive = True

    def __init__(self, instrument: Instrument, scene: Scene, seed: int = 0):
        self.instrument = instrument
        self.scene = scene
        self.rng = np.random.default_rng(seed)
        self.line = None
        #: A burning sample: per second of laser on one sample, a broad background of this share of its
        #: strongest band grows (0: the sample is stable).
        self.burn_per_s = 0.0
        self._dose_s, self._dosed = 0.0, None
        #: Called with the new state each time the laser goes on or off (``raman-bridge simulate`` reports it).
        self.on_laser = None
        self._laser_on = True

    @property
    def laser_on(self) -> bool:
        """Whether the laser lights the sample (always, for a device without a laser line)."""
        return self._laser_on

    @laser_on.setter
    def laser_on(self, on: bool) -> None:
        changed = bool(on) != self._laser_on
        self._laser_on = bool(on)
        if changed and self.on_laser is not None:
            self.on_laser(self._laser_on)

    def attach(self, line) -> None:
        """Connect the device to its line."""
        self.line = line

    def receive(self, data: bytes, now: float) -> None:
        """Bytes from the host."""
        raise NotImplementedError

    def poll(self, now: float) -> None:
        """Time passes: free-running devices emit here."""

    def next_event(self) -> float | None:
        """When :meth:`poll` next has something to do (None: nothing scheduled)."""
        return None

    def exposure(self, seconds: float, averages: int) -> np.ndarray:
        """Mean counts of ``averages`` exposures of the sample in view (floats); dark with the laser off."""
        shift, intensity, _ = self.scene.current()
        if not self.laser_on:
            intensity = np.zeros_like(intensity)
        elif self.burn_per_s:
            intensity = self._burnt(shift, intensity, seconds * averages)
        return np.mean([self.instrument.render(shift, intensity, seconds, self.rng) for _ in range(averages)], axis=0)

    def _burnt(self, shift: np.ndarray, intensity: np.ndarray, seconds: float) -> np.ndarray:
        """``intensity`` (N,) with the background its laser dose has grown, at the middle of ``seconds`` more."""
        if self._dosed is not intensity:
            self._dose_s, self._dosed = 0.0, intensity
        dose_s = self._dose_s + seconds / 2
        self._dose_s += seconds
        centre, width = shift.mean(), (shift.max() - shift.min()) / 2
        background = np.exp(-0.5 * ((shift - centre) / width) ** 2)
        return intensity + self.burn_per_s * dose_s * float(intensity.max()) * background
