"""Ocean Binary Protocol (OBP) message codec: bytes <-> messages, no I/O.

Layout (all multi-byte fields little-endian): 44-byte header (start bytes ``C1 C0``, protocol
version, flags, error number, message type, regarding, reserved, checksum type, immediate data length,
16 bytes of immediate data, bytes remaining), an optional payload (data longer than 16 bytes), a
16-byte checksum (MD5 of everything before it when the checksum type is 1, else zeros) and the
footer ``C5 C4 C3 C2``.
"""
from __future__ import annotations

import hashlib
import struct
from dataclasses import dataclass

from firmware_bridge.errors import ChecksumError, FramingError, ShortFrameError

START = b"\xc1\xc0"
FOOTER = b"\xc5\xc4\xc3\xc2"
VERSION = 0x1100
ACCEPTED_VERSIONS = (0x1000, 0x1100)
HEADER_SIZE = 44
TRAILER_SIZE = 20  # checksum + footer
MIN_SIZE = HEADER_SIZE + TRAILER_SIZE
MAX_IMMEDIATE = 16
MAX_PAYLOAD = 1 << 20  # far above any spectrum; guards against a corrupt length field
#: Rates SET_RS232_BAUD_RATE accepts (STS, Spark); the device powers up at 9600.
BAUD_RATES = (9600, 19200, 38400, 57600, 115200, 230400, 460800)

FLAG_RESPONSE = 0x0001
FLAG_ACK = 0x0002
FLAG_ACK_REQUESTED = 0x0004
FLAG_NACK = 0x0008
FLAG_EXCEPTION = 0x0010
FLAG_DEPRECATED = 0x0020

CHECKSUM_NONE = 0
CHECKSUM_MD5 = 1

# Message types used by the driver.
RESET = 0x00000000
GET_HARDWARE_REVISION = 0x00000080
GET_FIRMWARE_REVISION = 0x00000090
GET_SERIAL_NUMBER = 0x00000100
GET_SERIAL_NUMBER_LENGTH = 0x00000101
GET_RS232_BAUD_RATE = 0x00000800
SET_RS232_BAUD_RATE = 0x00000810
GET_RAW_SPECTRUM_NOW = 0x00101100
GET_INTEGRATION_TIME_US = 0x00110000
SET_ITIME_USEC = 0x00110010
GET_NUMBER_OF_PIXELS = 0x00110220
SET_LAMP_ENABLE = 0x00110410
GET_SCANS_TO_AVERAGE = 0x00120000
SET_SCANS_TO_AVERAGE = 0x00120010
GET_WL_COEFF_COUNT = 0x00180100
GET_WL_COEFF = 0x00180101
GET_TEMPERATURE = 0x00400001

ERROR_CODES = {
    0: "success", 1: "invalid or unsupported protocol", 2: "unknown message type", 3: "bad checksum",
    4: "message too large", 5: "payload length does not match message type", 6: "payload data invalid",
    7: "device not ready for given message type", 8: "unknown checksum type", 9: "device reset unexpectedly",
    10: "too many buses", 11: "out of memory", 12: "command valid but information does not exist",
    13: "internal device error", 100: "could not decrypt", 101: "firmware layout invalid",
    102: "data packet wrong size", 103: "hardware revision not compatible", 104: "flash map not compatible",
    255: "operation deferred",
}


@dataclass(frozen=True)
class Message:
    """One OBP message.

    Attributes
    ----------
    message_type : int
    data : bytes
        Immediate data (<= 16 bytes) or payload (longer), whichever the length decides.
    flags : int
    error : int
    checksum_type : int
        ``CHECKSUM_NONE`` or ``CHECKSUM_MD5``.
    version : int
    regarding : int
    """

    message_type: int
    data: bytes = b""
    flags: int = 0
    error: int = 0
    checksum_type: int = CHECKSUM_NONE
    version: int = VERSION
    regarding: int = 0

    @property
    def is_nack(self) -> bool:
        """The device refused the message (NACK or exception flag)."""
        return bool(self.flags & (FLAG_NACK | FLAG_EXCEPTION))


def encode(msg: Message) -> bytes:
    """The wire bytes of a message."""
    data = bytes(msg.data)
    immediate, payload = (data, b"") if len(data) <= MAX_IMMEDIATE else (b"", data)
    head = struct.pack("<2sHHHII6sBB16sI", START, msg.version, msg.flags, msg.error, msg.message_type, msg.regarding,
                       b"\0" * 6, msg.checksum_type, len(immediate), immediate.ljust(16, b"\0"),
                       len(payload) + TRAILER_SIZE)
    body = head + payload
    checksum = hashlib.md5(body).digest() if msg.checksum_type == CHECKSUM_MD5 else b"\0" * 16
    return body + checksum + FOOTER


def frame_length(header: bytes) -> int:
    """Total length of the message whose first 44 bytes are ``header``.

    Raises
    ------
    ShortFrameError
        If ``header`` is shorter than 44 bytes.
    FramingError
        If the start bytes are wrong or the length field is impossible.
    """
    if len(header) < HEADER_SIZE:
        raise ShortFrameError(f"OBP header of {len(header)} bytes is shorter than {HEADER_SIZE}; read the whole "
                              "header before asking for the message length")
    if header[:2] != START:
        raise FramingError(f"OBP message does not start with C1 C0 (got {header[:2].hex(' ')})")
    remaining = struct.unpack_from("<I", header, 40)[0]
    if not TRAILER_SIZE <= remaining <= MAX_PAYLOAD + TRAILER_SIZE:
        raise FramingError(f"OBP length field {remaining} is impossible (20 to {MAX_PAYLOAD + TRAILER_SIZE})")
    return HEADER_SIZE + remaining


def decode(frame: bytes) -> Message:
    """Parse and check one complete message.

    Raises
    ------
    ShortFrameError, FramingError, ChecksumError
    """
    if len(frame) < MIN_SIZE:
        raise ShortFrameError(f"OBP message of {len(frame)} bytes is shorter than the minimum {MIN_SIZE}")
    total = frame_length(frame[:HEADER_SIZE])
    if len(frame) < total:
        raise ShortFrameError(f"OBP message of {len(frame)} bytes, its header announces {total}")
    if len(frame) > total:
        raise FramingError(f"OBP message of {len(frame)} bytes, its header announces {total}")
    (_, version, flags, error, mtype, regarding, _, ctype, imm_len, immediate,
     remaining) = struct.unpack_from("<2sHHHII6sBB16sI", frame)
    if frame[-4:] != FOOTER:
        raise FramingError(f"OBP message does not end with C5 C4 C3 C2 (got {frame[-4:].hex(' ')})")
    if imm_len > MAX_IMMEDIATE:
        raise FramingError(f"OBP immediate length {imm_len} exceeds 16")
    payload = frame[HEADER_SIZE:total - TRAILER_SIZE]
    if imm_len and payload:
        raise FramingError("OBP message carries both immediate data and a payload")
    if ctype == CHECKSUM_MD5:
        if hashlib.md5(frame[:total - TRAILER_SIZE]).digest() != frame[total - TRAILER_SIZE:total - 4]:
            raise ChecksumError("OBP message fails its MD5 checksum")
    elif ctype != CHECKSUM_NONE:
        raise FramingError(f"OBP checksum type {ctype} is unknown")
    return Message(mtype, immediate[:imm_len] if imm_len else payload, flags, error, ctype, version, regarding)
