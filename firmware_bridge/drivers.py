"""Spectrometer drivers: one interface over OBP, the TCD1304 firmware and the C12880MA microspec sketch.

A driver talks to a pyserial port (``/dev/ttyACM0``, ``/dev/ttyUSB0``, a pty, or ``sim://...``) through
the byte codecs of this package. Timeouts come from each protocol's own timing model; every failure
is a specific :class:`~firmware_bridge.errors.BridgeError`, after which the driver has drained the
line and is ready for the next command.
"""
from __future__ import annotations

import struct
import time

import numpy as np

from . import microspec, obp, tcd1304
from .calibration import wavelengths as polynomial_wavelengths
from .errors import (
    BridgeError,
    DeviceNotAnswering,
    FramingError,
    NackError,
    PortGoneError,
    SettingError,
    ShortFrameError,
    SpectrometerTimeout,
)
from .integrity import check_no_isolated_spikes

#: Slack added to every timeout computed from a protocol's timing model, seconds.
TIMEOUT_MARGIN = 0.5
#: Standard UART rates: what a serial port (and a pty) can be set to.
STANDARD_BAUD_RATES = (9600, 19200, 38400, 57600, 115200, 230400, 460800, 921600)


def open_port(url: str, baud: int, timeout: float, port=None):
    """Open a serial port or URL (or reopen ``port``), turning the usual failures into :class:`PortGoneError`."""
    try:
        import serial
    except ImportError:
        raise PortGoneError("pyserial is not installed: pip install 'raman-edge[device]'") from None

    from .urlhandler import register

    register()
    try:
        if port is None:
            return serial.serial_for_url(url, baudrate=baud, timeout=timeout)
        port.baudrate = baud
        port.open()
        return port
    except (serial.SerialException, OSError) as exc:
        reason = str(exc)
        hint = ("add the user to the 'dialout' group (sudo usermod -aG dialout $USER, then log in again)"
                if "ermission" in reason else
                "check the cable and the port name (ls /dev/ttyACM* /dev/ttyUSB*)")
        raise PortGoneError(f"cannot open {url}: {reason}; {hint}") from None


class Spectrometer:
    """The interface every driver implements.

    Use as a context manager, or call :meth:`open` and :meth:`close`.
    """

    protocol = ""
    has_laser = False
    #: The integration time is set by the device's firmware; :meth:`set_integration_time` refuses.
    fixed_integration = False
    #: Baud rates the protocol's devices can use.
    BAUD_RATES = STANDARD_BAUD_RATES
    #: Most scans :meth:`set_averages` accepts (averaged by the device or here).
    MAX_AVERAGES = 5000

    def __init__(self, url: str, baud: int):
        if isinstance(baud, bool) or baud not in self.BAUD_RATES:
            raise SettingError(f"baud rate {baud} is not one the {self.protocol} protocol uses: choose one of "
                               + ", ".join(map(str, self.BAUD_RATES)))
        self.url = url
        self.baud = baud
        self.port = None
        self.integration_s = 0.1
        self.averages = 1
        #: Slack on every timeout from the protocol's timing model, seconds.
        self.timeout_margin = TIMEOUT_MARGIN

    def __enter__(self):
        self.open()
        return self

    def __exit__(self, *exc):
        self.close()

    def open(self) -> None:
        self._connect(self.baud)

    def _connect(self, baud: int) -> None:
        """Open the port at ``baud``; a port lost earlier is reopened (the same device comes back)."""
        self.port = open_port(self.url, baud, 1.0, None if self.port is None or self.port.is_open else self.port)

    def close(self) -> None:
        if self.port is not None:
            try:
                if self.has_laser and self.port.is_open:
                    self.set_laser(False)
            except BridgeError:
                pass
            finally:
                self.port.close()
                self.port = None

    def identify(self) -> dict:
        """What the device is: protocol, model, serial number where it has one, pixels."""
        raise NotImplementedError

    def set_integration_time(self, seconds: float) -> None:
        raise NotImplementedError

    def set_averages(self, n: int) -> None:
        try:
            whole = not isinstance(n, bool) and float(n).is_integer()
        except (TypeError, ValueError, OverflowError):
            whole = False
        if not (whole and 1 <= n <= self.MAX_AVERAGES):
            raise SettingError(f"averages must be a whole number from 1 to {self.MAX_AVERAGES}, not {n}")
        self.averages = int(n)

    def acquire(self) -> tuple[np.ndarray, dict]:
        """One spectrum of raw counts (float, averaged) and its metadata."""
        raise NotImplementedError

    def wavelengths(self) -> np.ndarray:
        """Wavelength of every pixel :meth:`acquire` returns, nm."""
        raise NotImplementedError

    def set_laser(self, on: bool) -> None:
        raise SettingError(f"the {self.protocol} device has no laser line; gate the laser another way (GPIO)")

    # -- helpers ---------------------------------------------------------------------------
    def _io(self, method: str, *args):
        """Call a method of the port, reconnecting first if it went away; I/O failures -> PortGoneError."""
        import serial

        if self.port is None:
            raise PortGoneError(f"{self.url} is not open; open the spectrometer first")
        if not self.port.is_open:
            self.open()  # the port went away earlier: reconnect, then re-apply the settings
            self._restore()
        try:
            return getattr(self.port, method)(*args)
        except (serial.SerialException, OSError) as exc:
            self.port.close()  # kept, to be reopened by the next call
            raise PortGoneError(f"{self.url} went away ({exc}); check the cable and power") from None

    def _restore(self) -> None:
        """Re-apply settings the device lost (after a reconnection or a reset)."""

    def _read_exact(self, size: int, timeout: float, what: str) -> bytes:
        self.port.timeout = timeout
        data = self._io("read", size)
        if len(data) < size:
            self._drain()
            if not data:
                raise SpectrometerTimeout(f"no {what} from {self.url} within {timeout:.2f} s")
            raise ShortFrameError(f"{what} from {self.url} cut short: {len(data)} of {size} bytes")
        return data

    def _drain(self, quiet: float = 0.05) -> None:
        """Discard input until the line has been quiet for ``quiet`` seconds."""
        self._io("reset_input_buffer")
        self.port.timeout = quiet
        while self._io("read", 4096):
            pass


