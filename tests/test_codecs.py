"""Byte codecs against the golden vectors of the protocol notes, and their failure modes."""
import hashlib

import numpy as np
import pytest

from firmware_bridge.errors import ChecksumError, DeviceError, FramingError, SettingError, ShortFrameError
from firmware_bridge.protocols.microspec import codec as microspec
from firmware_bridge.protocols.obp import codec as obp
from firmware_bridge.protocols.tcd1304 import codec as tcd1304

pytestmark = pytest.mark.device  # needs only the device extra


def hexbytes(text: str) -> bytes:
    return bytes.fromhex(" ".join(line.split(":", 1)[1] for line in text.strip().splitlines()))


SET_ITIME = hexbytes("""
00: C1 C0 00 11 04 00 00 00 10 00 11 00 00 00 00 00
16: 00 00 00 00 00 00 00 04 A0 86 01 00 00 00 00 00
32: 00 00 00 00 00 00 00 00 14 00 00 00 00 00 00 00
48: 00 00 00 00 00 00 00 00 00 00 00 00 C5 C4 C3 C2
""")


def test_obp_golden_frames():
    itime = obp.Message(obp.SET_ITIME_USEC, (100000).to_bytes(4, "little"), flags=obp.FLAG_ACK_REQUESTED)
    assert obp.encode(itime) == SET_ITIME
    raw = obp.encode(obp.Message(obp.GET_RAW_SPECTRUM_NOW))
    assert raw[:16] == bytes.fromhex("C1C0 0011 0000 0000 0011 1000 0000 0000")
    assert raw[16:40] == bytes(24) and raw[40:44] == bytes.fromhex("14000000") and raw[60:] == obp.FOOTER
    wl = obp.encode(obp.Message(obp.GET_WL_COEFF, b"\x01"))
    assert wl[8:12] == bytes.fromhex("01011800") and wl[23] == 1 and wl[24] == 1
    baud = obp.encode(obp.Message(obp.SET_RS232_BAUD_RATE, (115200).to_bytes(4, "little"),
                                  flags=obp.FLAG_ACK_REQUESTED))
    assert baud[8:12] == bytes.fromhex("10080000") and baud[23] == 4 and baud[24:28] == bytes.fromhex("00C20100")
    assert obp.decode(SET_ITIME) == itime


def test_obp_payload_and_md5_round_trip():
    spectrum = np.arange(1024, dtype="<u2").tobytes()
    msg = obp.Message(obp.GET_RAW_SPECTRUM_NOW, spectrum, flags=obp.FLAG_RESPONSE, checksum_type=obp.CHECKSUM_MD5)
    wire = obp.encode(msg)
    assert len(wire) == 2112  # the STS spectrum reply size
    assert wire[23] == 0 and wire[40:44] == (2048 + 20).to_bytes(4, "little")
    assert wire[-20:-4] == hashlib.md5(wire[:-20]).digest()
    assert obp.decode(wire) == msg


@pytest.mark.parametrize("damage, error", [
    (lambda w: w[:-1], ShortFrameError),
    (lambda w: w[:40], ShortFrameError),
    (lambda w: b"\x00" + w[1:], FramingError),
    (lambda w: w[:-4] + b"\0\0\0\0", FramingError),
    (lambda w: w[:30] + bytes([w[30] ^ 1]) + w[31:], ChecksumError),
    (lambda w: w[:40] + (10).to_bytes(4, "little") + w[44:], FramingError),
    (lambda w: w + b"\0", FramingError),
])
def test_obp_damage_is_named(damage, error):
    wire = obp.encode(obp.Message(obp.GET_SERIAL_NUMBER, b"STS12345", checksum_type=obp.CHECKSUM_MD5))
    with pytest.raises(error):
        obp.decode(damage(wire))


@pytest.mark.parametrize("t, sh, icg, mode, avg, wire", [
    (0.010, 20000, 20000, 0, 1, "45 52 00 00 4E 20 00 00 4E 20 00 01"),
    (100e-6, 200, 14800, 0, 4, "45 52 00 00 00 C8 00 00 39 D0 00 04"),
    (1.0, 2000000, 2000000, 1, 1, "45 52 00 1E 84 80 00 1E 84 80 01 01"),
])
def test_tcd1304_golden_commands(t, sh, icg, mode, avg, wire):
    assert tcd1304.periods(t) == (sh, icg)
    assert tcd1304.encode_command(sh, icg, mode, avg) == bytes.fromhex(wire)


@pytest.mark.parametrize("args, words", [
    ((10, 14780, 0, 1), "below the minimum 20"),
    ((200, 14000, 0, 1), "below the readout time"),
    ((300, 15100, 0, 1), "whole multiple"),
    ((200, 14800, 0, 16), "1 to 15"),
    ((200, 14800, 2, 1), "mode byte"),
])
def test_tcd1304_host_rules(args, words):
    with pytest.raises(SettingError, match=words):
        tcd1304.encode_command(*args)
    with pytest.raises(SettingError):
        tcd1304.periods(5e-6)


def test_tcd1304_frame_round_trip_and_checks():
    values = np.random.default_rng(0).integers(0, 4096, tcd1304.ELEMENTS)
    wire = tcd1304.encode_frame(values)
    assert len(wire) == 7388 and wire[:2] == int(values[0]).to_bytes(2, "little")
    np.testing.assert_array_equal(tcd1304.decode_frame(wire), values)
    with pytest.raises(ShortFrameError):
        tcd1304.decode_frame(wire[:-1])
    with pytest.raises(FramingError, match="misaligned"):  # one byte lost: high and low bytes swap roles
        tcd1304.decode_frame(wire[1:] + b"\x00")
    assert tcd1304.latency(20000, 20000, 1, 115200) == pytest.approx(0.03 + 0.03 + 0.6413, abs=1e-3)


def test_microspec_lines():
    assert microspec.command("SPEC.INTEG", 0.01) == b"SPEC.INTEG 0.01\n"
    assert microspec.command("SPEC.READ?") == b"SPEC.READ?\n"
    v = np.arange(288) * 3
    np.testing.assert_array_equal(microspec.parse_spectrum(microspec.format_spectrum(v)), v)
    np.testing.assert_array_equal(
        microspec.parse_spectrum(microspec.format_spectrum(v, trailing_comma=True), trailing_comma=True), v)
    with pytest.raises(DeviceError, match="SPEC.INTEG requires 1 argument"):
        microspec.parse_spectrum(b"### Error: SPEC.INTEG requires 1 argument 'time' (s)\n")
    with pytest.raises(FramingError, match="287 values"):
        microspec.parse_spectrum(microspec.format_spectrum(v[:-1]))
    with pytest.raises(FramingError, match="cut or merged"):
        microspec.parse_spectrum(microspec.format_spectrum(v), trailing_comma=True)
    with pytest.raises(FramingError, match="whole number"):
        microspec.parse_spectrum(b"1,2,x" + b",1" * 285 + b"\n")
