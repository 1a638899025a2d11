"""``raman-bridge``: talking to spectrometer firmware over serial."""
from __future__ import annotations

import argparse
import sys


def build_parser() -> argparse.ArgumentParser:
    return argparse.ArgumentParser(
        prog="raman-bridge",
        description="Spectrometer firmware bridge. Drivers for the Ocean Binary Protocol, the TCD1304 "
                    "and the C12880MA, their simulators and calibration are being added; this release "
                    "has no subcommands yet.",
    )


def main(argv=None) -> int:
    build_parser().parse_args(argv)
    build_parser().print_help()
    return 0


if __name__ == "__main__":
    sys.exit(main())
