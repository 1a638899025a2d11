"""``python -m tools``: the developer tools of a checkout, not installed on a board.

The demo, the fleet demo and the fault soak on this machine, the offline installer for a board, the board test,
and the unit test (the installed service under a real systemd).

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


def cmd_fleet_demo(args) -> int:
    """A whole fleet: broker, collector, simulated devices, measurements, a signed rollout, the dashboard."""
    from tools.fleet_demo import run_fleet_demo

    return run_fleet_demo(args.devices, Path(args.keep) if args.keep else None, args.serve,
                          out=lambda msg: print(msg, flush=True))


def cmd_soak(args) -> int:
    """The service against each simulator with injected faults; exit status 1 if any promise broke."""
    from tools.soak import passed, soak

    protocols = tuple(p.strip() for p in args.protocols.split(","))
    results = soak(Path(args.model), protocols, args.acquisitions, args.fault_rate, args.seed,
                   log=lambda msg: print(msg, flush=True))
    ok = passed(results)
    print(json.dumps(results) if args.json else ("soak passed" if ok else "soak FAILED"))
    return 0 if ok else 1


def cmd_installer(args) -> int:
    """Build the offline installer for a board, first the wheels its Python has none of on the index."""
    from tools.installer import make_installer

    make_installer(args.target, Path(args.out).resolve(), log=lambda msg: print(msg, flush=True))
    return 0


def cmd_board_test(args) -> int:
    """Install the target's offline installer on an emulated board, offline, and use it as the README says."""
    from tools.board.board_test import board_test

    return 0 if board_test(args.target, Path(args.out).resolve(), log=lambda msg: print(msg, flush=True)) else 1


def cmd_unit_test(args) -> int:
    """The systemd unit under a real systemd in a container; exit status 1 if any check failed."""
    from tools.unit_test import run_unit_test

    return run_unit_test(Path(args.cache), log=lambda msg: print(msg, flush=True))


def build_parser() -> argparse.ArgumentParser:
    """The ``python -m tools`` argument parser: one subcommand per tool (``demo``, ``fleet-demo``, ``soak``, ...)."""
    p = argparse.ArgumentParser(prog="python -m tools", description="Developer tools of raman-edge (not on a board).")
    sub = p.add_subparsers(dest="command", required=True)
    d = add_subcommand(sub, "demo", help="the whole loop on this machine: simulated spectrometer, service, triggers")
    d.add_argument("--model", required=True, help="model bundle (with example spectra)")
    d.add_argument("--measurements", type=int, default=6, help="triggers to send")
    d.add_argument("--data", default="demo-data", help="data directory of the demo's service (emptied first)")
    d.set_defaults(func=cmd_demo)
    f = add_subcommand(sub, "fleet-demo", help="a whole fleet on this machine: Mosquitto, the collector, simulated "
                                               "devices with uplinks, a signed rollout, the dashboard")
    f.add_argument("--devices", type=int, default=3, help="how many simulated devices (default 3)")
    f.add_argument("--keep", metavar="DIR", help="run in this new or empty directory and keep it (default: a "
                                                 "temporary one, removed)")
    f.add_argument("--serve", action="store_true", help="after the report, keep the fleet running until Ctrl-C")
    f.set_defaults(func=cmd_fleet_demo)
    k = add_subcommand(sub, "soak", help="the service against each simulator with injected serial faults, counted")
    k.add_argument("--model", required=True, help="model bundle (its example spectra are the samples)")
    k.add_argument("--protocols", default="obp,tcd1304,microspec", help="simulators to soak, comma-separated")
    k.add_argument("--acquisitions", type=int, default=300, help="per protocol")
    k.add_argument("--fault-rate", type=float, default=0.05, help="probability that a device reply is damaged")
    k.add_argument("--seed", type=int, default=0, help="seed of the injected faults")
    k.add_argument("--json", action="store_true", help="print the counts as JSON at the end")
    k.set_defaults(func=cmd_soak)
    from tools.installer import TARGETS

    i = add_subcommand(sub, "installer", help="the offline installer for a board (wheels pinned by hash, models, "
                                              "unit, install.sh), as dist/raman-edge-VERSION-TARGET.tar.gz")
    i.add_argument("--target", default="trixie-aarch64", choices=[*TARGETS, "host"],
                   help="Pi OS release and machine (host: this machine, to try it here)")
    i.add_argument("--out", default="dist", help="where to write it")
    i.set_defaults(func=cmd_installer)
    b = add_subcommand(sub, "board-test", help="the installer on an emulated board (debootstrap, qemu), offline, "
                                               "used as the README says; needs root")
    b.add_argument("--target", default="trixie-aarch64", choices=[t for t in TARGETS if "aarch64" in t])
    b.add_argument("--out", default=str(Path(__file__).resolve().parents[1] / "build" / "board-test"),
                   help="where the installers are built and unpacked (default: build/board-test)")
    b.set_defaults(func=cmd_board_test)
    u = add_subcommand(sub, "unit-test", help="the installed service under systemd as PID 1 of a container (root)")
    u.add_argument("--cache", default=str(Path(__file__).resolve().parents[1] / "build" / "roots"),
                   help="where the container's root is kept between runs (default: build/roots)")
    u.set_defaults(func=cmd_unit_test)
    return p


def main(argv=None) -> int:
    """The ``python -m tools`` command: parse ``argv`` (default: the process's arguments), run; the exit status."""
    return run(build_parser().parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
