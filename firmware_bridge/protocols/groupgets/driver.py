"""The GroupGets driver: the next whole lines of a free-running stream."""
from __future__ import annotations

import numpy as np

from firmware_bridge.errors import FramingError, SettingError
from firmware_bridge.integrity import check_no_isolated_spikes, is_saturated
from firmware_bridge.protocols.groupgets import PROTOCOL
from firmware_bridge.protocols.microspec import codec as microspec
from firmware_bridge.protocols.microspec.driver import MicrospecSpectrometer


class GroupGetsSpectrometer(MicrospecSpectrometer):
    """Hamamatsu C12880MA on the GroupGets example sketch (Arduino Uno, 10-bit).

    A free-running stream of CSV lines with a trailing comma. No commands; the integration time is
    fixed by the sketch.
    """

    PROTOCOL = PROTOCOL
    FULL_SCALE = microspec.UNO_FULL_SCALE
    PERIOD = 0.010 + 1200 * 10 / 115200  # one line every 10 ms plus its transfer

    @property
    def scan_s(self) -> float:
        """Time of one :meth:`acquire`, s: a line period per average (the sketch's exposure is not known)."""
        return self.PERIOD * self.averages

    def identify(self) -> dict:
        """What the device is: protocol, model, serial number where it has one, pixels, baud rate."""
        return {**super().identify(), "model": "Hamamatsu C12880MA (GroupGets stream)"}

    def set_integration_time(self, seconds: float) -> None:
        """Set the integration time, s, within what the device allows."""
        raise SettingError("the GroupGets sketch has a fixed integration time: set none (no --integration), "
                           "or use the microspec firmware to set it")

    def _restore(self) -> None:
        pass

    def _drain(self, quiet: float = 0.05) -> None:
        """A stream is never quiet: discard what has arrived, and go on."""
        self._io("reset_input_buffer")

    def acquire(self) -> tuple[np.ndarray, dict]:
        """The next complete line(s) of the stream: the partial line in the buffer is discarded."""
        total = np.zeros(microspec.CHANNELS)
        for _ in range(self.averages):
            self._drain(0.0)
            self._readline(2 * self.PERIOD + self.timeout_margin, "stream line")  # the end of a partial line
            line = self._readline(2 * self.PERIOD + self.timeout_margin, "stream line")
            try:
                values = microspec.parse_spectrum(line, trailing_comma=True)
            except FramingError:
                self._drain()
                raise
            if not is_saturated(values, self.FULL_SCALE):
                check_no_isolated_spikes(values, "C12880MA stream line")
            total += values
        return total / self.averages, {"protocol": self.protocol, "integration_s": None,
                                       "averages": self.averages, "full_scale": self.FULL_SCALE}


DRIVER = GroupGetsSpectrometer
