"""Esben Rossel's TCD1304 linear-CCD firmware: the 12-byte "ER" command and the 7388-byte frame.

The host sends ``'E' 'R'``, the SH and ICG periods (uint32 big-endian, in ticks of the master clock
fM, 2 MHz by default), a mode byte and an averaging count; the device answers with 3694 uint16
little-endian 12-bit values and nothing else (no header, checksum or acknowledgement). The signal is
inverted (more light, lower count); elements 32-3679 are the 3648 effective pixels and the first
elements are dark references.
"""
from __future__ import annotations

import math
import struct
from typing import TYPE_CHECKING

from firmware_bridge.errors import FramingError, SettingError, ShortFrameError

if TYPE_CHECKING:  # NumPy is imported by the frame codecs only: the registry reads this module without it
    import numpy as np

FM_HZ = 2_000_000
ELEMENTS = 3694
FRAME_BYTES = 2 * ELEMENTS
ACTIVE = slice(32, 3680)
#: Light-shielded elements used as the dark reference (datasheet D13-D28).
SHIELDED = slice(13, 29)
MAX_COUNT = 4095
MIN_SH = 20
#: Largest SH period, ticks (a uint32).
MAX_SH = 0xFFFFFFFF
MIN_ICG = 14776  # 3694 elements x 4 fM cycles
MAX_FIRMWARE_AVERAGES = 15
#: Mode byte meaning by firmware generation: 2019 firmware 0 one-shot / 1 continuous;
#: 2017 firmware "pc_ready" 1 = send one frame.
ONE_SHOT = {"2019": 0, "2017": 1}
CONTINUOUS = 1  # 2019 firmware only


def integration_range(fm_hz: int = FM_HZ) -> tuple[float, float]:
    """Shortest and longest integration time at master clock ``fm_hz``, s (SH from :data:`MIN_SH` to :data:`MAX_SH`)."""
    return MIN_SH / fm_hz, MAX_SH / fm_hz


def periods(integration_s: float, fm_hz: int = FM_HZ) -> tuple[int, int]:
    """(SH, ICG) ticks for an integration time: SH = round(t fM), ICG the smallest multiple >= 14776."""
    if not math.isfinite(integration_s):
        raise SettingError(f"integration time {integration_s} is not a number of seconds")
    sh = round(integration_s * fm_hz)
    if sh < MIN_SH:
        raise SettingError(f"integration time {integration_s * 1e6:g} us is below the TCD1304's minimum "
                           f"{MIN_SH / fm_hz * 1e6:g} us")
    if sh > MAX_SH:
        raise SettingError(f"integration time {integration_s:g} s exceeds the firmware's maximum "
                           f"{MAX_SH / fm_hz:g} s")
    return sh, sh * math.ceil(MIN_ICG / sh)


def encode_command(sh: int, icg: int, mode: int, averages: int) -> bytes:
    """The 12-byte command, after the host-side timing rules (the firmware checks nothing).

    Raises
    ------
    SettingError
        SH < 20, ICG < 14776, ICG not a multiple of SH, averages outside 1-15, mode not 0 or 1.
    """
    if sh < MIN_SH:
        raise SettingError(f"SH period {sh} is below the minimum {MIN_SH} ticks")
    if icg < MIN_ICG:
        raise SettingError(f"ICG period {icg} is below the readout time {MIN_ICG} ticks")
    if icg % sh:
        raise SettingError(f"ICG period {icg} must be a whole multiple of the SH period {sh}")
    if not 1 <= averages <= MAX_FIRMWARE_AVERAGES:
        raise SettingError(f"the firmware averages 1 to {MAX_FIRMWARE_AVERAGES} exposures, not {averages}; "
                           "average more in software")
    if mode not in (0, 1):
        raise SettingError(f"mode byte must be 0 or 1, not {mode}")
    return b"ER" + struct.pack(">II", sh, icg) + bytes((mode, averages))


def decode_frame(data: bytes) -> np.ndarray:
    """The 3694 raw element values of one frame.

    Raises
    ------
    ShortFrameError
        Fewer than 7388 bytes.
    FramingError
        More than 7388 bytes, or a value above 4095: the stream is misaligned or corrupt.
    """
    if len(data) < FRAME_BYTES:
        raise ShortFrameError(f"TCD1304 frame of {len(data)} bytes, expected {FRAME_BYTES}")
    if len(data) > FRAME_BYTES:
        raise FramingError(f"TCD1304 frame of {len(data)} bytes, expected {FRAME_BYTES}: the stream holds extra "
                           "bytes; drain the line and request a new frame")
    import numpy as np

    values = np.frombuffer(data, dtype="<u2")
    if values.max() > MAX_COUNT:
        raise FramingError(f"TCD1304 frame holds a value {int(values.max())} above the 12-bit maximum "
                           f"{MAX_COUNT}: the byte stream is misaligned or corrupt")
    return values.copy()


def encode_frame(values: np.ndarray) -> bytes:
    """Pack 3694 element values (0-4095) as the firmware sends them."""
    import numpy as np

    return np.asarray(values, dtype="<u2").tobytes()


def latency(sh: int, icg: int, averages: int, baud: int, fm_hz: int = FM_HZ) -> float:
    """Seconds from a one-shot command to the last byte of its frame.

    The flush (~30 ms), two ICG periods to re-arm, one readout per exposure, and the transfer at 10
    bits per byte.
    """
    t_icg = icg / fm_hz
    return 0.030 + 2 * t_icg + averages * t_icg + FRAME_BYTES * 10 / baud
