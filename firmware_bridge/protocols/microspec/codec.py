r"""Hamamatsu C12880MA Arduino sketches: the microspec command set and the GroupGets CSV stream.

microspec: ``SPEC.INTEG <seconds>\n`` (silent on success), ``SPEC.READ?\n`` answered by 288
comma-separated integers and ``\n``; errors are lines starting with ``###``. GroupGets: a free-running
stream of lines ``v0,v1,...,v287,\n`` (note the trailing comma).
"""
from __future__ import annotations

import numpy as np

from firmware_bridge.errors import DeviceError, FramingError

CHANNELS = 288
#: Largest count of the microspec firmware's 16-bit ADC reading.
FULL_SCALE = 65535
#: Largest count of the GroupGets sketch's reading (the Uno's 10-bit ADC).
UNO_FULL_SCALE = 1023
MAX_LINE = 4096  # 288 values of up to 5 digits and commas fit well within this
#: Factory polynomial of one unit (inspection sheet of C12880MA 22G03276), nm, pixel from 0.
EXAMPLE_COEFFICIENTS = (3.120790493e02, 2.681652834e00, -8.061777879e-04, -1.052906745e-05,
                        1.925845957e-08, -7.465510101e-12)


def command(name: str, *args) -> bytes:
    r"""A command line, e.g. ``command("SPEC.INTEG", 0.01) == b"SPEC.INTEG 0.01\n"``."""
    return (" ".join([name, *(f"{a:g}" if isinstance(a, float) else str(a) for a in args)]) + "\n").encode("ascii")


def parse_spectrum(line: bytes, channels: int = CHANNELS, trailing_comma: bool = False) -> np.ndarray:
    """Parse one spectrum line into ``channels`` integer counts.

    Raises
    ------
    DeviceError
        The line is an error report (``###``).
    FramingError
        Not ``channels`` integers (a torn, merged or corrupted line).
    """
    text = line.decode("ascii", errors="replace").strip()
    if text.startswith("###"):
        raise DeviceError(f"spectrometer reports: {text.strip('# ')}")
    fields = text.split(",")
    if trailing_comma:
        if not fields or fields[-1] != "":
            raise FramingError("GroupGets line does not end with a comma: it was cut or merged")
        fields = fields[:-1]
    if len(fields) != channels:
        raise FramingError(f"spectrum line holds {len(fields)} values, expected {channels}")
    try:
        values = np.array([int(f) for f in fields], dtype=np.int64)
    except ValueError:
        raise FramingError("spectrum line holds a field that is not a whole number") from None
    except OverflowError:
        raise FramingError("spectrum line holds a count too large for any detector: the line is corrupted") from None
    if values.min() < 0:
        raise FramingError("spectrum line holds a negative count")
    return values


def format_spectrum(values, trailing_comma: bool = False) -> bytes:
    """The line a sketch prints for ``values``."""
    body = ",".join(str(int(v)) for v in values)
    return (body + ("," if trailing_comma else "") + "\n").encode("ascii")
