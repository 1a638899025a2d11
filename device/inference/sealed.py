"""Sealed directories: a JSON card that lists every other file with its SHA-256, and arrays in an ``.npz``.

Model bundles (:mod:`device.inference.bundle`) and reference libraries (:mod:`device.inference.library`)
are both sealed directories, written whole and verified whole: a missing, modified or unlisted file is
refused, so what runs is exactly what was exported. The one file a card cannot list is the signature of
the card itself (:mod:`device.inference.signature`). This module is that verification and that writing,
once for both; each kind names itself in its messages (``model bundle PATH: ...``).
"""
from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path, PurePosixPath
from typing import Callable

import numpy as np

from device.fileio import publish_directory, sha256_file, write_synced
from device.inference.signature import SIGNATURE_FILE

#: Makes the error of one refusal: ``fail(problem, remedy=None)``.
Fail = Callable[..., Exception]


def read_card(path: Path, card_file: str, fail: Fail, what_to_pass: str) -> dict:
    """Read the card of a sealed directory (its files are checked by :func:`verify_files`).

    Parameters
    ----------
    path : Path
        The directory.
    card_file : str
        The card's file name (``model.json``, ``library.json``).
    fail : callable
        ``fail(problem, remedy=None)`` -> the exception to raise.
    what_to_pass : str
        The remedy when ``path`` is not a directory (what the user should pass instead).

    Returns
    -------
    dict
        The parsed card; its ``files`` maps each listed file to ``{"sha256", "bytes"}``.
    """
    if not path.is_dir():
        raise fail("not found or not a directory", what_to_pass)
    card_path = path / card_file
    if not card_path.is_file():
        raise fail(f"{card_file} is missing")
    try:
        card = json.loads(card_path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise fail(f"{card_file} cannot be read ({exc.strerror or exc})") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise fail(f"{card_file} is not valid JSON ({exc})") from None
    except (ValueError, RecursionError):  # a number of thousands of digits, nesting thousands deep
        raise fail(f"{card_file} holds a number of thousands of digits or nesting thousands deep") from None
    if not isinstance(card, dict):
        raise fail(f"{card_file} does not hold a JSON object")
    return card


def verify_files(path: Path, card: dict, card_file: str, required: tuple, fail: Fail) -> dict:
    """Check that the card lists ``required``, that each listed file matches its hash, and nothing else is there.

    Nothing else but the card's signature (:data:`~device.inference.signature.SIGNATURE_FILE`), which is
    checked where signatures are required.

    Returns
    -------
    dict
        ``card["files"]``.
    """
    files = card.get("files")
    if not isinstance(files, dict) or not all(name in files for name in required):
        raise fail(f"the card does not list {' and '.join(required)} with their hashes")
    if SIGNATURE_FILE in files:
        raise fail(f"{card_file} lists {SIGNATURE_FILE}, the card's signature, which no card can list")
    for rel, entry in files.items():
        inside = PurePosixPath(rel)
        if not rel or inside.is_absolute() or ".." in inside.parts:
            raise fail(f"{card_file} lists {rel[:100]!r}, which is not a file inside the directory")
        target = path / rel
        try:
            if not target.is_file():
                raise fail(f"{rel} is missing")
            digest = sha256_file(target)
        except OSError as exc:
            raise fail(f"{rel[:100]} cannot be read ({exc.strerror or exc})") from None
        expected = entry.get("sha256") if isinstance(entry, dict) else None
        if digest != expected:
            raise fail(f"{rel} does not match its SHA-256 in {card_file}: it is corrupt or was modified")
    for found in sorted(p for p in path.rglob("*") if p.is_file()):
        rel = found.relative_to(path).as_posix()
        if rel not in (card_file, SIGNATURE_FILE) and rel not in files:
            raise fail(f"{rel} is not listed in {card_file}",
                       "it is verified whole: remove the file or export it again")
    return files


def is_text(a: np.ndarray) -> bool:
    """True for a Unicode array that UTF-8 can encode: no surrogates, no code point beyond U+10FFFF."""
    if a.dtype.kind != "U":
        return False
    codes = np.frombuffer(np.ascontiguousarray(a, a.dtype.newbyteorder("<")).tobytes(), "<u4")
    return not ((codes > 0x10FFFF) | ((codes >= 0xD800) & (codes <= 0xDFFF))).any()


def read_arrays(path: Path, npz_file: str, text_entries: tuple, max_bytes: int, fail: Fail) -> dict:
    """The arrays of a verified ``.npz``: text where ``text_entries`` say, finite numbers everywhere else.

    Parameters
    ----------
    max_bytes : int
        Most bytes the arrays may unpack to (checked before any is read).

    Returns
    -------
    dict of str to ndarray
    """
    try:
        with np.load(path / npz_file, allow_pickle=False) as z:
            unpacked = sum(info.file_size for info in z.zip.infolist())
            arrays = {k: z[k] for k in z.files} if unpacked <= max_bytes else None
    except Exception as exc:  # np.load raises many types for damaged archives
        raise fail(f"{npz_file} cannot be read ({exc})") from None
    if arrays is None:
        raise fail(f"{npz_file} unpacks to {unpacked} bytes, more than any it should hold ({max_bytes})")
    raw = [k for k, a in arrays.items() if not isinstance(a, np.ndarray)]  # entries without the .npy header
    if raw:
        raise fail(f"{npz_file} entry {raw[0]!r} is not a NumPy array")
    bad = [k for k, a in arrays.items()
           if not (is_text(a) if k in text_entries else a.dtype.kind in "iuf" and np.isfinite(a).all())]
    if bad:
        what = "text" if bad[0] in text_entries else "finite numbers"
        raise fail(f"{npz_file} entry {bad[0]!r} does not hold {what}")
    return arrays


def write_sealed(path: Path, card_file: str, card: Callable[[dict], dict], files: dict,
                 compressed: bool = False) -> None:
    """Write a sealed directory at ``path``, replacing an old one only once the new one is complete.

    Parameters
    ----------
    card_file : str
    card : callable
        ``card(files)`` -> the card to write, given the listed files' ``{"sha256", "bytes"}`` entries.
    files : dict
        Relative path -> bytes, or -> dict of arrays (written as an ``.npz``).
    compressed : bool
        Write ``.npz`` files deflated.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent))
    try:
        for rel, content in files.items():
            (tmp / rel).parent.mkdir(parents=True, exist_ok=True)
            if isinstance(content, dict):
                with open(tmp / rel, "wb") as f:
                    (np.savez_compressed if compressed else np.savez)(f, **content)
                    f.flush()
                    os.fsync(f.fileno())
            else:
                write_synced(tmp / rel, content)
        listed = {rel: {"sha256": sha256_file(tmp / rel), "bytes": (tmp / rel).stat().st_size} for rel in files}
        full = card(listed)
        write_synced(tmp / card_file, (json.dumps(full, indent=2, ensure_ascii=False) + "\n").encode("utf-8"))
        publish_directory(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
