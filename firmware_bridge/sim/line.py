"""A simulated serial line: a device state machine, its output paced at the baud rate, and the host side."""
from __future__ import annotations

import threading
import time
from collections import deque


class SimulatedLine:
    """Connects a host (a driver, through a serial port object) to a simulated device.

    Bytes the device emits become readable at ``baud / 10`` bytes per second after the device's
    processing delay, as on a real UART; with ``paced=False`` they are readable at once (unit tests).
    A host whose baud rate differs from a UART device's loses what it sends and reads nothing, as
    garbage at the wrong rate never forms a frame (native USB devices ignore the baud rate).
    """

    def __init__(self, device, paced: bool = True, faults=None):
        self.device = device
        self.paced = paced
        self.faults = faults
        self.gone_until = 0.0
        self.host_baud = device.baud
        self._chunks: deque = deque()  # [start time, seconds per byte, bytes, next index, baud sent at]
        self._end = 0.0
        self._cond = threading.Condition()
        self.closed = False
        device.attach(self)

    # -- device side -------------------------------------------------------------------
    def emit(self, data: bytes, delay: float = 0.0) -> None:
        """Queue device output, readable ``delay`` seconds from now and paced at the device's baud."""
        if not data:
            return
        if self.faults is not None:
            data, stalled = self.faults.damage(bytes(data))
            if stalled:
                return  # held back longer than any timeout: the reply never comes
        with self._cond:
            now = time.monotonic()
            per_byte = 10.0 / self.device.baud if self.paced else 0.0
            start = max(now + (delay if self.paced else 0.0), self._end)
            self._chunks.append([start, per_byte, bytes(data), 0, self.device.baud])
            self._end = start + per_byte * len(data)
            self._cond.notify_all()

    def pending(self) -> int:
        """Replies emitted and not yet wholly read."""
        return len(self._chunks)

    def discard_output(self) -> None:
        """Drop everything not yet read (device reset)."""
        with self._cond:
            self._chunks.clear()
            self._end = time.monotonic()

    # -- host side -----------------------------------------------------------------------
    def _in_step(self, baud: int) -> bool:
        """Whether the host, at its baud rate, receives what was sent at ``baud``."""
        return not self.device.baud_sensitive or self.host_baud == baud

    def vanish(self, seconds: float) -> None:
        """The port disappears (cable pulled, USB reset) and comes back ``seconds`` later."""
        with self._cond:
            self.gone_until = time.monotonic() + seconds
            self.discard_output()

    def gone(self) -> bool:
        """True while the port is away (:meth:`vanish`)."""
        return time.monotonic() < self.gone_until

    def write(self, data: bytes) -> None:
        """Bytes from the host: to the device, unless the port is away or the baud rates differ."""
        with self._cond:
            if self.faults is not None and self.faults.device_faults and self.faults.roll("port vanished", 0.1):
                self.vanish(0.2 if self.paced else 0.05)
            if self.gone():
                return
            if self._in_step(self.device.baud):
                self.device.receive(bytes(data), time.monotonic())
            self._cond.notify_all()

    @staticmethod
    def _arrived(chunk, now: float) -> int:
        """How many bytes of a queued reply have arrived at the host by ``now``."""
        start, per_byte, data = chunk[:3]
        if per_byte == 0:
            return len(data)
        return min(len(data), int((now - start) / per_byte) + 1) if now >= start else 0

    def _take(self, size: int, now: float) -> bytes:
        """Up to ``size`` bytes arrived by ``now``; what arrived at another baud rate is lost."""
        out = bytearray()
        while self._chunks and len(out) < size:
            chunk = self._chunks[0]
            data, i, in_step = chunk[2], chunk[3], self._in_step(chunk[4])
            n = self._arrived(chunk, now) - i
            if in_step:
                n = min(n, size - len(out))
            if n <= 0:
                break
            if in_step:
                out += data[i:i + n]
            chunk[3] = i + n
            if chunk[3] == len(data):
                self._chunks.popleft()
        return bytes(out)

    def _next_ready(self) -> float | None:
        if not self._chunks:
            return None
        start, per_byte, _, i, _ = self._chunks[0]
        return start + per_byte * i

    def read(self, size: int, timeout: float | None) -> bytes:
        """Up to ``size`` bytes, waiting at most ``timeout`` seconds (None: until ``size`` arrive)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        out = bytearray()
        with self._cond:
            while len(out) < size and not self.closed:
                now = time.monotonic()
                self.device.poll(now)
                out += self._take(size - len(out), now)
                if len(out) >= size or (deadline is not None and now >= deadline):
                    break
                ready = self._next_ready()
                waits = [t - now for t in (ready, deadline, self.device.next_event()) if t is not None]
                self._cond.wait(max(0.0, min(waits)) if waits else None)
        return bytes(out)

    def waiting(self) -> int:
        """Bytes readable now."""
        with self._cond:
            now = time.monotonic()
            self.device.poll(now)
            count = 0
            for chunk in self._chunks:
                ready = self._arrived(chunk, now)
                if self._in_step(chunk[4]):
                    count += max(0, ready - chunk[3])
                if ready < len(chunk[2]):
                    break
            return count

    def drain(self) -> None:
        """Discard what the host could read now."""
        with self._cond:
            self._take(1 << 30, time.monotonic())

    def close(self) -> None:
        """Close the host side: waiting reads return."""
        with self._cond:
            self.closed = True
            self._cond.notify_all()
