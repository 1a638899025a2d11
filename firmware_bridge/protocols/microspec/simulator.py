"""A simulated C12880MA on the microspec sketch: SPEC.INTEG, SPEC.READ? and SPEC.TIMING? over native USB."""
from __future__ import annotations

import numpy as np

from firmware_bridge.protocols.microspec import codec as microspec
from firmware_bridge.sim.device import SimulatedDevice
from firmware_bridge.sim.instrument import Instrument, Scene


class MicrospecDevice(SimulatedDevice):
    """open-eio microspec firmware on a Teensy: SPEC.INTEG / SPEC.READ? text commands, 16-bit ADC."""

    MAX_LINE = 256
    baud_sensitive = False  # Teensy native USB

    def __init__(self, instrument: Instrument, scene: Scene, seed: int = 0):
        super().__init__(instrument, scene, seed)
        self.buffer = bytearray()
        self.integration = 0.01

    def receive(self, data: bytes, now: float) -> None:
        """Bytes from the host, at monotonic time ``now``."""
        for b in data:
            if b == 0x0A:
                self._line(bytes(self.buffer).decode("ascii", errors="replace").strip())
                self.buffer.clear()
            elif len(self.buffer) < self.MAX_LINE:
                self.buffer.append(b)

    def _line(self, text: str) -> None:
        if not text:
            return
        name, *args = text.split()
        if name == "SPEC.INTEG":
            try:
                if len(args) != 1:
                    raise ValueError
                self.integration = max(float(args[0]), 0.0)
            except ValueError:
                self.line.emit(b"### Error: SPEC.INTEG requires 1 argument 'time' (s)\n")
        elif name == "SPEC.READ?":
            counts = np.rint(self.exposure(self.integration, 1)).astype(np.int64)
            self.line.emit(microspec.format_spectrum(counts), delay=self.integration)
            self.scene.advance()  # no laser line: each acquisition is the next sample
        elif name == "SPEC.TIMING?":
            self.line.emit((",".join(str(10 * i) for i in range(10)) + "\n").encode())
        else:
            self.line.emit(f"### Error: command '{name}' not recognized ###\n".encode())


def c12880_instrument(laser_nm: float = 532.0) -> Instrument:
    """The instrument model of the simulated unit."""
    return Instrument(microspec.EXAMPLE_COEFFICIENTS, microspec.CHANNELS, laser_nm, max_count=microspec.FULL_SCALE,
                      dark_level=800.0, dark_rate=500.0, gain=60000.0, electrons_per_count=2.0, read_noise=20.0,
                      resolution_pixels=8.0)  # 15 nm at ~1.8 nm per pixel


def simulated_device(scene: Scene, seed: int, laser_nm: float, firmware: str | None) -> MicrospecDevice:
    """A C12880MA on a Teensy at ``laser_nm`` looking at ``scene`` (one firmware: ``firmware`` is None)."""
    return MicrospecDevice(c12880_instrument(laser_nm), scene, seed)
