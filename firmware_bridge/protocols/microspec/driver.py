"""The microspec driver: SPEC.INTEG and SPEC.READ? text commands, one spectrum line per read."""
from __future__ import annotations

import numpy as np

from firmware_bridge.calibration import wavelengths as polynomial_wavelengths
from firmware_bridge.errors import FramingError, ShortFrameError, SpectrometerTimeout
from firmware_bridge.integrity import check_no_isolated_spikes, is_saturated
from firmware_bridge.protocols.microspec import PROTOCOL
from firmware_bridge.protocols.microspec import codec as microspec
from firmware_bridge.spectrometer import Spectrometer


class MicrospecSpectrometer(Spectrometer):
    """Hamamatsu C12880MA on the open-eio microspec sketch (text commands over USB serial)."""

    PROTOCOL = PROTOCOL
    LINE_TIME = 0.05  # a 288-value line over native USB, generously

    def __init__(self, url: str, baud: int = 115200, coefficients=microspec.EXAMPLE_COEFFICIENTS):
        super().__init__(url, baud)
        self.coefficients = coefficients
        self.integration_s = 0.01

    def identify(self) -> dict:
        """What the device is: protocol, model, serial number where it has one, pixels, baud rate."""
        return {"protocol": self.protocol, "model": "Hamamatsu C12880MA (microspec)", "serial": None,
                "pixels": microspec.CHANNELS, "baud": self.baud}

    def _readline(self, timeout: float, what: str) -> bytes:
        self.port.timeout = timeout
        line = self._io("read_until", b"\n", microspec.MAX_LINE)
        if not line.endswith(b"\n"):
            self._drain()
            if not line:
                raise SpectrometerTimeout(f"no {what} from {self.url} within {timeout:.2f} s")
            raise ShortFrameError(f"{what} from {self.url} cut short ({len(line)} bytes, no end of line)")
        return line

    #: Largest count a pixel can read (saturation).
    FULL_SCALE = microspec.FULL_SCALE

    def set_integration_time(self, seconds: float) -> None:
        """Set the integration time, s, within what the device allows."""
        self._check_integration(seconds)
        self._drain()
        self._io("write", microspec.command("SPEC.INTEG", float(seconds)))
        self.integration_s = seconds

    def _restore(self) -> None:
        self._io("write", microspec.command("SPEC.INTEG", float(self.integration_s)))

    def acquire(self) -> tuple[np.ndarray, dict]:
        """One spectrum of raw counts (float, averaged) and its metadata."""
        total = np.zeros(microspec.CHANNELS)
        for _ in range(self.averages):
            self._drain()
            self._io("write", microspec.command("SPEC.READ?"))
            line = self._readline(self.integration_s + self.LINE_TIME + self.timeout_margin, "spectrum line")
            try:
                values = microspec.parse_spectrum(line)
            except FramingError:
                self._drain()
                raise
            if not is_saturated(values, self.FULL_SCALE):
                check_no_isolated_spikes(values, "C12880MA spectrum")
            total += values
        return total / self.averages, {"protocol": self.protocol, "integration_s": self.integration_s,
                                       "averages": self.averages, "full_scale": self.FULL_SCALE}

    def wavelengths(self) -> np.ndarray:
        """Wavelength of every pixel :meth:`acquire` returns, nm."""
        return polynomial_wavelengths(self.coefficients, microspec.CHANNELS)


DRIVER = MicrospecSpectrometer
