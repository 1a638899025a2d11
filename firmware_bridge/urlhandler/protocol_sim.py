"""A simulated spectrometer as a pyserial port.

URL: ``sim://PROTOCOL[?seed=N&paced=0|1&scene=PATH&laser=NM&firmware=GENERATION&faults=RATE&response=C0:C1:...
&resolution=PIXELS&axis_error=NM]``.
"""
from __future__ import annotations

import urllib.parse

from serial.serialutil import PortNotOpenError, SerialBase, SerialException

from firmware_bridge.protocols import STANDARD_BAUD_RATES
from firmware_bridge.sim.serve import make_line


class Serial(SerialBase):
    """A pyserial port whose other end is a simulated device (see :mod:`firmware_bridge.sim`)."""

    BAUDRATES = STANDARD_BAUD_RATES

    def __init__(self, *args, **kwargs):
        self.line = None
        super().__init__(*args, **kwargs)

    def open(self):
        """Open a line to a new simulated device, or to the same one again."""
        if self.is_open:
            raise SerialException("port is already open")
        parts = urllib.parse.urlsplit(self.port)
        if parts.scheme != "sim":
            raise SerialException(f"expected sim://PROTOCOL[?options], got {self.port!r}")
        options = {k: v[-1] for k, v in urllib.parse.parse_qs(parts.query).items()}
        if self.line is not None:  # reopened: the same device is still at the other end
            if self.line.gone():
                raise SerialException(f"could not open port {self.port}: [Errno 2] No such file or directory")
            self.line.closed = False
        else:
            try:
                self.line = make_line(parts.netloc, options)
            except (ValueError, KeyError) as exc:
                raise SerialException(f"{self.port}: {exc}") from None
        self.is_open = True
        self._reconfigure_port()

    def close(self):
        """Close the port; the simulated device stays for a reopening."""
        if self.line is not None:
            self.line.close()
        self.is_open = False

    def _reconfigure_port(self):
        if self.line is not None:
            self.line.host_baud = self._baudrate

    @property
    def in_waiting(self):
        """Bytes readable now."""
        self._check()
        return self.line.waiting()

    def read(self, size=1):
        """Up to ``size`` bytes within the port's timeout."""
        self._check()
        return self.line.read(size, self._timeout)

    def write(self, data):
        """Send ``data`` to the simulated device."""
        self._check()
        self.line.write(bytes(data))
        self._check()
        return len(data)

    def reset_input_buffer(self):
        """Discard what the host could read now."""
        self._check()
        self.line.drain()

    def reset_output_buffer(self):
        """Nothing is buffered on the way out: only check the port."""
        self._check()

    def _check(self):
        if not self.is_open or self.line is None:
            raise PortNotOpenError()
        if self.line.closed or self.line.gone():
            raise SerialException("device reports readiness to read but returned no data "
                                  "(device disconnected or multiple access on port?)")

    def _update_dtr_state(self):
        pass

    def _update_rts_state(self):
        pass

    def _update_break_state(self):
        pass
