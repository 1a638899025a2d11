"""Shared pieces of the fuzz tests: bounded settings, the audit-hook watcher, byte mutations, .npz builders.

Each parser under test either returns a valid result or raises its own error type (a
``firmware_bridge.errors`` type or a :class:`device.errors.RamanEdgeError`); nothing else may escape,
nothing may be unpickled, and the control port touches no file. Inputs are random bytes and mutations
(flipped, inserted, deleted bytes, truncation) of valid inputs made with each module's own encoder.
``fuzz/fuzz_parsers.py`` runs the same parsers for many more cases.
"""
from __future__ import annotations

import importlib.util
import io
import zipfile
from pathlib import Path

import numpy as np
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = ROOT / "models" / "sers-pesticides"


def fuzz_settings(examples: int):
    """Bounded examples, no deadline (the machine is shared), fixtures reused across examples."""
    return settings(max_examples=examples, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture,
                                           HealthCheck.data_too_large, HealthCheck.filter_too_much])


def _fuzz_script():
    """``fuzz/fuzz_parsers.py``, whose audit-hook watcher the tests share."""
    spec = importlib.util.spec_from_file_location("fuzz_parsers", Path(__file__).resolve().parents[1] / "fuzz" /
                                                  "fuzz_parsers.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


_FUZZ = _fuzz_script()
WATCH = _FUZZ.WATCH
NO_UNPICKLING = _FUZZ.FILES_ONLY  # reading files is expected, unpickling never


# ---------------------------------------------------------------------------------------------------
# Mutations of valid inputs

_OP = st.one_of(
    st.tuples(st.just("flip"), st.integers(0, 1 << 20), st.integers(1, 255)),
    st.tuples(st.just("insert"), st.integers(0, 1 << 20), st.binary(min_size=1, max_size=8)),
    st.tuples(st.just("delete"), st.integers(0, 1 << 20), st.integers(1, 8)),
    st.tuples(st.just("truncate"), st.integers(0, 1 << 20), st.just(0)),
)
MUTATIONS = st.lists(_OP, min_size=1, max_size=4)

#: Array types a hostile .npz may hold.
DTYPES = st.sampled_from([np.float64, np.float32, np.int16, np.uint8, np.bool_, np.complex128, "<U4", "S3",
                          "datetime64[s]", [("a", "<f8"), ("b", "<i4")]])


def mutate(data: bytes, ops) -> bytes:
    """Apply (kind, position, argument) edits; positions wrap around the current length."""
    b = bytearray(data)
    for kind, pos, arg in ops:
        i = pos % (len(b) + 1)
        if kind == "flip" and i < len(b):
            b[i] ^= arg
        elif kind == "insert":
            b[i:i] = arg
        elif kind == "delete":
            del b[i:i + arg]
        elif kind == "truncate":
            del b[i:]
    return bytes(b)


def npz_bytes(**arrays) -> bytes:
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    return buf.getvalue()


def zip_npz(arrays: dict, raw: dict | None = None) -> bytes:
    """An .npz archive, compressed, of ``arrays`` and of ``raw`` entries (name: bytes without a .npy header)."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        for k, v in arrays.items():
            with z.open(f"{k}.npy", "w") as f:
                np.lib.format.write_array(f, v)
        for k, v in (raw or {}).items():
            z.writestr(f"{k}.npy", v)
    return buf.getvalue()


class Payload:
    """Marks, through the audit hook, any attempt to unpickle it."""

    def __reduce__(self):
        return (print, ("unpickled",))

