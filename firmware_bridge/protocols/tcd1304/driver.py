"""The TCD1304 driver: one-shot frames, averaging beyond the firmware's, the even/odd balance."""
from __future__ import annotations

import numpy as np

from firmware_bridge.calibration import wavelengths as polynomial_wavelengths
from firmware_bridge.errors import FramingError, SettingError
from firmware_bridge.integrity import check_no_isolated_spikes, is_saturated
from firmware_bridge.protocols.tcd1304 import PROTOCOL
from firmware_bridge.protocols.tcd1304 import codec as tcd1304
from firmware_bridge.spectrometer import Spectrometer


class TCD1304Spectrometer(Spectrometer):
    """Esben Rossel's TCD1304 firmware (Nucleo UART at 115200 baud, or the F103 native-USB build)."""

    PROTOCOL = PROTOCOL

    def __init__(self, url: str, baud: int = 115200, firmware: str = "2019", coefficients=None,
                 fm_hz: int = tcd1304.FM_HZ):
        super().__init__(url, baud)
        if firmware not in tcd1304.ONE_SHOT:
            raise SettingError(f"firmware generation is 2017 or 2019, not {firmware!r}")
        self.firmware = firmware
        self.coefficients = coefficients
        self.fm = fm_hz
        self.integration_s = 0.01

    def identify(self) -> dict:
        """What the device is: protocol, model, serial number where it has one, pixels, baud rate."""
        return {"protocol": self.protocol, "model": f"TCD1304 (Rossel firmware {self.firmware})",
                "serial": None, "pixels": tcd1304.ACTIVE.stop - tcd1304.ACTIVE.start, "baud": self.baud}

    @property
    def integration_range_s(self) -> tuple[float, float]:
        """Shortest and longest integration time at this driver's master clock, s."""
        return tcd1304.integration_range(self.fm)

    def set_integration_time(self, seconds: float) -> None:
        """Set the integration time, s, within what the device allows."""
        self._check_integration(seconds)
        tcd1304.periods(seconds, self.fm)  # and the ticks it rounds to
        self.integration_s = seconds

    def _frame(self, averages: int) -> np.ndarray:
        sh, icg = tcd1304.periods(self.integration_s, self.fm)
        command = tcd1304.encode_command(sh, icg, tcd1304.ONE_SHOT[self.firmware], averages)
        self._drain()
        self._io("write", command)  # all 12 bytes in one write (the USB build needs it)
        timeout = tcd1304.latency(sh, icg, averages, self.baud, self.fm) * 1.5 + self.timeout_margin
        data = self._read_exact(tcd1304.FRAME_BYTES, timeout, "TCD1304 frame")
        try:
            return tcd1304.decode_frame(data)
        except FramingError:
            self._drain()
            raise

    def acquire(self) -> tuple[np.ndarray, dict]:
        """Averages above the firmware's 15 (or any, on the 2017 firmware) are done here."""
        if self.firmware == "2017":
            chunks = [1] * self.averages
        else:
            full, rest = divmod(self.averages, tcd1304.MAX_FIRMWARE_AVERAGES)
            chunks = [tcd1304.MAX_FIRMWARE_AVERAGES] * full + ([rest] if rest else [])
        frame = sum(self._frame(c).astype(np.float64) * c for c in chunks) / sum(chunks)
        # Balance the even/odd output imbalance, estimated on the shielded elements (as pyCCDGUI does).
        shielded = np.arange(tcd1304.SHIELDED.start, tcd1304.SHIELDED.stop)
        frame[::2] -= frame[shielded[shielded % 2 == 0]].mean() - frame[shielded[shielded % 2 == 1]].mean()
        dark = float(frame[tcd1304.SHIELDED].mean())
        if not is_saturated(frame[tcd1304.ACTIVE], tcd1304.MAX_COUNT, inverted=True):
            check_no_isolated_spikes(frame[tcd1304.ACTIVE], "TCD1304 frame")
        return frame[tcd1304.ACTIVE].astype(np.float64), {
            "protocol": self.protocol, "integration_s": self.integration_s, "averages": self.averages,
            "dark_reference": dark, "inverted": True, "full_scale": tcd1304.MAX_COUNT}

    def wavelengths(self) -> np.ndarray:
        """Wavelength of every pixel :meth:`acquire` returns, nm."""
        if self.coefficients is None:
            raise SettingError("the TCD1304 stores no wavelength calibration; configure the polynomial "
                               "fitted by 'raman-bridge calibrate'")
        return polynomial_wavelengths(self.coefficients, tcd1304.ACTIVE.stop - tcd1304.ACTIVE.start)


DRIVER = TCD1304Spectrometer
