"""Fuzz tests of the TCD1304 frame codec (firmware_bridge.protocols.tcd1304.codec).

Round trips, random and mutated frames.
"""
from __future__ import annotations

import numpy as np
import pytest
from fuzzing import MUTATIONS, fuzz_settings, mutate
from hypothesis import example, given
from hypothesis import strategies as st

from firmware_bridge.errors import FramingError, ShortFrameError
from firmware_bridge.protocols.tcd1304 import codec as tcd1304

pytestmark = pytest.mark.device  # needs only the device extra


def _tcd_values(seed: int, kind: str) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return {"random": lambda: rng.integers(0, tcd1304.MAX_COUNT + 1, tcd1304.ELEMENTS),
            "dark": lambda: np.zeros(tcd1304.ELEMENTS, int),
            "saturated": lambda: np.full(tcd1304.ELEMENTS, tcd1304.MAX_COUNT)}[kind]()


def _tcd_check(data: bytes) -> None:
    """decode_frame either returns the exact 12-bit values or raises the error the length and values call for."""
    if len(data) < tcd1304.FRAME_BYTES:
        with pytest.raises(ShortFrameError):
            tcd1304.decode_frame(data)
    elif len(data) > tcd1304.FRAME_BYTES:
        with pytest.raises(FramingError, match="extra"):
            tcd1304.decode_frame(data)
    elif np.frombuffer(data, "<u2").max() > tcd1304.MAX_COUNT:
        with pytest.raises(FramingError, match="misaligned"):
            tcd1304.decode_frame(data)
    else:
        values = tcd1304.decode_frame(data)
        assert values.shape == (tcd1304.ELEMENTS,) and tcd1304.encode_frame(values) == data


@fuzz_settings(50)
@given(st.integers(0, 2**32), st.sampled_from(["random", "dark", "saturated"]))
def test_tcd1304_round_trip(seed, kind):
    values = _tcd_values(seed, kind)
    np.testing.assert_array_equal(tcd1304.decode_frame(tcd1304.encode_frame(values)), values)


@fuzz_settings(200)
@given(st.one_of(st.binary(max_size=100), st.integers(0, 2**32).map(
    lambda s: np.random.default_rng(s).bytes(tcd1304.FRAME_BYTES + s % 3 - 1))))
def test_tcd1304_random_bytes(data):
    _tcd_check(data)


@pytest.mark.slow
@fuzz_settings(200)
@given(st.integers(0, 2**32), st.sampled_from(["random", "dark", "saturated"]), MUTATIONS)
@example(0, "dark", [("insert", 7388, b"\0")])  # an extra byte was silently dropped before the fix
def test_tcd1304_mutated_frames(seed, kind, ops):
    _tcd_check(mutate(tcd1304.encode_frame(_tcd_values(seed, kind)), ops))
