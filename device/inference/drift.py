"""Scan-to-scan consistency: whether a sample changed while its scans were accumulated.

A sample that burns, bleaches or moves under the laser changes from scan to scan; their mean is then no
spectrum of the sample, and adaptive acquisition (:mod:`device.service.acquisition`) reports the drift instead
of a verdict. The check compares the mean of the first half of the scans, ``A``, with that of the last half,
``B``, after scaling ``A`` to ``B`` by least squares (a change of laser power or focus alone changes the
intensity, not the spectrum)::

    d = B - a A,   a = <A, B> / <A, A>
    statistic = |d|^2 / (N v (2 / h)),    change = |d| / |B|

with ``h`` scans in each half, ``N`` points, and ``v`` the noise variance of one scan, from successive
differences of scans (``mean((s[i+1] - s[i])^2) / 2``). Without drift the statistic is about 1 (noise only);
a sample drifted when the statistic exceeds :data:`DRIFT_STATISTIC` (the change is beyond noise) and the change
exceeds :data:`DRIFT_CHANGE` (it is large enough to matter).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

#: Fewest scans the check needs (two in each half).
MIN_SCANS = 4
#: Least statistic of a drift: the halves differ by this many times what noise gives.
DRIFT_STATISTIC = 4.0
#: Least relative change of a drift, |d| / |B|.
DRIFT_CHANGE = 0.05


@dataclass(frozen=True)
class Drift:
    """The outcome of the check on a sequence of scans.

    Attributes
    ----------
    statistic : float
        Squared difference of the halves over what noise gives (about 1 without drift).
    change : float
        Relative size of the difference, |d| / |B|.
    drifted : bool
    """

    statistic: float
    change: float
    drifted: bool

    def to_json(self) -> dict:
        """The check as the record keeps it."""
        return {"statistic": round(self.statistic, 2), "change": round(self.change, 4), "drifted": self.drifted}

    def reason(self) -> str:
        """What a drifted sample's rejection says."""
        return (f"the sample changed during accumulation ({100 * self.change:.0f} % between the first and the last "
                f"scans, {self.statistic:.0f} times what noise gives): it may be burning, bleaching or moving; "
                "lower the laser power or measure a fresh spot")


def drift(scans) -> Drift | None:
    """Check scans of one sample for drift (module docstring); None for fewer than :data:`MIN_SCANS`.

    Parameters
    ----------
    scans : array_like, shape (n, N)
        Dark-subtracted scans in the order they were taken, one integration time.
    """
    s = np.asarray(scans, dtype=np.float64)
    n = s.shape[0]
    if n < MIN_SCANS:
        return None
    h = n // 2
    a_mean, b_mean = s[:h].mean(axis=0), s[-h:].mean(axis=0)
    scale = float(a_mean @ b_mean) / max(float(a_mean @ a_mean), 1e-300)
    d = b_mean - scale * a_mean
    v = float(np.mean(np.diff(s, axis=0) ** 2)) / 2.0
    expected = s.shape[1] * v * 2.0 / h
    statistic = float(d @ d) / expected if expected > 0 else (np.inf if d.any() else 0.0)
    change = float(np.linalg.norm(d) / max(np.linalg.norm(b_mean), 1e-300))
    return Drift(statistic, change, statistic > DRIFT_STATISTIC and change > DRIFT_CHANGE)
