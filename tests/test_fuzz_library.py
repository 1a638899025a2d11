"""Fuzz tests of reference libraries (device.inference.library): card bytes, card types and array contents.

A damaged library is either refused with a LibraryError or loads into one that searches, verifies and
unmixes a spectrum without any other exception.
"""
from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from fuzzing import MUTATIONS, NO_UNPICKLING, ROOT, WATCH, fuzz_settings, mutate, npz_bytes
from hypothesis import example, given
from hypothesis import strategies as st
from test_fuzz_bundle import JSON_VALUES, _array_change, changes

from device.errors import LibraryError, RamanEdgeError
from device.inference.analysis import identify, verify
from device.inference.library import load_library
from device.inference.spectrum import Spectrum

pytestmark = pytest.mark.device  # needs only the device extra

SHIPPED_LIBRARY = ROOT / "models" / "libraries" / "microplastics"
BASE_ARRAYS = dict(np.load(SHIPPED_LIBRARY / "library.npz", allow_pickle=False))
BASE_CARD_BYTES = (SHIPPED_LIBRARY / "library.json").read_bytes()
BASE_CARD = json.loads(BASE_CARD_BYTES)


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    path = tmp_path_factory.mktemp("library") / "microplastics"
    shutil.copytree(SHIPPED_LIBRARY, path)
    return path


def _write(path: Path, *, card_bytes: bytes | None = None, arrays=None) -> None:
    """Rewrite the library at ``path``; new arrays are signed into the card, so the content checks run."""
    npz = npz_bytes(**arrays) if arrays is not None else (SHIPPED_LIBRARY / "library.npz").read_bytes()
    (path / "library.npz").write_bytes(npz)
    if card_bytes is None:
        card = json.loads(json.dumps(BASE_CARD))
        card["files"]["library.npz"]["sha256"] = hashlib.sha256(npz).hexdigest()
        card_bytes = json.dumps(card).encode()
    (path / "library.json").write_bytes(card_bytes)


def _library_or_error(path: Path):
    """load_library's result, None for a LibraryError; a loaded library must search, verify and unmix."""
    with WATCH.only(NO_UNPICKLING):
        try:
            lib = load_library(path)
        except LibraryError:
            return None
    x = lib.axis.values
    with np.errstate(all="ignore"):
        spectrum = Spectrum(x, 1.0 + np.sin(x / 40.0) + np.exp(-((x - x.mean()) / lib.axis.step / 20.0) ** 2))
        found = identify(lib, spectrum)
        assert found.analysis["hits"] and all(np.isfinite(h["hqi"]) for h in found.analysis["hits"])
        try:
            verify(lib, spectrum, lib.entry_names[0])
        except RamanEdgeError:  # too few replicates, or replicates that do not vary: refused by name
            pass
    return lib


def test_shipped_library_passes_the_checks(workdir):
    _write(workdir)
    assert _library_or_error(workdir) is not None


@pytest.mark.slow
@fuzz_settings(100)
@given(st.one_of(st.binary(max_size=300), MUTATIONS.map(lambda ops: mutate(BASE_CARD_BYTES, ops))))
def test_library_card_bytes(workdir, data):
    _write(workdir, card_bytes=data)
    _library_or_error(workdir)


CARD_PATHS = [("schema_version",), ("kind",), ("files",), ("files", "library.npz"), ("files", "library.npz", "sha256"),
              ("files", "../library.json"), ("files", "/etc/hostname")]


@pytest.mark.slow
@fuzz_settings(100)
@given(st.sampled_from(CARD_PATHS), JSON_VALUES)
def test_library_card_type_confusion(workdir, where, value):
    card = json.loads(json.dumps(BASE_CARD))
    node = card
    for key in where[:-1]:
        node = node[key]
    node[where[-1]] = value
    _write(workdir, card_bytes=json.dumps(card).encode())
    _library_or_error(workdir)


@fuzz_settings(150)
@given(st.lists(changes(list(BASE_ARRAYS)), min_size=1, max_size=3), st.integers(0, 2**32))
@pytest.mark.slow
@example([("axis_points", "hostile", np.array(10**9))], 0)
@example([("spectrum_entry", "hostile", np.array([99]))], 0)
def test_library_npz_content(workdir, edits, seed):
    arrays, rng = dict(BASE_ARRAYS), np.random.default_rng(seed)
    for key, how, value in edits:
        _array_change(arrays, key, how, rng, value)
    _write(workdir, arrays=arrays)
    _library_or_error(workdir)
