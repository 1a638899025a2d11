"""Adaptive acquisition: scans of one sample until its verdict is certain, the time is up, or the sample drifts.

:func:`firmware_bridge.measure.accumulate` scans with the laser on; after each scan, :class:`AdaptiveStop`
classifies the running mean and says whether to stop, and why (:data:`STOP_REASONS`):

- ``certain``: the model's calibrated rule holds (:mod:`device.inference.stopping`) and ``min_time_s`` is
  reached;
- ``max_time``: ``max_time_s`` is reached with a classifiable spectrum but no certain verdict (the verdict as it
  stands is reported: uncertain, unknown or a class);
- ``too_weak``: ``max_time_s`` is reached and the running mean is still too weak (or flat);
- ``saturated``: a scan reached the detector's full scale (more scans cannot mend it);
- ``drift``: the sample changed from scan to scan (:mod:`device.inference.drift`); its mean is never
  classified.

Times count integration: a scan lasts ``integration_s x averages``, so ``min_time_s`` and ``max_time_s`` set
the fewest and most scans. Where the driver sets the integration time, a *quick look* at
``1 / QUICK_LOOK`` of it comes first: a sample certain from so few photons is done in a fraction of one
scan; otherwise its verdict stays the first of the running means the rule looks back on, and the scans
proper start afresh. A model whose card holds no calibrated rule never stops early: it scans for
``max_time_s``, which is the fixed-length measurement.

Every running mean the rule sees, the quick look's included, has passed the quality check (at least the
configured SNR): the rule was calibrated on running means of held-out spectra over single-scan SNRs
2-32 (:mod:`trainer.evaluation.stopping`), so a short, good-enough look is within what it was chosen on.
"""
from __future__ import annotations

import math
import time

import numpy as np

from device.inference.drift import drift
from device.inference.quality import problems as quality_problems
from device.inference.spectrum import Spectrum
from device.inference.stopping import StopRule
from firmware_bridge.integrity import is_saturated

#: Why an adaptive measurement stopped (module docstring).
STOP_REASONS = ("certain", "max_time", "too_weak", "saturated", "drift")
#: The quick look integrates for this fraction (1 / QUICK_LOOK) of a scan's integration time.
QUICK_LOOK = 8


def scan_limits(scan_s: float, min_time_s: float, max_time_s: float) -> tuple[int, int]:
    """Fewest and most scans of ``scan_s`` seconds each for ``min_time_s`` to ``max_time_s`` (at least one)."""
    most = max(1, math.floor(max_time_s / scan_s + 1e-9))
    return min(most, max(1, math.ceil(min_time_s / scan_s - 1e-9))), most


class AdaptiveStop:
    """The ``enough`` of :func:`~firmware_bridge.measure.accumulate` for a model's verdict.

    Parameters
    ----------
    classifier : Classifier
        The model, with its unknown-sample detector.
    rule : StopRule or None
        The bundle's calibrated rule; None: never stop early.
    to_measurement : callable
        ``to_measurement(signal, raw, meta)`` -> the calibrated :class:`~firmware_bridge.calibration.Measurement`
        of a mean dark-subtracted signal (pixel order).
    scan_s : float
        Integration time of one scan (integration time x averages), s.
    min_time_s, max_time_s : float
        Least and most integration time in all, s.
    min_snr : float
        Least measured SNR of a spectrum to classify (:func:`device.inference.quality.problems`).
    quick_look_s : float, optional
        Light-collecting time of the quick look that comes first (integration time x averages), s; None: none.
    """

    def __init__(self, classifier, rule: StopRule | None, to_measurement, scan_s: float, min_time_s: float,
                 max_time_s: float, min_snr: float, quick_look_s: float | None = None):
        self.classifier, self.rule, self.to_measurement, self.min_snr = classifier, rule, to_measurement, min_snr
        self.scan_s = scan_s
        self.quick_look_s = quick_look_s
        self.quick_look_stopped = False
        self._min_time_s = min_time_s
        self.min_scans, self.max_scans = scan_limits(scan_s, min_time_s, max_time_s)
        self.labels: list[int] = []
        self.confidences: list[float] = []
        self.usable: list[bool] = []
        self.reason: str | None = None
        self.scans = 0
        self.drift = None
        self._started = time.monotonic()
        self.duration_s = 0.0

    def __call__(self, signals: np.ndarray, raw: np.ndarray, meta: dict) -> bool:
        """Whether to stop after the scans so far (``signals`` and ``raw`` of shape (scans, pixels))."""
        quick = self.quick_look_s is not None and not self.labels  # the first call is the quick look
        n = len(signals)
        self.scans = 0 if quick else n
        self.duration_s = time.monotonic() - self._started
        if is_saturated(raw[-1], meta.get("full_scale"), bool(meta.get("inverted"))):
            return self._stop("saturated")
        self.drift = drift(signals)
        if self.drift is not None and self.drift.drifted:
            return self._stop("drift")
        m = self.to_measurement(signals.mean(axis=0), raw.mean(axis=0), meta)
        weak = quality_problems(m.intensity, None, m.meta, self.min_snr)
        if weak:
            label, confidence, usable = -1, 0.0, False
        else:
            p = self.classifier.classify(Spectrum.from_measurement(m))
            label, confidence, usable = self.classifier.bundle.class_names.index(p.label), p.confidence, not p.unknown
        self.labels.append(label)
        self.confidences.append(confidence)
        self.usable.append(usable)
        enough_time = self._min_time_s <= self.quick_look_s if quick else n >= self.min_scans
        if self.rule is not None and enough_time and self.rule.certain(self.labels, self.confidences,
                                                                       self.usable)[-1]:
            self.quick_look_stopped = quick
            return self._stop("certain")
        if quick:
            return False
        if n >= self.max_scans:
            return self._stop("too_weak" if weak else "max_time")
        return False

    def _stop(self, reason: str) -> bool:
        self.reason = reason
        return True

    def to_json(self) -> dict:
        """What the record keeps of the run: scans, times, why it stopped, the rule and the drift check."""
        quick_s = self.quick_look_s or 0.0
        return {"stop": "adaptive", "scans": self.scans, "scan_s": self.scan_s,
                "quick_look": None if self.quick_look_s is None else {"scan_s": self.quick_look_s,
                                                                       "stopped": self.quick_look_stopped},
                "integration_total_s": round(quick_s + self.scan_s * self.scans, 6),
                "duration_s": round(self.duration_s, 4), "stop_reason": self.reason,
                "rule": None if self.rule is None else self.rule.to_json(),
                "min_scans": self.min_scans, "max_scans": self.max_scans,
                "drift": None if self.drift is None else self.drift.to_json()}
