"""The OBP driver: baud-rate negotiation from power-up, MD5-checked messages, recovery after a device reset."""
from __future__ import annotations

import struct
import time

import numpy as np

from firmware_bridge.calibration import wavelengths as polynomial_wavelengths
from firmware_bridge.errors import (
    BridgeError,
    DeviceNotAnswering,
    FramingError,
    NackError,
    ShortFrameError,
    SpectrometerTimeout,
)
from firmware_bridge.protocols.obp import PROTOCOL
from firmware_bridge.protocols.obp import codec as obp
from firmware_bridge.spectrometer import Spectrometer


class OBPSpectrometer(Spectrometer):
    """Ocean STS-class spectrometers over RS-232 with the Ocean Binary Protocol."""

    PROTOCOL = PROTOCOL
    FULL_SCALE = 16383  # STS and Spark: 14-bit ADC
    POWER_UP_BAUD = 9600
    OPEN_ATTEMPTS = 3  # a reply damaged on the line does not make opening fail

    def __init__(self, url: str, baud: int = 115200, md5: bool = True):
        super().__init__(url, baud)
        self.md5 = md5
        self._pixels = None
        self._laser = False
        self._settings_sent = False
        self._recovering = False
        self._serial = None
        self._coefficients = None

    def open(self) -> None:
        """Open at the power-up rate, switch the device to the configured one, read its pixels."""
        self._connect(self.POWER_UP_BAUD)
        self._recovering = True  # opening is its own recovery
        try:
            if self.baud != self.POWER_UP_BAUD:
                for attempt in range(self.OPEN_ATTEMPTS):
                    try:
                        self._command(obp.SET_RS232_BAUD_RATE, struct.pack("<I", self.baud))
                        break
                    except SpectrometerTimeout:
                        break  # perhaps already switched by an earlier session: try the target rate
                    except (FramingError, ShortFrameError, NackError):
                        if attempt == self.OPEN_ATTEMPTS - 1:
                            raise
                self.port.baudrate = self.baud
            for attempt in range(self.OPEN_ATTEMPTS):
                try:
                    reply = self._query(obp.GET_NUMBER_OF_PIXELS, b"", 4)
                    break
                except (FramingError, ShortFrameError, NackError):
                    if attempt == self.OPEN_ATTEMPTS - 1:
                        raise
            self._pixels = struct.unpack("<I", reply.data[:4])[0]
        except SpectrometerTimeout:
            self.port.close()
            raise DeviceNotAnswering(f"{self.url}: no OBP device answers at {self.POWER_UP_BAUD} or {self.baud} "
                                     "baud; is it powered, and is this the right port?") from None
        finally:
            self._recovering = False

    def _send(self, message_type: int, data: bytes, ack: bool) -> None:
        self._drain(0.0)
        msg = obp.Message(message_type, data, obp.FLAG_ACK_REQUESTED if ack else 0,
                          checksum_type=obp.CHECKSUM_MD5 if self.md5 else obp.CHECKSUM_NONE)
        self._io("write", obp.encode(msg))

    def _receive(self, message_type: int, timeout: float) -> obp.Message:
        deadline = time.monotonic() + timeout
        # Hunt for the start bytes, skipping whatever garbage precedes them.
        prev = b""
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                self._drain()
                raise SpectrometerTimeout(f"no reply to OBP message 0x{message_type:08X} within {timeout:.2f} s")
            self.port.timeout = left
            b = self._io("read", 1)
            if not b:
                continue
            if prev + b == obp.START:
                break
            prev = b
        header = obp.START + self._read_exact(obp.HEADER_SIZE - 2, max(deadline - time.monotonic(), 0.01), "OBP header")
        try:
            total = obp.frame_length(header)
            frame = header + self._read_exact(total - obp.HEADER_SIZE, max(deadline - time.monotonic(), 0.01),
                                              "OBP message")
            msg = obp.decode(frame)
        except FramingError:
            self._drain()
            raise
        if msg.is_nack:
            raise NackError(msg.error, obp.ERROR_CODES.get(msg.error, "unknown error"), msg.message_type)
        if msg.message_type != message_type:
            self._drain()
            raise FramingError(f"reply is for message 0x{msg.message_type:08X}, not 0x{message_type:08X}")
        return msg

    def _timeout(self, reply_bytes: int, device_seconds: float = 0.0) -> float:
        return device_seconds + (obp.MIN_SIZE + reply_bytes) * 10 / self.port.baudrate + self.timeout_margin

    def _exchange(self, message_type: int, data: bytes, ack: bool, reply_bytes: int, device_seconds: float):
        self._send(message_type, data, ack)
        try:
            return self._receive(message_type, self._timeout(reply_bytes, device_seconds))
        except SpectrometerTimeout:
            self._recover()
            raise

    def _recover(self) -> None:
        """After a silence: if the device reset (back at 9600 baud, settings lost), bring it back."""
        if self._recovering or self.port is None:
            return
        self._recovering = True
        try:
            try:
                self._send(obp.GET_NUMBER_OF_PIXELS, b"", ack=False)
                self._receive(obp.GET_NUMBER_OF_PIXELS, self._timeout(4))
                return  # it is there: only that reply was lost
            except BridgeError:
                pass
            try:
                self.port.close()
                self.open()
                self._restore()
            except BridgeError:
                pass  # still gone: the next command tries again
        finally:
            self._recovering = False

    def _restore(self) -> None:
        if self._settings_sent:
            self._command(obp.SET_ITIME_USEC, struct.pack("<I", round(self.integration_s * 1e6)))
            self._command(obp.SET_SCANS_TO_AVERAGE, struct.pack("<H", self.averages))
        if self._laser:
            self._command(obp.SET_LAMP_ENABLE, b"\x01")

    def _query(self, message_type: int, data: bytes = b"", reply_bytes: int = 16, device_seconds: float = 0.0):
        return self._exchange(message_type, data, False, reply_bytes, device_seconds)

    def _command(self, message_type: int, data: bytes) -> None:
        self._exchange(message_type, data, True, 0, 0.0)

    def identify(self) -> dict:
        """What the device is: protocol, model, serial number where it has one, pixels, baud rate."""
        if self._serial is None:  # constant: read once
            self._serial = self._query(obp.GET_SERIAL_NUMBER).data.rstrip(b"\0").decode("ascii", "replace")
        return {"protocol": self.protocol, "model": "Ocean STS-class (OBP)", "serial": self._serial,
                "pixels": self._pixels, "baud": self.baud}

    def set_integration_time(self, seconds: float) -> None:
        """Set the integration time, s, within what the device allows."""
        self._check_integration(seconds)
        us = round(seconds * 1e6)
        self.integration_s = us * 1e-6
        self._settings_sent = True
        self._command(obp.SET_ITIME_USEC, struct.pack("<I", us))

    def set_averages(self, n: int) -> None:
        """Set how many scans each :meth:`acquire` averages."""
        super().set_averages(n)
        self._settings_sent = True
        self._command(obp.SET_SCANS_TO_AVERAGE, struct.pack("<H", self.averages))

    def set_laser(self, on: bool) -> None:
        """Switch the device's laser line on or off."""
        self._laser = bool(on)
        self._command(obp.SET_LAMP_ENABLE, bytes((1 if on else 0,)))

    def temperature(self) -> float:
        """The detector's temperature, degrees C."""
        return struct.unpack("<f", self._query(obp.GET_TEMPERATURE, b"\x00").data[:4])[0]

    def wavelengths(self) -> np.ndarray:
        """From the polynomial stored in the device (read once)."""
        if self._coefficients is None:
            count = self._query(obp.GET_WL_COEFF_COUNT).data[0]
            self._coefficients = [struct.unpack("<f", self._query(obp.GET_WL_COEFF, bytes((i,))).data[:4])[0]
                                  for i in range(count)]
        return polynomial_wavelengths(self._coefficients, self._pixels)

    def acquire(self) -> tuple[np.ndarray, dict]:
        """One spectrum of raw counts (float, averaged) and its metadata."""
        msg = self._query(obp.GET_RAW_SPECTRUM_NOW, b"", 2 * self._pixels, self.integration_s * self.averages)
        if len(msg.data) != 2 * self._pixels:
            raise ShortFrameError(f"spectrum of {len(msg.data)} bytes, expected {2 * self._pixels}")
        counts = np.frombuffer(msg.data, "<u2").astype(np.float64)
        return counts, {"protocol": self.protocol, "integration_s": self.integration_s, "averages": self.averages,
                        "full_scale": self.FULL_SCALE}


DRIVER = OBPSpectrometer
