"""Byte-level state machines of the supported spectrometers, as their firmware behaves."""
from __future__ import annotations

import struct

import numpy as np

from .. import microspec, obp, tcd1304
from ..errors import ChecksumError, FramingError
from .instrument import Instrument, Scene


class SimulatedDevice:
    """Base: an instrument looking at a scene, talking through a :class:`~.line.SimulatedLine`."""

    baud = 115200
    #: False for native USB-CDC devices, where the host's baud setting does not matter.
    baud_sensitive = True

    def __init__(self, instrument: Instrument, scene: Scene, seed: int = 0):
        self.instrument = instrument
        self.scene = scene
        self.rng = np.random.default_rng(seed)
        self.line = None
        self.laser_on = True

    def attach(self, line) -> None:
        self.line = line

    def receive(self, data: bytes, now: float) -> None:
        """Bytes from the host."""
        raise NotImplementedError

    def poll(self, now: float) -> None:
        """Time passes: free-running devices emit here."""

    def next_event(self) -> float | None:
        """When :meth:`poll` next has something to do (None: nothing scheduled)."""
        return None

    def exposure(self, seconds: float, averages: int) -> np.ndarray:
        """Mean counts of ``averages`` exposures of the sample in view (floats); dark with the laser off."""
        shift, intensity, _ = self.scene.current()
        if not self.laser_on:
            intensity = np.zeros_like(intensity)
        return np.mean([self.instrument.render(shift, intensity, seconds, self.rng) for _ in range(averages)], axis=0)


# --------------------------------------------------------------------------- Ocean Binary Protocol
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
    return Instrument(STS_COEFFICIENTS, 1024, laser_nm, max_count=16383, dark_level=1500.0, dark_rate=200.0,
                      gain=20000.0, electrons_per_count=4.0, read_noise=12.0, resolution_pixels=5.0)


# --------------------------------------------------------------------------- Rossel TCD1304 firmware
TCD1304_COEFFICIENTS = (772.5, 0.0860, -2.1e-6)  # nm over the 3648 effective pixels: ~772-1058 nm


class TCD1304Device(SimulatedDevice):
    """Rossel's TCD1304 firmware on a Nucleo: 12-byte command window, silent, 7388-byte frames."""

    EVEN_ODD_OFFSET = 6  # counts added to even elements, as pyCCDGUI's balance option expects

    def __init__(self, instrument: Instrument, scene: Scene, seed: int = 0, firmware: str = "2019",
                 fm_hz: int = tcd1304.FM_HZ):
        super().__init__(instrument, scene, seed)
        self.firmware = firmware
        self.fm = fm_hz
        self.window = bytearray()
        self.continuous = False
        self.settings = None  # (sh, icg, averages)
        self._due = None

    def receive(self, data: bytes, now: float) -> None:
        for b in data:
            self.window.append(b)
            if len(self.window) == 12:
                self._command(bytes(self.window), now)
                self.window.clear()

    def _command(self, buf: bytes, now: float) -> None:
        # The firmware rotates its 12-byte DMA buffer so that the first 'E','R' pair (wrapping round)
        # comes first, and accepts whatever that yields.
        for i in range(12):
            if buf[i] == 0x45 and buf[(i + 1) % 12] == 0x52:
                buf = buf[i:] + buf[:i]
                break
        else:
            return
        sh, icg = struct.unpack(">II", buf[2:10])
        mode, avg = buf[10], buf[11]
        self.line.discard_output()  # any command aborts what was going on
        if self.firmware == "2017":
            self.continuous, avg = False, 1
            if mode != 1:
                self.settings, self._due = None, None
                return
        else:
            self.continuous = mode == 1
            avg = avg if 1 <= avg <= 15 else 1
        self.settings = (max(sh, 1), max(icg, 1), avg)
        t_icg = icg / self.fm
        self._due = now + (0.030 + 2 * t_icg + avg * t_icg if self.line.paced else 0.0)

    def next_event(self):
        return self._due

    def poll(self, now: float) -> None:
        if self._due is None or now < self._due:
            return
        if self.continuous and self.line.pending():  # host has not read the last frame yet
            return
        sh, icg, avg = self.settings
        self.line.emit(tcd1304.encode_frame(self.frame(sh / self.fm, avg)))
        self.scene.advance()  # no laser line: each frame is the next sample
        if self.continuous:
            transmit = tcd1304.FRAME_BYTES * 10 / self.baud
            self._due = now + (max(avg * icg / self.fm, transmit) if self.line.paced else 0.0)
        else:
            self._due = None

    def frame(self, seconds: float, averages: int) -> np.ndarray:
        """One 3694-element frame: dark references, inverted active pixels, even/odd offset."""
        dark = self.instrument.dark_level
        exposures = []
        for _ in range(averages):
            values = np.full(tcd1304.ELEMENTS, dark) + self.rng.normal(0, self.instrument.read_noise, tcd1304.ELEMENTS)
            values[tcd1304.ACTIVE] = self.exposure(seconds, 1)
            values[::2] += self.EVEN_ODD_OFFSET
            exposures.append(np.clip(np.rint(values), 0, tcd1304.MAX_COUNT).astype(np.int64))
        return np.sum(exposures, axis=0) // averages  # the firmware's integer average


