"""Galactic SPC spectra (new format, little-endian): header, X array, subfiles and log block, into arrays.

A codec without I/O. Read: the 512-byte header (``fversn = 0x4B``); an evenly spaced X axis (``ffirst`` to
``flast`` in ``fnpts`` points) or a float32 X array after the header (``TXVALS``); one subfile or several
(``TMULTI``) sharing that X, each a 32-byte subheader and ``fnpts`` Y values: float32 (exponent 0x80),
32-bit integers times 2^(exp - 32), or 16-bit integers (``TSPREC``) times 2^(exp - 16); and the log block's
``key=value`` text. Refused, with the byte offset: the old format (0x4D), big-endian files (0x4C),
per-subfile X arrays (``TXYXYS``), and anything truncated or out of range.

References
----------
Galactic Industries, "GRAMS/32 Universal SPC Format", and its header ``SPC.H`` (flags TSPREC = 0x01,
TMULTI = 0x04, TXYXYS = 0x40, TXVALS = 0x80; ``fxtype`` and ``fexper`` codes).
"""
from __future__ import annotations

import struct
from dataclasses import dataclass

import numpy as np

from firmware_bridge.errors import SpectrumFileError

HEADER_BYTES = 512
SUBHEADER_BYTES = 32
LOG_HEADER_BYTES = 64
TSPREC, TMULTI, TXYXYS, TXVALS = 0x01, 0x04, 0x40, 0x80
#: Exponent meaning float32 Y values.
FLOAT_Y = -128
#: ``fxtype`` codes: what the X axis is.
X_TYPES = {0: "arbitrary", 1: "wavenumber (cm-1)", 2: "micrometers", 3: "nanometers", 4: "seconds", 5: "minutes",
           6: "hertz", 7: "kilohertz", 8: "megahertz", 9: "mass (M/z)", 10: "parts per million", 11: "days",
           12: "years", 13: "Raman shift (cm-1)", 14: "electron volts", 16: "diode number", 17: "channel",
           18: "degrees", 19: "temperature (F)", 20: "temperature (C)", 21: "temperature (K)", 22: "data points",
           23: "milliseconds", 24: "microseconds", 25: "nanoseconds", 26: "gigahertz", 27: "centimeters",
           28: "meters", 29: "millimeters", 30: "hours"}
#: ``fexper`` codes: what kind of experiment.
EXPERIMENTS = {0: "general", 1: "gas chromatogram", 2: "chromatogram", 3: "HPLC chromatogram",
               4: "FT-IR, FT-NIR or FT-Raman", 5: "NIR", 7: "UV-VIS", 8: "X-ray diffraction", 9: "mass spectrum",
               10: "NMR", 11: "Raman", 12: "fluorescence", 13: "atomic", 14: "chromatography diode array"}
#: Most points, and most subfiles, a file may declare (the largest maps hold some 10,000 spectra).
MAX_POINTS = 1 << 20
MAX_SUBFILES = 1 << 16


@dataclass(frozen=True)
class SpcFile:
    """The spectra of one SPC file, on the file's own units.

    Attributes
    ----------
    x : ndarray of float64, shape (N,)
        Abscissa, in the unit ``fxtype`` names (see :data:`X_TYPES`), in file order.
    y : ndarray of float64, shape (n, N)
        One row per subfile, in the unit ``fytype`` names.
    z : ndarray of float64, shape (n,)
        Each subfile's Z value (``subtime``): time, or the position in a series.
    fxtype, fytype, fexper : int
        The header's X type, Y type and experiment codes.
    log : dict of str to str
        The log block's ``key=value`` lines (empty without one).
    """

    x: np.ndarray
    y: np.ndarray
    z: np.ndarray
    fxtype: int
    fytype: int
    fexper: int
    log: dict


def _need(data: bytes, offset: int, size: int, what: str, name: str) -> None:
    if offset + size > len(data):
        raise SpectrumFileError(f"{name}: byte {offset}: {what} needs {size} bytes, but the file ends at byte "
                                f"{len(data)}; the file is truncated.")


def _y_values(data: bytes, offset: int, points: int, exponent: int, flags: int, index: int, name: str):
    if exponent == FLOAT_Y:
        dtype, scale = "<f4", 1.0
    elif flags & TSPREC:
        dtype, scale = "<i2", 2.0 ** (exponent - 16)
    else:
        dtype, scale = "<i4", 2.0 ** (exponent - 32)
    size = points * np.dtype(dtype).itemsize
    _need(data, offset, size, f"subfile {index}'s {points} Y values", name)
    with np.errstate(invalid="ignore"):  # a NaN's bits in the file: reported below
        y = np.frombuffer(data, dtype=dtype, count=points, offset=offset).astype(np.float64) * scale
    if not np.all(np.isfinite(y)):
        bad = int(np.flatnonzero(~np.isfinite(y))[0])
        raise SpectrumFileError(f"{name}: byte {offset + bad * np.dtype(dtype).itemsize}: subfile {index}'s Y "
                                f"value {bad + 1} is not finite; the file is corrupt.")
    return y, offset + size


