"""Serving a simulated device on a pseudo-terminal: a driver opens ``/dev/pts/N`` like ``/dev/ttyACM0``."""
from __future__ import annotations

import os
import select
import termios
import threading
import tty

from firmware_bridge.sim.line import SimulatedLine

#: termios speed constants -> baud.
_SPEEDS = {getattr(termios, f"B{b}"): b for b in (9600, 19200, 38400, 57600, 115200, 230400, 460800, 921600)
           if hasattr(termios, f"B{b}")}


class PtyServer:
    """Runs a :class:`SimulatedLine` behind a pty until :meth:`stop`.

    The baud rate the client sets on the pty is read back (termios settings live on the slave side),
    so a driver at the wrong rate meets the same silence as on a real UART.
    """

    def __init__(self, line: SimulatedLine):
        self.line = line
        self.master, self.slave = os.openpty()
        tty.setraw(self.slave)
        self.path = os.ttyname(self.slave)
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._from_host, daemon=True),
                         threading.Thread(target=self._to_host, daemon=True)]

    def start(self) -> "PtyServer":
        """Start serving; returns the server."""
        for t in self._threads:
            t.start()
        return self

    def _host_baud(self) -> int:
        try:
            return _SPEEDS.get(termios.tcgetattr(self.slave)[5], self.line.device.baud)
        except termios.error:
            return self.line.device.baud

    def _from_host(self) -> None:
        while not self._stop.is_set():
            ready, _, _ = select.select([self.master], [], [], 0.05)
            if ready:
                try:
                    data = os.read(self.master, 4096)
                except OSError:
                    continue
                self.line.host_baud = self._host_baud()
                self.line.write(data)

    def _to_host(self) -> None:
        while not self._stop.is_set():
            self.line.host_baud = self._host_baud()
            data = self.line.read(4096, 0.05)
            if data:
                try:
                    os.write(self.master, data)
                except OSError:
                    pass

    def stop(self) -> None:
        """Stop serving and close the pty."""
        self._stop.set()
        self.line.close()
        for t in self._threads:
            t.join(timeout=1)
        for fd in (self.master, self.slave):
            os.close(fd)
