"""Fuzz tests of the Micro-spectrometer line parser (firmware_bridge.protocols.microspec.codec).

Round trips, random, mutated lines.
"""
from __future__ import annotations

import numpy as np
import pytest
from fuzzing import MUTATIONS, fuzz_settings, mutate
from hypothesis import example, given
from hypothesis import strategies as st

from firmware_bridge.errors import DeviceError, FramingError
from firmware_bridge.protocols.microspec import codec as microspec

pytestmark = pytest.mark.device  # needs only the device extra


def _microspec_parse(line: bytes, trailing_comma: bool):
    try:
        values = microspec.parse_spectrum(line, trailing_comma=trailing_comma)
    except (DeviceError, FramingError):
        return None
    assert values.shape == (microspec.CHANNELS,) and values.dtype == np.int64 and values.min() >= 0
    return values


COUNTS = st.lists(st.one_of(st.integers(0, 1023), st.integers(0, 2**63 - 1)),
                  min_size=microspec.CHANNELS, max_size=microspec.CHANNELS)


@pytest.mark.slow
@fuzz_settings(100)
@given(COUNTS, st.booleans())
def test_microspec_round_trip(values, trailing_comma):
    line = microspec.format_spectrum(values, trailing_comma)
    np.testing.assert_array_equal(microspec.parse_spectrum(line, trailing_comma=trailing_comma), values)


LINE_BYTES = st.one_of(
    st.binary(max_size=2000),
    st.text(alphabet="0123456789,,,,-+ _#\r\n\t.eE", max_size=2000).map(str.encode),
    st.integers(1, 40).map(lambda digits: b",".join([b"9" * digits] * microspec.CHANNELS)))


@pytest.mark.slow
@fuzz_settings(300)
@given(LINE_BYTES, st.booleans())
@example(b",".join([b"9" * 20] * 288), False)  # OverflowError before the fix
def test_microspec_random_lines(line, trailing_comma):
    _microspec_parse(line, trailing_comma)


@pytest.mark.slow
@fuzz_settings(200)
@given(COUNTS, st.booleans(), MUTATIONS)
def test_microspec_mutated_lines(values, trailing_comma, ops):
    _microspec_parse(mutate(microspec.format_spectrum(values, trailing_comma), ops), trailing_comma)


def test_microspec_refuses_an_overflowing_count():
    with pytest.raises(FramingError, match="too large"):
        microspec.parse_spectrum(b",".join([b"1" + b"0" * 19] * 288))
