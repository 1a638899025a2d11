"""JCAMP-DX spectra: reading the XYDATA and XYPOINTS tables (AFFN and ASDF compressed forms), writing AFFN.

A codec without I/O: bytes in, arrays out (and back). Forms read:

========================  ===================================================================================
``##XYDATA=(X++(Y..Y))``  each line an X (in XFACTOR units) then Y values in AFFN (plain numbers) or ASDF:
                          SQZ (``@A-Ia-i``), DIF (``%J-Rj-r``) and DUP (``S-Zs``) characters, the DIF
                          Y-check (a line ending in DIF repeats its last Y first on the next line) checked
                          and dropped; the X axis is FIRSTX..LASTX in NPOINTS even steps, and every line's
                          X is checked against it.
``(XY..XY)``              ``x, y`` pairs (under ``##XYPOINTS=`` as the standard puts it, or ``##XYDATA=``),
                          each times XFACTOR and YFACTOR.
``##DATA TYPE=LINK``      a compound file (JCAMP-DX 5.01): every block that holds a table is one spectrum.
========================  ===================================================================================

Labels are compared as the standard says (case, spaces, ``-``, ``/`` and ``_`` ignored), ``$$`` starts a
comment. A file whose first Y disagrees with its ``##FIRSTY`` by more than one unit of YFACTOR (or a
thousandth of the largest Y, if that is less) is read with a warning, as the test-disk file ``jtpolysd.jdx``
needs (its YFACTOR is mistyped).

References
----------
R. S. McDonald and P. A. Wilks, "JCAMP-DX: A Standard Form for Exchange of Infrared Spectra in Computer
Readable Form", Applied Spectroscopy 42 (1988) 151-162. A. N. Davies and P. Lampen, "JCAMP-DX for NMR",
Applied Spectroscopy 47 (1993) 1093-1099 (the compound LINK blocks of version 5).
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field

import numpy as np

from firmware_bridge.errors import SpectrumFileError

#: Most points one table may hold (a spectrum has a few thousand; the largest test-disk file 18,669).
MAX_POINTS = 1 << 20
#: SQZ digits (a new value), DIF digits (a difference) and DUP counts, by character.
_SQZ = {"@": 0, **{c: i + 1 for i, c in enumerate("ABCDEFGHI")}, **{c: -(i + 1) for i, c in enumerate("abcdefghi")}}
_DIF = {"%": 0, **{c: i + 1 for i, c in enumerate("JKLMNOPQR")}, **{c: -(i + 1) for i, c in enumerate("jklmnopqr")}}
_DUP = {c: i + 1 for i, c in enumerate("STUVWXYZs")}
_DUP_DIGITS = str.maketrans({c: str(v) for c, v in _DUP.items()})
#: One token of a data line: an AFFN number, or a SQZ, DIF or DUP character with its digits.
_TOKEN = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]\d+)?|[@A-Ia-i%J-Rj-rS-Zs]\d*\.?\d*|[\s,;]+|\?|.")


@dataclass(frozen=True)
class JcampSpectrum:
    """One spectrum of a JCAMP-DX file, on the file's own units.

    Attributes
    ----------
    x : ndarray of float64, shape (N,)
        Abscissa in ``labels["XUNITS"]`` (e.g. ``1/CM``, ``NANOMETERS``), in file order.
    y : ndarray of float64, shape (N,)
        Ordinate in ``labels["YUNITS"]``.
    labels : dict of str to str
        Every labelled record of the block, keys normalised (``DATA TYPE`` -> ``DATATYPE``), values without
        ``$$`` comments.
    line : int
        Line (from 1) of the block's ``##TITLE=``.
    warnings : tuple of str
        Inconsistencies read past (a ``##FIRSTY`` that disagrees with the data).
    """

    x: np.ndarray
    y: np.ndarray
    labels: dict
    line: int
    warnings: tuple = field(default=())


def label_key(label: str) -> str:
    """A label as the standard compares it: upper case, without spaces, ``-``, ``/`` and ``_``."""
    return re.sub(r"[\s\-/_]", "", label).upper()


def _records(text: str, name: str):
    """(line number, key, value, data lines) of every labelled record; data lines are (number, text)."""
    record = None
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if line.startswith("##"):
            if record is not None:
                yield record
            label, eq, value = line[2:].partition("=")
            if not eq:
                raise SpectrumFileError(f"{name}: line {number}: a labelled record '##{label[:30]}' has no '='; "
                                        "a JCAMP-DX record is ##LABEL=value.")
            record = (number, label_key(label), value, [])
        elif record is None:
            if line and not line.startswith("$$"):
                raise SpectrumFileError(f"{name}: line {number}: text before the first ##TITLE=; "
                                        "not a JCAMP-DX file?")
        elif line and not line.startswith("$$"):
            record[3].append((number, line))
    if record is not None:
        yield record


def _strip_comment(value: str) -> str:
    return value.split("$$", 1)[0].strip()


def _number(labels: dict, key: str, name: str, line: int, default=None) -> float:
    if key not in labels:
        if default is None:
            raise SpectrumFileError(f"{name}: the block at line {line} has no ##{key}=, which its table needs.")
        return default
    try:
        value = float(labels[key])
    except ValueError:
        raise SpectrumFileError(f"{name}: the block at line {line}: ##{key}={labels[key][:30]} is not a "
                                "number.") from None
    if not np.isfinite(value):
        raise SpectrumFileError(f"{name}: the block at line {line}: ##{key}= is not finite.")
    return value


def _tokens(line: str, number: int, name: str) -> list[tuple[str, float]]:
    """(kind, value) of each token of an ASDF or AFFN line; kind is 'abs' (AFFN, SQZ), 'dif' or 'dup'."""
    out = []
    for m in _TOKEN.finditer(line):
        t = m.group()
        c = t[0]
        if c.isspace() or c in ",;":
            continue
        if c == "?":
            raise SpectrumFileError(f"{name}: line {number}: a missing value '?'; the device needs every point.")
        digits = t[1:]
        if c in "+-.0123456789":
            try:
                out.append(("abs", float(t)))
            except ValueError:  # a sign or a point alone
                raise SpectrumFileError(f"{name}: line {number}: {t!r} at column {m.start() + 1} is not a "
                                        "number.") from None
        elif c in _DUP:
            if digits and not digits.isdigit():
                raise SpectrumFileError(f"{name}: line {number}: DUP count {t!r} is not a whole number.")
            out.append(("dup", int(c.translate(_DUP_DIGITS) + digits)))
        elif c in _SQZ or c in _DIF:
            first = _SQZ.get(c, _DIF.get(c))
            value = float(f"{'-' if first < 0 else ''}{abs(first)}{digits}")
            out.append(("abs" if c in _SQZ else "dif", value))
        else:
            raise SpectrumFileError(f"{name}: line {number}: character {c!r} at column {m.start() + 1} is not "
                                    "part of a JCAMP-DX number (AFFN, SQZ, DIF or DUP).")
    return out



def _xpp_yy(lines, labels: dict, name: str, line: int) -> tuple[np.ndarray, np.ndarray]:
    """The points of an ``(X++(Y..Y))`` table: Y values decoded, Y-checks and line X values checked."""
    npoints = _number(labels, "NPOINTS", name, line)
    first, last = _number(labels, "FIRSTX", name, line), _number(labels, "LASTX", name, line)
    xfactor, yfactor = _number(labels, "XFACTOR", name, line, 1.0), _number(labels, "YFACTOR", name, line, 1.0)
    if npoints != int(npoints) or not 1 <= npoints <= MAX_POINTS:
        raise SpectrumFileError(f"{name}: the block at line {line}: ##NPOINTS={labels['NPOINTS']} is not a count "
                                f"from 1 to {MAX_POINTS}.")
    npoints = int(npoints)
    step = (last - first) / (npoints - 1) if npoints > 1 else 0.0
    y: list[float] = []
    ends_in_dif = False
    for number, text in lines:
        tokens = _tokens(text, number, name)
        if not tokens or tokens[0][0] != "abs":
            raise SpectrumFileError(f"{name}: line {number}: a data line starts with its X value (a number).")
        x_line = tokens[0][1] * xfactor
        values: list[float] = []
        last_kind, last_step = None, 0.0
        for kind, v in tokens[1:]:
            if kind == "abs":
                values.append(v)
                last_kind = kind
            elif kind == "dif":
                if not values:
                    raise SpectrumFileError(f"{name}: line {number}: starts with a DIF difference; the first Y of "
                                            "a line must be a value (SQZ or AFFN).")
                values.append(values[-1] + v)
                last_kind, last_step = kind, v
            else:
                if last_kind is None:
                    raise SpectrumFileError(f"{name}: line {number}: a DUP count comes before any Y value.")
                for _ in range(int(v) - 1):
                    values.append(values[-1] + last_step if last_kind == "dif" else values[-1])
            if len(y) + len(values) > MAX_POINTS:
                raise SpectrumFileError(f"{name}: line {number}: more than {MAX_POINTS} points in one table.")
        if not values:
            raise SpectrumFileError(f"{name}: line {number}: an X value without Y values.")
        index = len(y)
        if ends_in_dif:
            index -= 1
            if values[0] != y[-1]:
                raise SpectrumFileError(
                    f"{name}: line {number}: DIF Y-check failed: the line starts with {values[0]:.10g}, but line "
                    f"{number - 1} ends with {y[-1]:.10g}; the compressed data are corrupt.")
            values = values[1:]
        expected = first + index * step
        if abs(x_line - expected) > 0.5 * abs(step) + 1e-9 * max(abs(first), abs(last)):
            raise SpectrumFileError(
                f"{name}: line {number}: X is {x_line:g} but point {index + 1} of the axis "
                f"##FIRSTX={first:g}..##LASTX={last:g} is at {expected:g}; a value is missing or extra before it.")
        y.extend(values)
        ends_in_dif = last_kind == "dif"
    if len(y) != npoints:
        raise SpectrumFileError(f"{name}: the table at line {line} holds {len(y)} points, but ##NPOINTS="
                                f"{npoints}; the file is truncated or corrupt.")
    return np.linspace(first, last, npoints), np.array(y) * yfactor


def _xy_pairs(lines, labels: dict, name: str, line: int) -> tuple[np.ndarray, np.ndarray]:
    """The points of an ``(XY..XY)`` table: AFFN pairs."""
    xfactor, yfactor = _number(labels, "XFACTOR", name, line, 1.0), _number(labels, "YFACTOR", name, line, 1.0)
    values: list[float] = []
    for number, text in lines:
        tokens = _tokens(text, number, name)
        if any(kind != "abs" for kind, _ in tokens):
            raise SpectrumFileError(f"{name}: line {number}: an (XY..XY) table holds plain numbers (AFFN), not "
                                    "compressed ones.")
        if len(tokens) % 2:
            raise SpectrumFileError(f"{name}: line {number}: an X without its Y (an odd count of numbers).")
        values.extend(v for _, v in tokens)
        if len(values) > 2 * MAX_POINTS:
            raise SpectrumFileError(f"{name}: line {number}: more than {MAX_POINTS} points in one table.")
    pairs = np.array(values, dtype=np.float64).reshape(-1, 2)
    if "NPOINTS" in labels and _number(labels, "NPOINTS", name, line) != len(pairs):
        raise SpectrumFileError(f"{name}: the table at line {line} holds {len(pairs)} points, but ##NPOINTS="
                                f"{labels['NPOINTS']}; the file is truncated or corrupt.")
    return pairs[:, 0] * xfactor, pairs[:, 1] * yfactor


def _table(key: str, value: str, data, labels: dict, name: str, line: int):
    form = re.sub(r"\s", "", value).upper()
    if form == "(X++(Y..Y))" and key == "XYDATA":
        return _xpp_yy(data, labels, name, line)
    if form in ("(XY..XY)", "(XY,XY)"):
        return _xy_pairs(data, labels, name, line)
    raise SpectrumFileError(f"{name}: line {line}: ##{key}={value.strip()[:30]} is a table form this reader does "
                            "not read; it reads ##XYDATA=(X++(Y..Y)) and (XY..XY).")


def read_jcamp(data: bytes, name: str = "<data>") -> list[JcampSpectrum]:
    """Every spectrum of a JCAMP-DX file (one, or one per data block of a LINK compound file).

    Parameters
    ----------
    data : bytes
        The file's contents (ASCII; Latin-1 read as such).
    name : str
        What to call the file in messages.

    Returns
    -------
    list of JcampSpectrum
        In file order.

    Raises
    ------
    SpectrumFileError
        Naming the line: a record without ``=``, a table form not read, a character that is no number, a
        failed DIF Y-check, a line X off the axis, a point count other than ``##NPOINTS``, no table at all.
    """
    text = data.decode("latin-1")
    if "\x00" in text:
        raise SpectrumFileError(f"{name}: binary data (a NUL byte), not a JCAMP-DX text file.")
    spectra: list[JcampSpectrum] = []
    stack: list[tuple[int, dict]] = []
    for number, key, value, lines in _records(text, name):
        if key == "TITLE":
            stack.append((number, {}))
        if not stack:
            raise SpectrumFileError(f"{name}: line {number}: ##{key}= outside a block; a JCAMP-DX block starts "
                                    "with ##TITLE=.")
        start, labels = stack[-1]
        if key == "END":
            stack.pop()
            continue
        if key in ("XYDATA", "XYPOINTS"):
            x, y = _table(key, value, lines, labels, name, number)
            spectra.append(JcampSpectrum(x, y, labels, start))
            continue
        if key in ("PEAKTABLE", "DATATABLE", "NTUPLES"):
            raise SpectrumFileError(f"{name}: line {number}: ##{key}= holds data this reader does not read; it "
                                    "reads ##XYDATA=(X++(Y..Y)) and (XY..XY) tables.")
        labels[key] = _strip_comment(" ".join([value, *(t for _, t in lines)]))
    if stack:
        raise SpectrumFileError(f"{name}: the block at line {stack[-1][0]} has no ##END=; the file is truncated.")
    if not spectra:
        raise SpectrumFileError(f"{name}: no ##XYDATA= or ##XYPOINTS= table; not a JCAMP-DX spectrum.")
    return [_checked_first_y(s, name) for s in spectra]


def _checked_first_y(s: JcampSpectrum, name: str) -> JcampSpectrum:
    if "FIRSTY" not in s.labels or not s.y.size:
        return s
    first_y = _number(s.labels, "FIRSTY", name, s.line)
    tolerance = min(abs(_number(s.labels, "YFACTOR", name, s.line, 1.0)), 1e-3 * np.abs(s.y).max())
    if abs(s.y[0] - first_y) <= tolerance:
        return s
    return JcampSpectrum(s.x, s.y, s.labels, s.line, (
        f"{name}: the block at line {s.line}: its first Y is {s.y[0]:.6g} but ##FIRSTY={first_y:.6g}; read as "
        "the data say (a mistyped YFACTOR or FIRSTY?)",))


def write_jcamp(spectra, title: str) -> bytes:
    """A JCAMP-DX 5.01 file of Raman spectra, AFFN ``(XY..XY)``: one block, or a LINK compound file of several.

    Parameters
    ----------
    spectra : sequence of (shift, intensity, labels)
        ``shift`` (cm-1) and ``intensity`` (arbitrary units) of shape (N,), finite; ``labels`` a dict of
        further records for the block (e.g. ``{"TITLE": "phosmet", "LONG DATE": "2026/11/22 14:30:05"}``), keys
        as written, values on one line.
    title : str
        The file's title (the LINK block's, or the single block's when it has no TITLE of its own).

    Returns
    -------
    bytes
        ASCII, CRLF line ends; every value written as Python's shortest repr, so it reads back exactly.
    """
    def block(shift, intensity, labels, block_id=None) -> list[str]:
        x, y = np.asarray(shift, dtype=np.float64), np.asarray(intensity, dtype=np.float64)
        head = {"TITLE": title, **labels}
        out = [f"##TITLE={head.pop('TITLE')}", "##JCAMP-DX=5.01", "##DATA TYPE=RAMAN SPECTRUM"]
        if block_id is not None:
            out.append(f"##BLOCK_ID={block_id}")
        out += [f"##{k}={v}" for k, v in head.items()]
        out += ["##XUNITS=1/CM", "##YUNITS=ARBITRARY UNITS", "##XFACTOR=1", "##YFACTOR=1",
                f"##FIRSTX={float(x[0])!r}", f"##LASTX={float(x[-1])!r}", f"##FIRSTY={float(y[0])!r}",
                f"##NPOINTS={x.size}", "##XYPOINTS=(XY..XY)"]
        out += [f"{float(a)!r}, {float(b)!r}" for a, b in zip(x, y)]
        return out + ["##END="]

    spectra = list(spectra)
    if len(spectra) == 1:
        lines = block(*spectra[0])
    else:
        lines = [f"##TITLE={title}", "##JCAMP-DX=5.01", "##DATA TYPE=LINK", f"##BLOCKS={len(spectra)}"]
        for i, s in enumerate(spectra, 1):
            lines += block(*s, block_id=i)
        lines.append("##END=")
    return ("\r\n".join(lines) + "\r\n").encode("ascii")