def _log(data: bytes, offset: int, name: str) -> dict:
    size, _, text_offset = struct.unpack_from("<iii", data, offset)
    if text_offset <= 0 or size <= text_offset:
        return {}
    _need(data, offset, size, "the log block", name)
    text = data[offset + text_offset:offset + size].split(b"\x00", 1)[0].decode("latin-1")
    pairs = (line.partition("=") for line in text.splitlines())
    return {k.strip(): v.strip() for k, eq, v in pairs if eq and k.strip()}


def read_spc(data: bytes, name: str = "<data>") -> SpcFile:
    """The spectra of an SPC file.

    Parameters
    ----------
    data : bytes
        The file's contents.
    name : str
        What to call the file in messages.

    Returns
    -------
    SpcFile

    Raises
    ------
    SpectrumFileError
        Naming the byte offset: not an SPC file, a format version or layout not read, a point or subfile
        count out of range, an X axis or Y value not finite, a file that ends before its data do.
    """
    _need(data, 0, HEADER_BYTES, "the SPC header", name)
    flags, version, fexper, fexp, npts = struct.unpack_from("<BBBbi", data, 0)
    if version == 0x4D:
        raise SpectrumFileError(f"{name}: byte 1: an old-format SPC file (version 0x4D), which this reader does not "
                                "read; save it again as a new-format SPC, or export it as CSV.")
    if version == 0x4C:
        raise SpectrumFileError(f"{name}: byte 1: a big-endian SPC file (version 0x4C), which this reader does not "
                                "read; export it as CSV.")
    if version != 0x4B:
        raise SpectrumFileError(f"{name}: byte 1: version 0x{version:02X} is not that of an SPC file (0x4B); "
                                "not a Galactic SPC file?")
    if flags & TXYXYS:
        raise SpectrumFileError(f"{name}: byte 0: each subfile has its own X array (flag TXYXYS), which this "
                                "reader does not read; export the spectra as CSV.")
    first, last = struct.unpack_from("<dd", data, 8)
    nsub = struct.unpack_from("<i", data, 24)[0] if flags & TMULTI else 1
    fxtype, fytype = data[28], data[29]
    log_offset = struct.unpack_from("<i", data, 248)[0]
    if not 1 <= npts <= MAX_POINTS:
        raise SpectrumFileError(f"{name}: byte 4: fnpts = {npts} points is not from 1 to {MAX_POINTS}; the file is "
                                "corrupt.")
    if not 1 <= nsub <= MAX_SUBFILES:
        raise SpectrumFileError(f"{name}: byte 24: fnsub = {nsub} subfiles is not from 1 to {MAX_SUBFILES}; the "
                                "file is corrupt.")
    offset = HEADER_BYTES
    if flags & TXVALS:
        _need(data, offset, 4 * npts, f"the X array of {npts} float32 values", name)
        with np.errstate(invalid="ignore"):  # a NaN's bits in the file: reported below
            x = np.frombuffer(data, dtype="<f4", count=npts, offset=offset).astype(np.float64)
        offset += 4 * npts
    else:
        x = np.linspace(first, last, npts)
    if not np.all(np.isfinite(x)):
        raise SpectrumFileError(f"{name}: byte {8 if not flags & TXVALS else HEADER_BYTES}: the X axis is not "
                                "finite; the file is corrupt.")
    rows, z = [], []
    for index in range(nsub):
        _need(data, offset, SUBHEADER_BYTES, f"subfile {index}'s header", name)
        sub_exp, = struct.unpack_from("<b", data, offset + 1)
        time, = struct.unpack_from("<f", data, offset + 4)
        exponent = sub_exp if flags & TMULTI else fexp
        y, offset = _y_values(data, offset + SUBHEADER_BYTES, npts, exponent, flags, index, name)
        rows.append(y)
        z.append(time)
    if log_offset and not HEADER_BYTES <= log_offset <= len(data) - LOG_HEADER_BYTES:
        raise SpectrumFileError(f"{name}: byte 248: the log block's offset flogoff = {log_offset} is outside the "
                                f"file ({len(data)} bytes); the file is corrupt.")
    log = _log(data, log_offset, name) if log_offset else {}
    return SpcFile(x, np.array(rows), np.array(z, dtype=np.float64), fxtype, fytype, fexper, log)
