"""Fuzz tests of the control-port protocol (device.service.control): any bytes, split anywhere; no file touched."""
from __future__ import annotations

import json

import pytest
from fuzzing import WATCH, fuzz_settings
from hypothesis import given
from hypothesis import strategies as st

from device.service.control import COMMANDS, MAX_LINE, LineReader, dispatch, reply

pytestmark = pytest.mark.device  # needs only the device extra


class _Service:
    """Stands in for device.service.measurement.Service: fixed replies, no hardware, no files."""

    def measure(self, trigger: str, mode: str | None = None, expected: str | None = None) -> dict:
        return {"ok": True, "verdict": "No_pest_present", "confidence": 0.99, "id": 1}

    def sst(self, trigger: str) -> dict:
        return {"ok": True, "verdict": "PASS", "id": 2}

    def status(self) -> dict:
        return {"state": "ready"}

    def last(self) -> dict:
        return {"ok": True, "id": 1}

    def model_info(self) -> dict:
        return {"model": "m@000000000000"}


def _serve(chunks: list[bytes]) -> list[bytes]:
    """Replies to a byte stream delivered in ``chunks``, as the runner composes reader, dispatch and reply."""
    reader, service, out = LineReader(), _Service(), []
    for chunk in chunks:
        for text, error in reader.feed(chunk):
            out.append(reply(dispatch(text, service) if text is not None else {"ok": False, "error": error}))
        assert len(reader._buf) <= MAX_LINE  # the buffered partial line stays bounded
    return out


def _expected(line: bytes) -> tuple[bool, str | None]:
    """(ok, command) that the protocol promises for one line (without its LF)."""
    if len(line) > MAX_LINE:
        return False, None
    try:
        words = line.rstrip(b"\r").decode("ascii").split()
    except UnicodeDecodeError:
        return False, None
    if len(words) == 1 and words[0].upper() in COMMANDS:
        return True, words[0].upper()
    if words and words[0].upper() == "MEASURE" and (
            (len(words) == 2 and words[1].upper() in ("CLASSIFY", "IDENTIFY"))
            or (len(words) >= 3 and words[1].upper() == "VERIFY")):
        return True, "MEASURE"
    return False, None


PIECES = st.one_of(
    st.binary(max_size=80),
    st.sampled_from([b"MEASURE", b"status", b"Help", b"LAST", b"model", b"\n", b"\r\n", b"\r", b"\0", b" ",
                     b"\t", "\u00e9".encode(), b"\xff", b"A" * 70, b"MODEL extra", b"\x1c", b"../etc/passwd",
                     b"MEASURE identify", b"measure VERIFY ", b"MEASURE verify PS", b"MEASURE classify now"]))


@pytest.mark.slow
@fuzz_settings(300)
@given(st.lists(PIECES, max_size=30), st.data())
def test_control_port_any_bytes_any_split(pieces, data):
    stream = b"".join(pieces)
    cuts = sorted(data.draw(st.lists(st.integers(0, len(stream)), max_size=8)))
    chunks = [stream[a:b] for a, b in zip([0, *cuts], [*cuts, len(stream)])]
    with WATCH.only():
        replies = _serve(chunks)
    lines = stream.split(b"\n")[:-1]  # the part after the last LF is not a line yet
    assert len(replies) == len(lines)
    for line, raw in zip(lines, replies):
        assert raw.endswith(b"\n") and raw.count(b"\n") == 1
        answer = json.loads(raw.decode("ascii"))
        ok, command = _expected(line)
        assert answer["ok"] is ok, (line, answer)
        if ok:
            assert answer["command"] == command
        else:
            assert isinstance(answer["error"], str) and answer["error"]


def test_control_port_overlong_line_is_refused_whole():
    replies = _serve([b"M" * 10_000, b"EASURE\nSTATUS\n"])
    assert [json.loads(r)["ok"] for r in replies] == [False, True]
    assert "longer than 64 bytes" in json.loads(replies[0])["error"]
