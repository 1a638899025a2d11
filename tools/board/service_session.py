"""On the (emulated) board: the installed service with a simulated spectrometer, triggered twice.

Run by the board test as the service's user with the installed environment's Python, after ``install.sh``::

    sudo -u raman-edge env GPIOZERO_PIN_FACTORY=mock /opt/raman-edge/venv/bin/python service_session.py

``raman-bridge simulate`` serves a simulated OBP spectrometer on a pseudo-terminal; the service is
``raman-device run`` (in this process, so that its push button is one of gpiozero's mock pins here) with
the installed configuration, its spectrometer port and a control port (a second pseudo-terminal) filled
in. It waits for the service's own readiness message (``READY=1`` on a notify socket, as systemd would),
measures once from the control port and once from the button, stops it with SIGTERM and prints one JSON
line: the two replies, the exit status and the record's count.
"""
from __future__ import annotations

import json
import os
import re
import select
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import tty
from pathlib import Path

from device.cli import main as raman_device
from device.service.control import read_reply
from device.service.record import RecordStore

CONFIG = Path("/etc/raman-edge/raman-edge.toml")
RECORD = Path("/var/lib/raman-edge/record.db")
TIMEOUT = 120.0  # s; generous: emulated, every step is much slower than on a Pi


def reply(fd: int, command: bytes) -> dict:
    """Send ``command`` on the control port ``fd``; the service's reply."""
    os.write(fd, command + b"\n")
    deadline = time.monotonic() + TIMEOUT

    def recv() -> bytes:
        while not select.select([fd], [], [], 0.5)[0]:
            if time.monotonic() > deadline:
                raise TimeoutError(f"no reply to {command!r} in {TIMEOUT:.0f} s")
        return os.read(fd, 65536)

    return read_reply(recv)


class ServiceOutput:
    """The service's standard output, passed through, counting its ``measurement N: ...`` lines as they come."""

    def __init__(self, stream):
        self.stream = stream
        self.measured = 0
        self.changed = threading.Condition()

    def write(self, text: str) -> int:
        """Count and pass on ``text``."""
        with self.changed:
            self.measured += sum(line.startswith("measurement ") for line in text.splitlines())
            self.changed.notify_all()
        return self.stream.write(text)

    def flush(self) -> None:
        """Flush the stream passed to."""
        self.stream.flush()

    def wait_for_measurements(self, count: int, timeout: float) -> bool:
        """Whether ``count`` measurement lines were written within ``timeout`` seconds."""
        with self.changed:
            return self.changed.wait_for(lambda: self.measured >= count, timeout)


def drive(notify: socket.socket, control: int, output: ServiceOutput, results: dict) -> None:
    """Wait for READY=1, measure from the control port, then from the mock button; then stop the service."""
    try:
        notify.settimeout(TIMEOUT)
        message = b""
        while b"READY=1" not in message:
            message = notify.recv(4096)
        results["ready"] = True
        results["control"] = reply(control, b"MEASURE")
        from gpiozero import Device

        button = Device.pin_factory.pin(17)  # triggers.button_pin of the shipped configuration
        button.drive_low()
        if not output.wait_for_measurements(2, TIMEOUT):  # logged once recorded, LEDs set
            raise TimeoutError(f"the button gave no measurement in {TIMEOUT:.0f} s")
        button.drive_high()
        results["button"] = reply(control, b"LAST")
    except Exception as exc:  # reported in the JSON line; the service is stopped either way
        results["error"] = f"{type(exc).__name__}: {exc}"
    finally:
        os.kill(os.getpid(), signal.SIGTERM)


def main() -> int:
    """Run the session; print its JSON line; exit status 0 if both triggers gave a verdict."""
    work = Path(tempfile.mkdtemp(prefix="board-session-"))
    bin_dir = Path(sys.executable).parent
    simulator = subprocess.Popen([str(bin_dir / "raman-bridge"), "simulate", "--protocol", "obp", "--instant"],
                                 stdout=subprocess.PIPE, text=True)
    port = re.search(r" on (\S+)", simulator.stdout.readline()).group(1)
    master, slave = os.openpty()
    tty.setraw(slave)
    text = CONFIG.read_text().replace('"/dev/raman-spectrometer"', f'"{port}"')
    text = text.replace('# control_port = "/dev/ttyAMA0"', f'control_port = "{os.ttyname(slave)}"')
    config = work / "raman-edge.toml"
    config.write_text(text)
    notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    notify.bind(str(work / "notify"))
    os.environ["NOTIFY_SOCKET"] = str(work / "notify")
    results: dict = {"port": port}
    output = ServiceOutput(sys.stdout)
    sys.stdout = output
    threading.Thread(target=drive, args=(notify, master, output, results), daemon=True).start()
    results["exit_status"] = raman_device(["run", "--config", str(config)])
    sys.stdout = output.stream
    simulator.terminate()
    simulator.wait(timeout=30)
    store = RecordStore(RECORD)
    results["recorded"] = store.count()
    store.close()
    print(json.dumps(results))
    ok = all(results.get(k, {}).get("ok") for k in ("control", "button")) and results["exit_status"] == 0
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
