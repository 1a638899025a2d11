"""The control-port line protocol: a host or PLC sends one command per line, gets one JSON line back.

Commands (case-insensitive): ``MEASURE``, ``SST``, ``STATUS``, ``LAST``, ``MODEL``, ``RELOAD``, ``HELP``. Only MEASURE
takes arguments, a mode: ``MEASURE CLASSIFY``, ``MEASURE IDENTIFY`` or ``MEASURE VERIFY NAME`` (NAME: the
library entry as written, the rest of the line); a bare ``MEASURE`` measures in the configured mode.
Lines end with LF (CR LF accepted) and are at most :data:`MAX_LINE` bytes; a longer line is refused
whole, and an unknown command gets an error line. Nothing a client sends names a file or a setting.
"""
from __future__ import annotations

import json
import socket

#: The service's local socket in its data directory, which speaks this protocol.
SOCKET_FILE = "control.sock"
MAX_LINE = 64
COMMANDS = {
    "MEASURE": "take a measurement and reply with the verdict; MEASURE CLASSIFY | IDENTIFY | VERIFY NAME for a mode "
               "other than the configured one",
    "STATUS": "service state, spectrometer, model, counts",
    "LAST": "the last recorded measurement",
    "MODEL": "the model in use: id, classes, axis",
    "SST": "the system suitability test: measure the standard in the beam, check band positions, resolution and "
           "SNR, record PASS or FAIL",
    "RELOAD": "switch to the configured bundle as it is now, if it verifies, passes its self-test and fits the "
              "spectrometer",
    "HELP": "this list",
}


class LineReader:
    """Splits a byte stream into command lines, refusing over-long ones.

    :meth:`feed` returns the complete lines received, each as ``(text, None)`` or, for a line that was
    too long or not ASCII, ``(None, error message)``.
    """

    def __init__(self, max_line: int = MAX_LINE):
        self.max_line = max_line
        self._buf = bytearray()
        self._overflow = False

    def feed(self, data: bytes) -> list[tuple[str | None, str | None]]:
        """The lines that ``data`` completes, each ``(text, None)`` or ``(None, error message)``."""
        out = []
        for b in data:
            if b == 0x0A:
                if self._overflow:
                    out.append((None, f"line longer than {self.max_line} bytes; commands are short words"))
                else:
                    raw = bytes(self._buf).rstrip(b"\r")
                    try:
                        out.append((raw.decode("ascii"), None))
                    except UnicodeDecodeError:
                        out.append((None, "line is not ASCII text"))
                self._buf.clear()
                self._overflow = False
            elif not self._overflow:
                self._buf.append(b)
                if len(self._buf) > self.max_line:
                    self._buf.clear()
                    self._overflow = True
        return out


def reply(payload: dict) -> bytes:
    """One reply line."""
    return (json.dumps(payload, separators=(",", ":"), default=str) + "\n").encode("ascii")


def read_reply(recv) -> dict:
    """The reply line a client gets, as a dict.

    ``recv()`` returns the next bytes from the service (``b""`` when the connection is closed).
    """
    data = b""
    while not data.endswith(b"\n"):
        chunk = recv()
        if not chunk:
            break
        data += chunk
    return json.loads(data)


def dispatch(line: str, service, trigger: str = "control-port") -> dict:
    """The reply to one command line, from ``service`` (see :class:`device.service.measurement.Service`).

    ``trigger`` is what a MEASURE is recorded as having been triggered by (the line it came on).
    """
    words = line.strip().split()
    if not words:
        return {"ok": False, "error": "empty line; send HELP for the commands"}
    command = words[0].upper()
    if command not in COMMANDS:
        return {"ok": False, "error": f"unknown command {words[0][:16]!r}; send HELP for the commands"}
    if command == "MEASURE":
        return {"command": "MEASURE", **_measure(line, words, service, trigger)}
    if len(words) > 1:
        return {"ok": False, "command": command, "error": f"{command} takes no arguments"}
    if command == "HELP":
        return {"ok": True, "command": "HELP", "commands": COMMANDS}
    if command == "STATUS":
        return {"ok": True, "command": "STATUS", **service.status()}
    if command == "LAST":
        return {"command": "LAST", **service.last()}
    if command == "SST":
        return {"command": "SST", **service.sst(trigger)}
    if command == "RELOAD":
        return {"command": "RELOAD", **service.reload()}
    return {"ok": True, "command": "MODEL", **service.model_info()}


#: The modes MEASURE takes (device.service.config.MODES), as the protocol spells them.
MEASURE_MODES = ("CLASSIFY", "IDENTIFY", "VERIFY")


def _measure(line: str, words: list, service, trigger: str) -> dict:
    """The reply to a MEASURE line: bare, or with a mode (and, for VERIFY, the entry: the rest of the line)."""
    if len(words) == 1:
        return service.measure(trigger)
    mode = words[1].upper()
    if mode not in MEASURE_MODES:
        return {"ok": False, "error": f"MEASURE takes no argument or one of CLASSIFY, IDENTIFY, VERIFY NAME, "
                                      f"not {words[1][:16]!r}"}
    if mode == "VERIFY":
        if len(words) < 3:
            return {"ok": False, "error": "MEASURE VERIFY needs the library entry to verify against: MEASURE VERIFY "
                                          "NAME"}
        return service.measure(trigger, "verify", line.strip().split(None, 2)[2])
    if len(words) > 2:
        return {"ok": False, "error": f"MEASURE {mode} takes nothing more"}
    return service.measure(trigger, mode.lower())


def send_command(path, command: str, timeout: float = 120.0) -> dict:
    """Send one command to a running service's local socket and return its JSON reply."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(timeout)
        s.connect(str(path))
        s.sendall(command.encode("ascii") + b"\n")
        return read_reply(lambda: s.recv(65536))