class OBPSpectrometer(Spectrometer):
    """Ocean STS-class spectrometers over RS-232 with the Ocean Binary Protocol."""

    protocol = "obp"
    has_laser = True  # the lamp-enable line gates the laser driver
    FULL_SCALE = 16383  # STS and Spark: 14-bit ADC
    POWER_UP_BAUD = 9600
    BAUD_RATES = obp.BAUD_RATES
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
        if self._serial is None:  # constant: read once
            self._serial = self._query(obp.GET_SERIAL_NUMBER).data.rstrip(b"\0").decode("ascii", "replace")
        return {"protocol": self.protocol, "model": "Ocean STS-class (OBP)", "serial": self._serial,
                "pixels": self._pixels, "baud": self.baud}

    def set_integration_time(self, seconds: float) -> None:
        if not 10e-6 <= seconds <= 85:  # False for NaN too
            raise SettingError(f"integration time {seconds:g} s is outside the device's 10 us - 85 s")
        us = round(seconds * 1e6)
        self.integration_s = us * 1e-6
        self._settings_sent = True
        self._command(obp.SET_ITIME_USEC, struct.pack("<I", us))

    def set_averages(self, n: int) -> None:
        super().set_averages(n)
        self._settings_sent = True
        self._command(obp.SET_SCANS_TO_AVERAGE, struct.pack("<H", self.averages))

    def set_laser(self, on: bool) -> None:
        self._laser = bool(on)
        self._command(obp.SET_LAMP_ENABLE, bytes((1 if on else 0,)))

    def temperature(self) -> float:
        return struct.unpack("<f", self._query(obp.GET_TEMPERATURE, b"\x00").data[:4])[0]

    def wavelengths(self) -> np.ndarray:
        """From the polynomial stored in the device (read once)."""
        if self._coefficients is None:
            count = self._query(obp.GET_WL_COEFF_COUNT).data[0]
            self._coefficients = [struct.unpack("<f", self._query(obp.GET_WL_COEFF, bytes((i,))).data[:4])[0]
                                  for i in range(count)]
        return polynomial_wavelengths(self._coefficients, self._pixels)

    def acquire(self) -> tuple[np.ndarray, dict]:
        msg = self._query(obp.GET_RAW_SPECTRUM_NOW, b"", 2 * self._pixels, self.integration_s * self.averages)
        if len(msg.data) != 2 * self._pixels:
            raise ShortFrameError(f"spectrum of {len(msg.data)} bytes, expected {2 * self._pixels}")
        counts = np.frombuffer(msg.data, "<u2").astype(np.float64)
        return counts, {"protocol": self.protocol, "integration_s": self.integration_s, "averages": self.averages,
                        "full_scale": self.FULL_SCALE}


