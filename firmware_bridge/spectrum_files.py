"""Reading spectrum files: two-column text/CSV, NumPy ``.npz``, JCAMP-DX and Galactic SPC, into arrays.

The one reader of spectrum files: the device runtime makes its spectra of what it returns, and the
simulators their scenes.

Text files hold Raman shift (cm-1) and intensity, one point per line. The delimiter is detected
(semicolon, tab, comma or white space), leading non-numeric lines are taken as a header, lines
starting with ``#`` are comments, numbers may use scientific notation (``5.008228e+002``), and with a
semicolon or tab delimiter a decimal comma (``500,82``) is understood. Text is UTF-8 (or Latin-1), or
UTF-16 or UTF-32 with a byte-order mark (as some Windows programs save "Unicode" CSV).

``.npz`` files hold ``X`` (one spectrum of shape (N,) or several of shape (n, N)) and ``wavenumber``
of shape (N,), and are read with ``allow_pickle=False``.

JCAMP-DX files (``.jdx``, ``.dx``, ``.jcamp``, or any file starting ``##TITLE=``) are decoded by
:mod:`firmware_bridge.jcamp`, one spectrum per data block; Galactic SPC files (``.spc``) by
:mod:`firmware_bridge.spc`, one spectrum per subfile. Their X axis must be in cm-1: JCAMP ``##XUNITS=1/CM``,
SPC ``fxtype`` 13 (Raman shift) or 1 (wavenumber, which many Raman programs write). It is returned as the
Raman shift it is, without conversion. Refused with a message: another unit (nanometres need the laser line,
which these files do not carry in a standard field), and a file that says it holds another technique's
spectrum (JCAMP ``##DATA TYPE=INFRARED SPECTRUM``, SPC ``fexper`` of NIR, UV-VIS, NMR, ...), whose
wavenumbers are not Raman shifts. Read with a :class:`~firmware_bridge.errors.SpectrumFileWarning`: a JCAMP
block whose first Y disagrees with its ``##FIRSTY``.
"""
from __future__ import annotations

import codecs
import warnings
from pathlib import Path

import numpy as np

from firmware_bridge import jcamp, spc
from firmware_bridge.errors import SpectrumFileError, SpectrumFileWarning

#: Largest spectrum file read, and largest total its .npz arrays may unpack to, bytes; a spectrum is a few
#: tens of kB.
MAX_FILE_BYTES = 64 * 1024 * 1024
#: Largest two-column text parsed, bytes (some 75,000 points); parsing needs up to 100 times as much memory.
MAX_TEXT_BYTES = 2 * 1024 * 1024
#: Most memory the spectra of one .npz file may take, bytes (the 6,978 spectra of the SERS data set: 175 MB).
MAX_NPZ_SPECTRA_BYTES = 256 * 1024 * 1024
#: Byte-order marks of UTF-32 and UTF-16, and their codecs; UTF-32 first (its LE mark begins with UTF-16's).
#: Largest JCAMP-DX file parsed, bytes (some 400 spectra of 1,500 points as ``raman-device export`` writes them).
MAX_JCAMP_BYTES = 16 * 1024 * 1024
#: File name endings read as JCAMP-DX, and as SPC.
JCAMP_SUFFIXES = (".jdx", ".dx", ".jcamp")
SPC_SUFFIXES = (".spc",)
#: JCAMP ``##XUNITS`` values of cm-1 (the standard's, and two that writers use), spaces removed.
JCAMP_CM1 = ("1/CM", "CM-1", "CM^-1")
#: SPC ``fexper`` codes whose cm-1 axis may be a Raman shift: general, FT-IR/NIR/Raman, Raman.
SPC_RAMAN_EXPERIMENTS = (0, 4, 11)
BOMS = ((codecs.BOM_UTF32_LE, "utf-32"), (codecs.BOM_UTF32_BE, "utf-32"), (codecs.BOM_UTF16_LE, "utf-16"),
        (codecs.BOM_UTF16_BE, "utf-16"))


def read_spectrum_file(path) -> list[tuple[np.ndarray, np.ndarray, dict]]:
    """Read every spectrum in a file.

    Parameters
    ----------
    path : path-like

    Returns
    -------
    list of (shift, intensity, meta)
        One for a text file; one per row of ``X`` for ``.npz``, per data block of a JCAMP-DX file and per
        subfile of an SPC file. ``shift`` (cm-1) and ``intensity`` have shape (N,), unchecked beyond the
        format; ``meta`` holds ``source`` (the path) and, for files of several spectra, ``index`` (from 0);
        JCAMP-DX adds ``title``, a multi-spectrum SPC ``z`` (the subfile's Z value).

    Raises
    ------
    SpectrumFileError
        If the file cannot be read or parsed.
    """
    path = Path(path)
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise SpectrumFileError(f"{path}: cannot open ({exc.strerror or exc}); check the path.") from None
    if path.is_dir():
        raise SpectrumFileError(f"{path}: is a directory; pass spectrum files.")
    if size > MAX_FILE_BYTES:
        raise SpectrumFileError(f"{path}: {size} bytes is too large for a spectrum file "
                                f"(limit {MAX_FILE_BYTES}); is it the right file?")
    try:
        suffix = path.suffix.lower()
        if suffix == ".npz":
            return _read_npz(path)
        if suffix in SPC_SUFFIXES:
            return _read_spc(path.read_bytes(), str(path))
        data = path.read_bytes()
        if suffix in JCAMP_SUFFIXES or data.lstrip()[:8].upper() == b"##TITLE=":
            return _read_jcamp(data, str(path))
        return [(*parse_two_columns(data, str(path)), {"source": str(path)})]
    except OSError as exc:
        raise SpectrumFileError(f"{path}: cannot read ({exc.strerror or exc}).") from None


