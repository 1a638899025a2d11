"""A measuring service (`raman-device run`) in its own process, triggered over a pseudo-terminal control port.

Shared by the service and acquisition benchmarks: the process is the one a device runs, so the times
include everything between a host's ``MEASURE`` and the service's reply.
"""
from __future__ import annotations

import os
import subprocess
import sys
import time
import tty
from pathlib import Path

from device.service.control import read_reply

RAMAN_DEVICE = Path(sys.executable).parent / "raman-device"


class ServiceProcess:
    """``raman-device run`` on a configuration (TOML text without ``[triggers]`` and ``[data]``).

    Parameters
    ----------
    config : str
        The ``[spectrometer]``, ``[model]`` and optional ``[acquisition]`` sections.
    directory : Path
        Where the configuration and the record go.
    ready_timeout : float
        Seconds to wait for the ready line before giving up, s.

    Attributes
    ----------
    startup_s : float
        Process start to the ``ready:`` line on its standard output, s.
    """

    def __init__(self, config: str, directory: Path, ready_timeout: float = 60.0):
        self._master, self._slave = os.openpty()
        tty.setraw(self._slave)
        directory.mkdir(parents=True, exist_ok=True)
        path = directory / "raman-edge.toml"
        path.write_text(f'{config}\n[triggers]\ncontrol_port = "{os.ttyname(self._slave)}"\n'
                        f'[data]\ndirectory = "{directory / "data"}"\n')
        self._log = directory / "service.log"
        start = time.perf_counter()
        with open(self._log, "w") as log:  # a file, not a pipe: a long run's log never fills a pipe and blocks
            self.proc = subprocess.Popen([str(RAMAN_DEVICE), "run", "--config", str(path)], stdout=subprocess.PIPE,
                                         stderr=log, text=True)
        deadline = start + ready_timeout
        while True:
            line = self.proc.stdout.readline()
            if line.startswith("ready:"):
                break
            if not line or time.perf_counter() > deadline:
                self.close()
                raise RuntimeError(f"the service did not become ready: {self._log.read_text()[-2000:]}")
        self.startup_s = time.perf_counter() - start

    def measure(self, command: bytes = b"MEASURE\n") -> tuple[dict, float]:
        """The service's reply to ``command`` and the seconds from writing it to the whole reply, s."""
        start = time.perf_counter()
        os.write(self._master, command)
        reply = read_reply(lambda: os.read(self._master, 65536))  # blocks until the service writes
        return reply, time.perf_counter() - start

    def close(self) -> None:
        """Stop the service (SIGTERM, as systemd does) and close the control port."""
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        for fd in (self._master, self._slave):
            os.close(fd)
        self.proc.stdout.close()

    def __enter__(self) -> "ServiceProcess":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
