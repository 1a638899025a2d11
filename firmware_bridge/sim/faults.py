"""Seeded fault injection on a simulated line: what a noisy cable, a flaky device or a loose plug do."""
from __future__ import annotations

import numpy as np

LINE_FAULTS = ("drop", "duplicate", "corrupt", "truncate", "garbage", "stall")


class FaultInjector:
    """Decides, reproducibly, which device replies are damaged and how.

    Parameters
    ----------
    rate : float
        Probability that a reply (one emitted chunk) suffers a fault, 0-1.
    seed : int
    device_faults : bool
        Also inject the device's own faults (OBP: NACK, spontaneous reset) and the port vanishing.
    """

    def __init__(self, rate: float, seed: int = 0, device_faults: bool = True):
        if not 0 <= rate <= 1:
            raise ValueError(f"fault rate must be between 0 and 1, not {rate}")
        self.rate = rate
        self.rng = np.random.default_rng(seed)
        self.device_faults = device_faults
        self.counts: dict[str, int] = {}

    def _count(self, kind: str) -> None:
        self.counts[kind] = self.counts.get(kind, 0) + 1

    def roll(self, kind: str, scale: float = 1.0) -> bool:
        """True (and counted) with probability ``rate * scale``."""
        if self.rate and self.rng.random() < self.rate * scale:
            self._count(kind)
            return True
        return False

    def damage(self, data: bytes) -> tuple[bytes, bool]:
        """A reply as it reaches the host, and whether it stalls (never arrives in time)."""
        if not (self.rate and self.rng.random() < self.rate):
            return data, False
        kind = LINE_FAULTS[int(self.rng.integers(len(LINE_FAULTS)))]
        self._count(kind)
        b = bytearray(data)
        i = int(self.rng.integers(len(b)))
        if kind == "drop":
            del b[i]
        elif kind == "duplicate":
            b.insert(i, b[i])
        elif kind == "corrupt":
            b[i] ^= 1 << int(self.rng.integers(8))
        elif kind == "truncate":
            del b[i:]
        elif kind == "garbage":
            b[:0] = self.rng.integers(0, 256, int(self.rng.integers(1, 40))).astype(np.uint8).tobytes()
        return bytes(b), kind == "stall"
