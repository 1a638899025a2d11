"""Fuzz tests of the Ocean Binary Protocol codec (firmware_bridge.protocols.obp.codec).

Round trips, random and mutated frames.
"""
from __future__ import annotations

import pytest
from fuzzing import MUTATIONS, fuzz_settings, mutate
from hypothesis import example, given
from hypothesis import strategies as st

from firmware_bridge.errors import FramingError, ShortFrameError
from firmware_bridge.protocols.obp import codec as obp

pytestmark = pytest.mark.device  # needs only the device extra

OBP_MESSAGES = st.builds(
    obp.Message, message_type=st.integers(0, 2**32 - 1), data=st.binary(max_size=200),
    flags=st.integers(0, 0xFFFF), error=st.integers(0, 0xFFFF),
    checksum_type=st.sampled_from([obp.CHECKSUM_NONE, obp.CHECKSUM_MD5]),
    version=st.sampled_from(obp.ACCEPTED_VERSIONS), regarding=st.integers(0, 2**32 - 1))


def _obp_decode(frame: bytes):
    """The decoded message, or None for a frame refused with the codec's own errors."""
    try:
        msg = obp.decode(frame)
    except (ShortFrameError, FramingError):  # ChecksumError is a FramingError
        return None
    assert obp.decode(obp.encode(msg)) == msg
    return msg


@fuzz_settings(200)
@given(OBP_MESSAGES)
def test_obp_round_trip(msg):
    frame = obp.encode(msg)
    assert obp.frame_length(frame[:obp.HEADER_SIZE]) == len(frame)
    assert obp.decode(frame) == msg


@fuzz_settings(300)
@given(st.one_of(st.binary(max_size=300), st.binary(max_size=300).map(lambda b: obp.START + b)))
@example(b"\xc1\xc0" + b"\0" * 20)  # a header cut short: struct.error before the fix
def test_obp_random_bytes(data):
    _obp_decode(data)
    try:
        assert obp.HEADER_SIZE + obp.TRAILER_SIZE <= obp.frame_length(data) <= obp.MAX_PAYLOAD + obp.MIN_SIZE
    except (ShortFrameError, FramingError):
        pass


@pytest.mark.slow
@fuzz_settings(300)
@given(OBP_MESSAGES, MUTATIONS)
def test_obp_mutated_frames(msg, ops):
    frame = obp.encode(msg)
    bad = mutate(frame, ops)
    decoded = _obp_decode(bad)
    if len(bad) < len(frame) and frame.startswith(bad):
        with pytest.raises(ShortFrameError):
            obp.decode(bad)
    if msg.checksum_type == obp.CHECKSUM_MD5 and len(ops) == 1 and decoded is not None:
        # one damaged byte in an MD5 frame: refused, or only the checksum type byte went from 1 to 0
        assert (decoded.message_type, decoded.data, decoded.flags, decoded.error, decoded.version,
                decoded.regarding) == (msg.message_type, msg.data, msg.flags, msg.error, msg.version, msg.regarding)


def test_obp_appended_bytes_are_refused():
    frame = obp.encode(obp.Message(obp.GET_TEMPERATURE, b"\x01\x02", checksum_type=obp.CHECKSUM_MD5))
    with pytest.raises(FramingError, match="header announces"):
        obp.decode(frame + b"\0")
    with pytest.raises(ShortFrameError, match="shorter than 44"):
        obp.frame_length(frame[:43])