def tcd1304_instrument(laser_nm: float = 785.0) -> Instrument:
    return Instrument(TCD1304_COEFFICIENTS, 3648, laser_nm, max_count=4095, dark_level=3600.0, dark_rate=300.0,
                      gain=40000.0, electrons_per_count=10.0, read_noise=3.0, inverted=True,
                      resolution_pixels=3.0)


# --------------------------------------------------------------------------- Hamamatsu C12880MA sketches
class MicrospecDevice(SimulatedDevice):
    """open-eio microspec firmware on a Teensy: SPEC.INTEG / SPEC.READ? text commands, 16-bit ADC."""

    MAX_LINE = 256
    baud_sensitive = False  # Teensy native USB

    def __init__(self, instrument: Instrument, scene: Scene, seed: int = 0):
        super().__init__(instrument, scene, seed)
        self.buffer = bytearray()
        self.integration = 0.01

    def receive(self, data: bytes, now: float) -> None:
        for b in data:
            if b == 0x0A:
                self._line(bytes(self.buffer).decode("ascii", errors="replace").strip())
                self.buffer.clear()
            elif len(self.buffer) < self.MAX_LINE:
                self.buffer.append(b)

    def _line(self, text: str) -> None:
        if not text:
            return
        name, *args = text.split()
        if name == "SPEC.INTEG":
            try:
                if len(args) != 1:
                    raise ValueError
                self.integration = max(float(args[0]), 0.0)
            except ValueError:
                self.line.emit(b"### Error: SPEC.INTEG requires 1 argument 'time' (s)\n")
        elif name == "SPEC.READ?":
            counts = np.rint(self.exposure(self.integration, 1)).astype(np.int64)
            self.line.emit(microspec.format_spectrum(counts), delay=self.integration)
            self.scene.advance()  # no laser line: each acquisition is the next sample
        elif name == "SPEC.TIMING?":
            self.line.emit((",".join(str(10 * i) for i in range(10)) + "\n").encode())
        else:
            self.line.emit(f"### Error: command '{name}' not recognized ###\n".encode())


def c12880_instrument(laser_nm: float = 532.0) -> Instrument:
    return Instrument(microspec.EXAMPLE_COEFFICIENTS, microspec.CHANNELS, laser_nm, max_count=65535,
                      dark_level=800.0, dark_rate=500.0, gain=60000.0, electrons_per_count=2.0, read_noise=20.0,
                      resolution_pixels=8.0)  # 15 nm at ~1.8 nm per pixel


class GroupGetsDevice(SimulatedDevice):
    """The GroupGets C12880MA example sketch on an Arduino Uno: a free-running stream of CSV lines
    ``v0,...,v287,\\n`` (10-bit values, trailing comma), about every 10 ms plus the line's transfer time.
    It takes no commands; the integration time is fixed by the sketch's clocking.
    """

    INTEGRATION = 0.0001  # ST high for 15 clocks + 48: well under a millisecond
    PERIOD = 0.010

    def __init__(self, instrument: Instrument, scene: Scene, seed: int = 0):
        super().__init__(instrument, scene, seed)
        self._due = 0.0

    def receive(self, data: bytes, now: float) -> None:
        pass  # the sketch reads nothing

    def next_event(self):
        return self._due

    def poll(self, now: float) -> None:
        if now < self._due or self.line.pending() > 2:  # a host that does not read loses lines
            return
        counts = np.rint(self.exposure(self.INTEGRATION, 1)).astype(np.int64)
        line = microspec.format_spectrum(counts, trailing_comma=True)
        self.line.emit(line)
        self.scene.advance()
        self._due = now + (self.PERIOD + len(line) * 10 / self.baud if self.line.paced else 0.0)


def c12880_uno_instrument(laser_nm: float = 532.0) -> Instrument:
    """The C12880MA read by an Uno's 10-bit ADC."""
    return Instrument(microspec.EXAMPLE_COEFFICIENTS, microspec.CHANNELS, laser_nm, max_count=1023,
                      dark_level=60.0, dark_rate=0.0, gain=4.0e6, electrons_per_count=20.0, read_noise=1.5,
                      resolution_pixels=8.0)
