"""systemd's notification protocol: readiness, status and watchdog pings (``sd_notify``), with no library.

The service and the uplink both run as ``Type=notify`` units with a watchdog.
"""
from __future__ import annotations

import os
import socket

#: Exit status of a unit's command for a configuration it cannot run with: the LSB "program is not
#: configured" status, which systemd shows as NOTCONFIGURED (the units' RestartPreventExitStatus).
EXIT_NOT_CONFIGURED = 6


def sd_notify(message: str) -> bool:
    """Send ``message`` (e.g. ``READY=1``) to systemd if it is listening; True if sent."""
    address = os.environ.get("NOTIFY_SOCKET")
    if not address:
        return False
    if address.startswith("@"):  # abstract namespace
        address = "\0" + address[1:]
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as s:
            s.sendto(message.encode(), address)
        return True
    except OSError:
        return False


def watchdog_interval() -> float | None:
    """Half the watchdog period systemd asks for, in seconds, or None."""
    usec = os.environ.get("WATCHDOG_USEC")
    pid = os.environ.get("WATCHDOG_PID")
    if not usec or (pid and pid != str(os.getpid())):  # the watchdog is meant for another process
        return None
    return int(usec) / 2e6
