"""``python -m tools``: the developer tools of a checkout (the demo and the fault soak), not installed on a board.

Run from the repository's top folder, e.g. ``python -m tools demo --model models/sers-pesticides``.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from device.cli import run
from firmware_bridge.commandline import add_subcommand


def cmd_demo(args) -> int:
    """The whole loop: simulated spectrometer, the service, triggers, verdicts, record."""
    from tools.demo import run_demo

    return run_demo(Path(args.model), args.measurements, Path(args.data), out=lambda msg: print(msg, flush=True))


def cmd_soak(args) -> int:
    """The service against each simulator with injected faults; exit status 1 if any promise broke."""
    from tools.soak import passed, soak

    protocols = tuple(p.strip() for p in args.protocols.split(","))
    results = soak(Path(args.model), protocols, args.acquisitions, args.fault_rate, args.seed,
                   log=lambda msg: print(msg, flush=True))
    ok = passed(results)
    print(json.dumps(results) if args.json else ("soak passed" if ok else "soak FAILED"))
    return 0 if ok else 1


def build_parser() -> argparse.ArgumentParser:
    """The ``python -m tools`` argument parser: the ``demo`` and ``soak`` subcommands."""
    p = argparse.ArgumentParser(prog="python -m tools", description="Developer tools of raman-edge (not on a board).")
    sub = p.add_subparsers(dest="command", required=True)
    d = add_subcommand(sub, "demo", help="the whole loop on this machine: simulated spectrometer, service, triggers")
    d.add_argument("--model", required=True, help="model bundle (with example spectra)")
    d.add_argument("--measurements", type=int, default=6, help="triggers to send")
    d.add_argument("--data", default="demo-data", help="data directory of the demo's service (emptied first)")
    d.set_defaults(func=cmd_demo)
    k = add_subcommand(sub, "soak", help="the service against each simulator with injected serial faults, counted")
    k.add_argument("--model", required=True, help="model bundle (its example spectra are the samples)")
    k.add_argument("--protocols", default="obp,tcd1304,microspec", help="simulators to soak, comma-separated")
    k.add_argument("--acquisitions", type=int, default=300, help="per protocol")
    k.add_argument("--fault-rate", type=float, default=0.05, help="probability that a device reply is damaged")
    k.add_argument("--seed", type=int, default=0, help="seed of the injected faults")
    k.add_argument("--json", action="store_true", help="print the counts as JSON at the end")
    k.set_defaults(func=cmd_soak)
    return p


def main(argv=None) -> int:
    """The ``python -m tools`` command: parse ``argv`` (default: the process's arguments), run; the exit status."""
    return run(build_parser().parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