def _read_npz(path: Path) -> list[tuple[np.ndarray, np.ndarray, dict]]:
    try:
        with np.load(path, allow_pickle=False) as z:
            unpacked = sum(info.file_size for info in z.zip.infolist())
            if unpacked > MAX_FILE_BYTES:
                raise SpectrumFileError(f"{path}: its arrays unpack to {unpacked} bytes, too large for spectra "
                                        f"(limit {MAX_FILE_BYTES}); is it the right file?")
            if "X" not in z.files or "wavenumber" not in z.files:
                raise SpectrumFileError(f"{path}: an .npz spectrum file needs arrays 'X' and 'wavenumber'; "
                                        f"it has {', '.join(z.files) or 'none'}.")
            X, wn = z["X"], z["wavenumber"]
    except SpectrumFileError:
        raise
    except Exception as exc:  # zipfile, pickle refusal, truncated data: all mean an unreadable file
        raise SpectrumFileError(f"{path}: not a readable .npz file ({exc}).") from None
    for key, a in (("X", X), ("wavenumber", wn)):
        if not isinstance(a, np.ndarray):  # an entry without the .npy header comes back as raw bytes
            raise SpectrumFileError(f"{path}: '{key}' is not a NumPy array (.npy) inside the .npz file.")
        if a.dtype.kind not in "iuf":
            raise SpectrumFileError(f"{path}: '{key}' holds {a.dtype} values; spectra are real numbers "
                                    "(integers or floats).")
    if X.ndim not in (1, 2):
        raise SpectrumFileError(f"{path}: 'X' must have shape (N,) or (n, N); got {X.shape}.")
    n, points = (1, X.size) if X.ndim == 1 else X.shape
    if not n:
        raise SpectrumFileError(f"{path}: 'X' holds no spectra (shape {X.shape}).")
    need = n * (16 * points + 1024)  # two float64 arrays and about 1 kB of objects per spectrum
    if need > MAX_NPZ_SPECTRA_BYTES:
        raise SpectrumFileError(f"{path}: its {n} spectra of {points} points would take {need} bytes of memory "
                                f"(limit {MAX_NPZ_SPECTRA_BYTES}); split the file.")
    if X.ndim == 1:
        return [(wn, X, {"source": str(path)})]
    return [(wn, row, {"source": str(path), "index": i}) for i, row in enumerate(X)]


def _numbered(spectra: list[tuple[np.ndarray, np.ndarray, dict]]) -> list[tuple[np.ndarray, np.ndarray, dict]]:
    """``spectra`` with ``index`` in each ``meta`` when there are several."""
    if len(spectra) > 1:
        for i, (_, _, meta) in enumerate(spectra):
            meta["index"] = i
    return spectra


def _read_jcamp(data: bytes, name: str) -> list[tuple[np.ndarray, np.ndarray, dict]]:
    if len(data) > MAX_JCAMP_BYTES:
        raise SpectrumFileError(f"{name}: {len(data)} bytes is too large for a JCAMP-DX file "
                                f"(limit {MAX_JCAMP_BYTES}); split it.")
    out = []
    for s in jcamp.read_jcamp(data, name):
        where = f"{name}: the block at line {s.line}"
        kind = s.labels.get("DATATYPE", "")
        if kind and "RAMAN" not in kind.upper():
            raise SpectrumFileError(f"{where} is ##DATA TYPE={kind}, not a Raman spectrum; its wavenumbers "
                                    "are not Raman shifts, so the device cannot use it.")
        unit = s.labels.get("XUNITS", "")
        if unit.replace(" ", "").upper() not in JCAMP_CM1:
            raise SpectrumFileError(f"{where} has its X axis in {unit or 'no stated unit'} (##XUNITS); the device "
                                    "reads Raman shift in cm-1 (##XUNITS=1/CM): export the spectrum on a "
                                    "Raman-shift axis.")
        for message in s.warnings:
            warnings.warn(message, SpectrumFileWarning, stacklevel=4)
        out.append((s.x, s.y, {"source": name, "title": s.labels.get("TITLE", "")}))
    return _numbered(out)


