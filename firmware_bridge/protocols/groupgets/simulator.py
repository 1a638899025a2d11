"""A simulated C12880MA on the GroupGets sketch: an Arduino Uno streaming CSV lines, reading nothing."""
from __future__ import annotations

import numpy as np

from firmware_bridge.protocols.microspec import codec as microspec
from firmware_bridge.sim.device import SimulatedDevice
from firmware_bridge.sim.instrument import Instrument, Scene


class GroupGetsDevice(SimulatedDevice):
    r"""The GroupGets C12880MA example sketch on an Arduino Uno.

    A free-running stream of CSV lines ``v0,...,v287,\n`` (10-bit values, trailing comma), about every
    10 ms plus the line's transfer time. It takes no commands; the integration time is fixed by the
    sketch's clocking.
    """

    INTEGRATION = 0.0001  # ST high for 15 clocks + 48: well under a millisecond
    PERIOD = 0.010

    def __init__(self, instrument: Instrument, scene: Scene, seed: int = 0):
        super().__init__(instrument, scene, seed)
        self._due = 0.0

    def receive(self, data: bytes, now: float) -> None:
        """Bytes from the host, at monotonic time ``now``."""
        pass  # the sketch reads nothing

    def next_event(self):
        """When :meth:`poll` next has something to do (None: nothing scheduled)."""
        return self._due

    def poll(self, now: float) -> None:
        """Time passes: emit what is due by ``now``."""
        if now < self._due or self.line.pending() > 2:  # a host that does not read loses lines
            return
        counts = np.rint(self.exposure(self.INTEGRATION, 1)).astype(np.int64)
        line = microspec.format_spectrum(counts, trailing_comma=True)
        self.line.emit(line)
        self.scene.advance()
        self._due = now + (self.PERIOD + len(line) * 10 / self.baud if self.line.paced else 0.0)


def c12880_uno_instrument(laser_nm: float = 532.0) -> Instrument:
    """The C12880MA read by an Uno's 10-bit ADC."""
    return Instrument(microspec.EXAMPLE_COEFFICIENTS, microspec.CHANNELS, laser_nm, max_count=microspec.UNO_FULL_SCALE,
                      dark_level=60.0, dark_rate=0.0, gain=4.0e6, electrons_per_count=20.0, read_noise=1.5,
                      resolution_pixels=8.0)


def simulated_device(scene: Scene, seed: int, laser_nm: float, firmware: str | None) -> GroupGetsDevice:
    """A C12880MA on an Uno at ``laser_nm`` looking at ``scene`` (one firmware: ``firmware`` is None)."""
    return GroupGetsDevice(c12880_uno_instrument(laser_nm), scene, seed)
