"""``raman-edge-uplink --config FILE``: the uplink of the unit ``raman-edge-uplink`` (docs/fleet.md).

A command of its own rather than a ``raman-device`` subcommand: it imports only what the uplink needs,
so that it runs beside the measuring service in a small part of a board's memory (no NumPy).
"""
from __future__ import annotations

import argparse
import signal
import sys

from device.errors import RamanEdgeError
from device.service.config import load_config
from device.service.systemd import EXIT_NOT_CONFIGURED
from device.uplink.rollout import Rollouts
from device.uplink.uplink import Uplink


def main(argv=None) -> int:
    """Send the record to the fleet's broker until SIGTERM; exit status 6 (not configured) when it cannot start."""
    p = argparse.ArgumentParser(prog="raman-edge-uplink", description="Send the device's record to the fleet's "
                                "MQTT broker, publish its status, install signed rollouts.")
    p.add_argument("--config", required=True, help="the device's configuration file (TOML) with an [uplink] section")
    args = p.parse_args(argv)
    log = lambda msg: print(msg, flush=True)  # noqa: E731
    try:
        config = load_config(args.config)
        uplink = Uplink(config, log=log, rollouts=Rollouts(config, args.config, log=log))
    except RamanEdgeError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_NOT_CONFIGURED
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: uplink.stop())
    return uplink.run()


if __name__ == "__main__":
    sys.exit(main())
