"""Progress lines of a long training run: how far it is, the loss, the time so far and the time left."""
from __future__ import annotations

import time


class Progress:
    """Call with (units done, loss) after each epoch or round; logs about ``lines`` evenly spaced lines.

    Parameters
    ----------
    total : int
        Units of the whole run (epochs, optimizer steps).
    unit : str
        Their name, e.g. ``"epoch"``.
    log : callable
        Gets each line.
    lines : int
        Lines over the whole run (the last unit always gets one).
    """

    def __init__(self, total: int, unit: str, log, lines: int = 10):
        self.total, self.unit, self.log, self.lines = max(int(total), 1), unit, log, lines
        self.start = time.perf_counter()
        self.shown = 0

    def __call__(self, done: int, loss: float) -> None:
        """Report ``done`` units and the current ``loss``: a line with elapsed and remaining time (s) when due."""
        part = done * self.lines // self.total
        if part <= self.shown and done < self.total:
            return
        self.shown = part
        elapsed = time.perf_counter() - self.start
        left = elapsed / max(done, 1) * max(self.total - done, 0)
        self.log(f"  {self.unit} {done}/{self.total}: loss {loss:.4f}, {elapsed:.1f} s, ETA {left:.0f} s")
