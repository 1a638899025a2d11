"""A simulated TCD1304 on Rossel's firmware: the 12-byte command window, one-shot and continuous frames."""
from __future__ import annotations

import struct

import numpy as np

from firmware_bridge.protocols.tcd1304 import codec as tcd1304
from firmware_bridge.sim.device import SimulatedDevice
from firmware_bridge.sim.instrument import Instrument, Scene

TCD1304_COEFFICIENTS = (772.5, 0.0860, -2.1e-6)  # nm over the 3648 effective pixels: ~772-1058 nm


class TCD1304Device(SimulatedDevice):
    """Rossel's TCD1304 firmware on a Nucleo: 12-byte command window, silent, 7388-byte frames."""

    EVEN_ODD_OFFSET = 6  # counts added to even elements, as pyCCDGUI's balance option expects

    def __init__(self, instrument: Instrument, scene: Scene, seed: int = 0, firmware: str = "2019",
                 fm_hz: int = tcd1304.FM_HZ):
        super().__init__(instrument, scene, seed)
        self.firmware = firmware
        self.fm = fm_hz
        self.window = bytearray()
        self.continuous = False
        self.settings = None  # (sh, icg, averages)
        self._due = None

    def receive(self, data: bytes, now: float) -> None:
        """Bytes from the host, at monotonic time ``now``."""
        for b in data:
            self.window.append(b)
            if len(self.window) == 12:
                self._command(bytes(self.window), now)
                self.window.clear()

    def _command(self, buf: bytes, now: float) -> None:
        # The firmware rotates its 12-byte DMA buffer so that the first 'E','R' pair (wrapping round)
        # comes first, and accepts whatever that yields.
        for i in range(12):
            if buf[i] == 0x45 and buf[(i + 1) % 12] == 0x52:
                buf = buf[i:] + buf[:i]
                break
        else:
            return
        sh, icg = struct.unpack(">II", buf[2:10])
        mode, avg = buf[10], buf[11]
        self.line.discard_output()  # any command aborts what was going on
        if self.firmware == "2017":
            self.continuous, avg = False, 1
            if mode != 1:
                self.settings, self._due = None, None
                return
        else:
            self.continuous = mode == 1
            avg = avg if 1 <= avg <= 15 else 1
        self.settings = (max(sh, 1), max(icg, 1), avg)
        t_icg = icg / self.fm
        self._due = now + (0.030 + 2 * t_icg + avg * t_icg if self.line.paced else 0.0)

    def next_event(self):
        """When :meth:`poll` next has something to do (None: nothing scheduled)."""
        return self._due

    def poll(self, now: float) -> None:
        """Time passes: emit what is due by ``now``."""
        if self._due is None or now < self._due:
            return
        if self.continuous and self.line.pending():  # host has not read the last frame yet
            return
        sh, icg, avg = self.settings
        self.line.emit(tcd1304.encode_frame(self.frame(sh / self.fm, avg)))
        self.scene.advance()  # no laser line: each frame is the next sample
        if self.continuous:
            transmit = tcd1304.FRAME_BYTES * 10 / self.baud
            self._due = now + (max(avg * icg / self.fm, transmit) if self.line.paced else 0.0)
        else:
            self._due = None

    def frame(self, seconds: float, averages: int) -> np.ndarray:
        """One 3694-element frame: dark references, inverted active pixels, even/odd offset."""
        dark = self.instrument.dark_level
        exposures = []
        for _ in range(averages):
            values = np.full(tcd1304.ELEMENTS, dark) + self.rng.normal(0, self.instrument.read_noise, tcd1304.ELEMENTS)
            values[tcd1304.ACTIVE] = self.exposure(seconds, 1)
            values[::2] += self.EVEN_ODD_OFFSET
            exposures.append(np.clip(np.rint(values), 0, tcd1304.MAX_COUNT).astype(np.int64))
        return np.sum(exposures, axis=0) // averages  # the firmware's integer average


def tcd1304_instrument(laser_nm: float = 785.0) -> Instrument:
    """The instrument model of the simulated unit."""
    return Instrument(TCD1304_COEFFICIENTS, 3648, laser_nm, max_count=4095, dark_level=3600.0, dark_rate=300.0,
                      gain=40000.0, electrons_per_count=10.0, read_noise=3.0, inverted=True,
                      resolution_pixels=3.0)


def simulated_device(scene: Scene, seed: int, laser_nm: float, firmware: str | None) -> TCD1304Device:
    """A TCD1304 board at ``laser_nm`` looking at ``scene``, on the ``firmware`` generation (None: 2019)."""
    return TCD1304Device(tcd1304_instrument(laser_nm), scene, seed, firmware or "2019")
