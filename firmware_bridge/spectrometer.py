"""The driver interface every protocol's driver implements, and the serial-line handling they share.

A driver talks to a pyserial port (``/dev/ttyACM0``, ``/dev/ttyUSB0``, a pty, or ``sim://...``) through
its protocol's byte codec. Timeouts come from each protocol's own timing model; every failure is a
specific :class:`~firmware_bridge.errors.BridgeError`, after which the driver has drained the line and
is ready for the next command.
"""
from __future__ import annotations

import numpy as np

from firmware_bridge.errors import BridgeError, PortGoneError, SettingError, ShortFrameError, SpectrometerTimeout
from firmware_bridge.protocols import Protocol

#: Slack added to every timeout computed from a protocol's timing model, seconds.
TIMEOUT_MARGIN = 0.5


def open_port(url: str, baud: int, timeout: float, port=None):
    """Open a serial port or URL (or reopen ``port``), turning the usual failures into :class:`PortGoneError`."""
    try:
        import serial
    except ImportError:
        raise PortGoneError("pyserial is not installed: pip install 'raman-edge[device]'") from None

    if url.startswith("sim://"):
        from firmware_bridge.urlhandler import register  # the simulators are imported for sim:// URLs only

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

    #: The protocol the driver speaks, and what its devices can do.
    PROTOCOL: Protocol
    #: Most scans :meth:`set_averages` accepts (averaged by the device or here).
    MAX_AVERAGES = 5000

    def __init__(self, url: str, baud: int):
        rates = self.PROTOCOL.baud_rates
        if isinstance(baud, bool) or baud not in rates:
            raise SettingError(f"baud rate {baud} is not one the {self.protocol} protocol uses: choose one of "
                               + ", ".join(map(str, rates)))
        self.url = url
        self.baud = baud
        self.port = None
        self.integration_s = 0.1
        self.averages = 1
        #: Slack on every timeout from the protocol's timing model, seconds.
        self.timeout_margin = TIMEOUT_MARGIN

    @property
    def protocol(self) -> str:
        """The protocol's name."""
        return self.PROTOCOL.name

    @property
    def has_laser(self) -> bool:
        """The device switches the laser itself (:meth:`set_laser`)."""
        return self.PROTOCOL.has_laser

    @property
    def fixed_integration(self) -> bool:
        """The device's firmware sets the integration time; :meth:`set_integration_time` refuses."""
        return self.PROTOCOL.fixed_integration

    @property
    def integration_range_s(self) -> tuple | None:
        """Shortest and longest integration time the device accepts, s; None when its firmware fixes it."""
        return self.PROTOCOL.integration_range_s

    @property
    def scan_s(self) -> float:
        """Light-collecting time of one :meth:`acquire`, s: integration time x averages."""
        return self.integration_s * self.averages

    def _check_integration(self, seconds: float) -> None:
        """Raise :class:`SettingError` unless ``seconds`` is inside :attr:`integration_range_s`."""
        problem = self.PROTOCOL.integration_problem(seconds, self.integration_range_s)
        if problem:
            raise SettingError(problem)

    def __enter__(self):
        self.open()
        return self

    def __exit__(self, *exc):
        self.close()

    def open(self) -> None:
        """Open the port at the configured baud rate."""
        self._connect(self.baud)

    def _connect(self, baud: int) -> None:
        """Open the port at ``baud``; a port lost earlier is reopened (the same device comes back)."""
        self.port = open_port(self.url, baud, 1.0, None if self.port is None or self.port.is_open else self.port)

    def close(self) -> None:
        """Switch a laser line off, and close the port."""
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
        """Set the integration time, s, within what the device allows."""
        raise NotImplementedError

    def set_averages(self, n: int) -> None:
        """Set how many scans each :meth:`acquire` averages."""
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
        """Switch the device's laser line on or off."""
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