class TCD1304Spectrometer(Spectrometer):
    """Esben Rossel's TCD1304 firmware (Nucleo UART at 115200 baud, or the F103 native-USB build)."""

    protocol = "tcd1304"

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
        return {"protocol": self.protocol, "model": f"TCD1304 (Rossel firmware {self.firmware})",
                "serial": None, "pixels": tcd1304.ACTIVE.stop - tcd1304.ACTIVE.start, "baud": self.baud}

    def set_integration_time(self, seconds: float) -> None:
        tcd1304.periods(seconds, self.fm)  # validates
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
        check_no_isolated_spikes(frame[tcd1304.ACTIVE], "TCD1304 frame")
        return frame[tcd1304.ACTIVE].astype(np.float64), {
            "protocol": self.protocol, "integration_s": self.integration_s, "averages": self.averages,
            "dark_reference": dark, "inverted": True, "full_scale": tcd1304.MAX_COUNT}

    def wavelengths(self) -> np.ndarray:
        if self.coefficients is None:
            raise SettingError("the TCD1304 stores no wavelength calibration; configure the polynomial "
                               "fitted by 'raman-bridge calibrate'")
        return polynomial_wavelengths(self.coefficients, tcd1304.ACTIVE.stop - tcd1304.ACTIVE.start)


class MicrospecSpectrometer(Spectrometer):
    """Hamamatsu C12880MA on the open-eio microspec sketch (text commands over USB serial)."""

    protocol = "microspec"
    LINE_TIME = 0.05  # a 288-value line over native USB, generously

    def __init__(self, url: str, baud: int = 115200, coefficients=microspec.EXAMPLE_COEFFICIENTS):
        super().__init__(url, baud)
        self.coefficients = coefficients
        self.integration_s = 0.01

    def identify(self) -> dict:
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

    def set_integration_time(self, seconds: float) -> None:
        if not 0 < seconds <= 10:
            raise SettingError(f"integration time {seconds:g} s is outside 0-10 s")
        self._drain()
        self._io("write", microspec.command("SPEC.INTEG", float(seconds)))
        self.integration_s = seconds

    def _restore(self) -> None:
        self._io("write", microspec.command("SPEC.INTEG", float(self.integration_s)))

    def acquire(self) -> tuple[np.ndarray, dict]:
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
            check_no_isolated_spikes(values, "C12880MA spectrum")
            total += values
        return total / self.averages, {"protocol": self.protocol, "integration_s": self.integration_s,
                                       "averages": self.averages}

    def wavelengths(self) -> np.ndarray:
        return polynomial_wavelengths(self.coefficients, microspec.CHANNELS)


class GroupGetsSpectrometer(MicrospecSpectrometer):
    """Hamamatsu C12880MA on the GroupGets example sketch: a free-running stream of CSV lines with a
    trailing comma (Arduino Uno, 10-bit). No commands; the integration time is fixed by the sketch.
    """

    protocol = "groupgets"
    fixed_integration = True
    PERIOD = 0.010 + 1200 * 10 / 115200  # one line every 10 ms plus its transfer

    def identify(self) -> dict:
        return {**super().identify(), "model": "Hamamatsu C12880MA (GroupGets stream)"}

    def set_integration_time(self, seconds: float) -> None:
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
            check_no_isolated_spikes(values, "C12880MA stream line")
            total += values
        return total / self.averages, {"protocol": self.protocol, "integration_s": None,
                                       "averages": self.averages}


DRIVERS = {"obp": OBPSpectrometer, "tcd1304": TCD1304Spectrometer, "microspec": MicrospecSpectrometer,
           "groupgets": GroupGetsSpectrometer}