def _read_spc(data: bytes, name: str) -> list[tuple[np.ndarray, np.ndarray, dict]]:
    f = spc.read_spc(data, name)
    what = spc.X_TYPES.get(f.fxtype, f"code {f.fxtype}")
    if f.fxtype not in (1, 13):
        raise SpectrumFileError(f"{name}: byte 28: the X axis is {what} (fxtype); the device reads Raman shift in "
                                "cm-1 (fxtype 13): export the spectrum on a Raman-shift axis.")
    if f.fxtype == 1 and f.fexper not in SPC_RAMAN_EXPERIMENTS:
        kind = spc.EXPERIMENTS.get(f.fexper, f"code {f.fexper}")
        raise SpectrumFileError(f"{name}: byte 2: the file holds a {kind} spectrum (fexper {f.fexper}) on a "
                                "wavenumber axis, not a Raman spectrum; its wavenumbers are not Raman shifts, so "
                                "the device cannot use it.")
    if len(f.y) == 1:
        return [(f.x, f.y[0], {"source": name})]
    return _numbered([(f.x, row, {"source": name, "z": float(z)}) for row, z in zip(f.y, f.z)])


def _delimiter(line: str):
    for d in (";", "\t", ","):
        if d in line:
            return d
    return None


def is_number(s: str) -> bool:
    """True if ``s`` parses as a float (scientific notation included)."""
    try:
        float(s)
    except ValueError:
        return False
    return True


def decode_text(data: bytes, name: str = "<data>") -> str:
    """The text of a file's bytes.

    Decoded by its byte-order mark (UTF-16, UTF-32), else as UTF-8 (a mark of its own dropped), else as
    Latin-1.

    Raises
    ------
    SpectrumFileError
        If the bytes after a byte-order mark are not valid in its encoding.
    """
    for bom, encoding in BOMS:
        if data.startswith(bom):
            try:
                return data.decode(encoding)
            except UnicodeDecodeError:
                raise SpectrumFileError(f"{name}: starts with a {encoding.upper()} byte-order mark but is not "
                                        f"valid {encoding.upper()}; save it as UTF-8.") from None
    data = data[len(codecs.BOM_UTF8):] if data.startswith(codecs.BOM_UTF8) else data
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return data.decode("latin-1")


def _looks_utf16(data: bytes) -> bool:
    """True if every other byte is NUL, as in ASCII text saved as UTF-16 (either byte order)."""
    sample = data[:4096]
    half = len(sample) // 2
    return half > 0 and (sample[1::2].count(0) == half or sample[0::2].count(0) == half)


def parse_two_columns(data: bytes, name: str = "<data>") -> tuple[np.ndarray, np.ndarray]:
    """Parse two-column text into (shift, intensity) arrays of shape (N,).

    Raises
    ------
    SpectrumFileError
        If the text is not two columns of numbers, naming the first offending line, or is larger than
        :data:`MAX_TEXT_BYTES`.
    """
    if len(data) > MAX_TEXT_BYTES:
        raise SpectrumFileError(f"{name}: {len(data)} bytes is too large for a text spectrum "
                                f"(limit {MAX_TEXT_BYTES}); is it the right file?")
    text = decode_text(data, name)
    if "\x00" in text:
        if _looks_utf16(data):
            raise SpectrumFileError(f"{name}: UTF-16 text without a byte-order mark; save it as UTF-8 "
                                    "(or as UTF-16 with a byte-order mark).")
        raise SpectrumFileError(f"{name}: binary data, not a text spectrum; export it as CSV or text.")
    lines = [(i + 1, ln.strip()) for i, ln in enumerate(text.splitlines())]
    lines = [(i, ln) for i, ln in lines if ln and not ln.startswith("#")]
    if not lines:
        raise SpectrumFileError(f"{name}: empty file; expected two columns (Raman shift, intensity).")
    delim = None
    decimal_comma = False
    rows = []
    for lineno, ln in lines:
        if delim is None and not rows:
            delim = _delimiter(ln)
            decimal_comma = delim in (";", "\t")  # a comma inside a field is then a decimal comma
        fields = [f.strip() for f in (ln.split(delim) if delim else ln.split())]
        while fields and fields[-1] == "":
            fields.pop()
        if decimal_comma:
            fields = [f.replace(",", ".") for f in fields]
        numeric = len(fields) == 2 and all(is_number(f) for f in fields)
        if not numeric:
            if not rows:  # header line(s) before the data
                delim = None
                continue
            raise SpectrumFileError(
                f"{name}: line {lineno} is not two numbers ({ln[:60]!r}); expected Raman shift and "
                "intensity on every data line.")
        rows.append((float(fields[0]), float(fields[1])))
    if not rows:
        raise SpectrumFileError(f"{name}: no line holds two numbers; expected two columns "
                                "(Raman shift in cm-1, intensity).")
    arr = np.array(rows, dtype=np.float64)
    return arr[:, 0], arr[:, 1]
