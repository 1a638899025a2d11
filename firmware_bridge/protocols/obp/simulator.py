"""A simulated Ocean STS-class spectrometer: OBP message handling, power-up baud rate, resets, NACKs."""
from __future__ import annotations

import struct

import numpy as np

from firmware_bridge.errors import ChecksumError, FramingError
from firmware_bridge.protocols.obp import codec as obp
from firmware_bridge.sim.device import SimulatedDevice
from firmware_bridge.sim.instrument import Instrument, Scene

STS_COEFFICIENTS = (779.97, 0.31415, -1.2e-5, 1.0e-9)  # nm; a 785 nm STS-like unit, 780-1095 nm


class OBPDevice(SimulatedDevice):
    """An Ocean STS-class spectrometer speaking OBP over RS-232 (1024 pixels, 14-bit)."""

    POWER_UP_BAUD = 9600
    RESET_SILENCE = 1.0
    SERIAL = "STS04211"
    MIN_ITIME_US, MAX_ITIME_US = 10, 85_000_000

    def __init__(self, instrument: Instrument, scene: Scene, seed: int = 0):
        super().__init__(instrument, scene, seed)
        self.baud = self.POWER_UP_BAUD
        self.buffer = bytearray()
        self.silent_until = 0.0
        self.itime_us = 100_000
        self.scans = 1
        self.laser_on = False
        self.temperature = 23.5

    def reset(self, now: float) -> None:
        """Reboot: silent for a second, back to power-up settings and baud rate."""
        self.line.discard_output()
        self.buffer.clear()
        self.baud = self.POWER_UP_BAUD
        self.itime_us, self.scans, self.laser_on = 100_000, 1, False
        self.silent_until = now + (self.RESET_SILENCE if self.line.paced else 0.0)

    def receive(self, data: bytes, now: float) -> None:
        """Bytes from the host, at monotonic time ``now``."""
        if now < self.silent_until:
            return
        self.buffer += data
        while True:
            start = self.buffer.find(obp.START)
            if start < 0:
                del self.buffer[:max(0, len(self.buffer) - 1)]
                return
            del self.buffer[:start]
            if len(self.buffer) < obp.HEADER_SIZE:
                return
            try:
                total = obp.frame_length(bytes(self.buffer[:obp.HEADER_SIZE]))
            except FramingError:
                del self.buffer[:1]
                continue
            if len(self.buffer) < total:
                return
            frame = bytes(self.buffer[:total])
            if frame[-4:] != obp.FOOTER:  # not a message after all: resynchronise
                del self.buffer[:1]
                continue
            del self.buffer[:total]
            self._handle(frame, now)

    def _reply(self, request: obp.Message, data: bytes = b"", error: int = 0, delay: float = 0.0) -> None:
        if error:
            flags = obp.FLAG_RESPONSE | obp.FLAG_NACK
        elif request.flags & obp.FLAG_ACK_REQUESTED:
            flags = obp.FLAG_RESPONSE | obp.FLAG_ACK
        else:
            flags = obp.FLAG_RESPONSE
        self.line.emit(obp.encode(obp.Message(request.message_type, data, flags, error, request.checksum_type)), delay)

    def _handle(self, frame: bytes, now: float) -> None:
        version, ctype = struct.unpack_from("<H", frame, 2)[0], frame[22]
        mtype = struct.unpack_from("<I", frame, 8)[0]
        stub = obp.Message(mtype, checksum_type=ctype if ctype in (0, 1) else 0)
        if version not in obp.ACCEPTED_VERSIONS:
            return self._reply(stub, error=1)
        try:
            msg = obp.decode(frame)
        except ChecksumError:
            return self._reply(stub, error=3)
        except FramingError as exc:
            return self._reply(stub, error=8 if "checksum type" in str(exc) else 5)
        handler = self.HANDLERS.get(msg.message_type)
        if handler is None:
            return self._reply(msg, error=2)
        faults = self.line.faults
        if faults is not None and faults.device_faults and msg.message_type != obp.RESET:
            if faults.roll("spontaneous reset", 0.2):
                return self.reset(now)
            if faults.roll("NACK", 0.3):
                return self._reply(msg, error=7)  # device not ready
        handler(self, msg, now)

    def _u(self, msg: obp.Message, fmt: str):
        if len(msg.data) != struct.calcsize(fmt):
            self._reply(msg, error=5)
            return None
        return struct.unpack(fmt, msg.data)[0]

    def _reset(self, msg, now):
        self.reset(now)

    def _serial(self, msg, now):
        self._reply(msg, self.SERIAL.encode("ascii"))

    def _serial_len(self, msg, now):
        self._reply(msg, bytes((len(self.SERIAL),)))

    def _get_baud(self, msg, now):
        self._reply(msg, struct.pack("<I", self.baud))

    def _set_baud(self, msg, now):
        baud = self._setting(msg, "<I", lambda v: v in obp.BAUD_RATES)
        if baud is None:
            return
        self._reply(msg)  # acknowledged at the old rate, then the rate changes
        self.baud = baud

    def _setting(self, msg, fmt: str, valid) -> int | None:
        """The value a SET message carries, or None after a NACK (5: wrong size, 6: invalid value)."""
        value = self._u(msg, fmt)
        if value is not None and not valid(value):
            self._reply(msg, error=6)
            return None
        return value

    def _set_itime(self, msg, now):
        us = self._setting(msg, "<I", lambda v: self.MIN_ITIME_US <= v <= self.MAX_ITIME_US)
        if us is not None:
            self.itime_us = us
            self._reply(msg)

    def _get_itime(self, msg, now):
        self._reply(msg, struct.pack("<I", self.itime_us))

    def _set_scans(self, msg, now):
        n = self._setting(msg, "<H", lambda v: 1 <= v <= 5000)
        if n is not None:
            self.scans = n
            self._reply(msg)

    def _get_scans(self, msg, now):
        self._reply(msg, struct.pack("<H", self.scans))

    def _lamp(self, msg, now):
        on = self._setting(msg, "<B", lambda v: v in (0, 1))
        if on is None:
            return
        if self.laser_on and not on:
            self.scene.advance()  # measurement over: the next sample is put in place
        self.laser_on = bool(on)
        self._reply(msg)

    def _pixels(self, msg, now):
        self._reply(msg, struct.pack("<I", self.instrument.pixels))

    def _wl_count(self, msg, now):
        self._reply(msg, bytes((len(self.instrument.coefficients),)))

    def _wl_coeff(self, msg, now):
        i = self._u(msg, "<B")
        if i is None:
            return
        if i >= len(self.instrument.coefficients):
            return self._reply(msg, error=12)
        self._reply(msg, struct.pack("<f", self.instrument.coefficients[i]))

    def _temperature(self, msg, now):
        if self._u(msg, "<B") is not None:
            self._reply(msg, struct.pack("<f", self.temperature + float(self.rng.normal(0, 0.05))))

    def _spectrum(self, msg, now):
        seconds = self.itime_us * 1e-6
        counts = np.rint(self.exposure(seconds, self.scans)).astype("<u2")
        self._reply(msg, counts.tobytes(), delay=seconds * self.scans)

    HANDLERS = {
        obp.RESET: _reset, obp.GET_SERIAL_NUMBER: _serial, obp.GET_SERIAL_NUMBER_LENGTH: _serial_len,
        obp.GET_RS232_BAUD_RATE: _get_baud, obp.SET_RS232_BAUD_RATE: _set_baud, obp.SET_ITIME_USEC: _set_itime,
        obp.GET_INTEGRATION_TIME_US: _get_itime, obp.SET_SCANS_TO_AVERAGE: _set_scans,
        obp.GET_SCANS_TO_AVERAGE: _get_scans, obp.SET_LAMP_ENABLE: _lamp, obp.GET_NUMBER_OF_PIXELS: _pixels,
        obp.GET_WL_COEFF_COUNT: _wl_count, obp.GET_WL_COEFF: _wl_coeff, obp.GET_TEMPERATURE: _temperature,
        obp.GET_RAW_SPECTRUM_NOW: _spectrum,
    }


def sts_instrument(laser_nm: float = 785.0) -> Instrument:
    """The instrument model of the simulated unit."""
    return Instrument(STS_COEFFICIENTS, 1024, laser_nm, max_count=16383, dark_level=1500.0, dark_rate=200.0,
                      gain=20000.0, electrons_per_count=4.0, read_noise=12.0, resolution_pixels=5.0)


def simulated_device(scene: Scene, seed: int, laser_nm: float, firmware: str | None) -> OBPDevice:
    """An STS-like unit at ``laser_nm`` looking at ``scene`` (OBP devices have one firmware: ``firmware`` is None)."""
    return OBPDevice(sts_instrument(laser_nm), scene, seed)
