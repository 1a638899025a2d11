"""When an accumulating measurement may stop: the sequential rule of adaptive acquisition.

Adaptive acquisition (:mod:`device.service.acquisition`) classifies the running mean of its scans after each
one. The verdict is *certain* after scan ``t`` when the running means after scans ``t - k + 1 .. t`` (the last
``k = stable_scans``) were each good enough to classify (not too weak, not unknown), each gave the same class,
and each with a confidence of at least ``min_confidence``. The rule's two numbers are chosen when the model is
trained (:mod:`trainer.evaluation.stopping`), from its own held-out spectra, so that stopping when certain
makes no more errors than measuring for the full time; the bundle's card keeps them (``acquisition``).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

#: Scans of a full-length measurement: the rule is calibrated on accumulations of this many, and an
#: auto-exposed adaptive measurement splits its maximum time into at least this many scans.
FULL_SCANS = 16


@dataclass(frozen=True)
class StopRule:
    """Stop when the last ``stable_scans`` running means agree on a class, each with ``min_confidence``."""

    min_confidence: float
    stable_scans: int

    @classmethod
    def from_card(cls, card: dict) -> "StopRule | None":
        """The rule a model card's ``acquisition`` section calibrated, or None when it has none."""
        rule = (card.get("acquisition") or {}).get("rule")
        return None if rule is None else cls(float(rule["min_confidence"]), int(rule["stable_scans"]))

    def at_least(self, min_confidence: float) -> "StopRule":
        """The rule with its confidence raised to ``min_confidence`` where that is higher.

        A device that calls verdicts below its configured ``model.min_confidence`` uncertain stops only on a
        verdict it would give: the stricter rule, which stops no sooner and so errs no more often early.
        """
        return StopRule(max(self.min_confidence, min_confidence), self.stable_scans)

    def to_json(self) -> dict:
        """The rule as the card and the record keep it."""
        return {"min_confidence": self.min_confidence, "stable_scans": self.stable_scans}

    def certain(self, labels, confidences, usable) -> np.ndarray:
        """Whether the verdict is certain after each scan.

        Parameters
        ----------
        labels : array_like of int, shape (..., T)
            Class of the running mean after each of T scans.
        confidences : array_like of float, shape (..., T)
            Its probability.
        usable : array_like of bool, shape (..., T)
            Whether that running mean could be classified at all (good enough, and not unknown).

        Returns
        -------
        ndarray of bool, shape (..., T)
            True after scan ``t`` when the rule holds over scans ``t - stable_scans + 1 .. t``.
        """
        labels = np.asarray(labels)
        ok = np.asarray(usable, dtype=bool) & (np.asarray(confidences, dtype=np.float64) >= self.min_confidence)
        out = ok.copy()
        for lag in range(1, self.stable_scans):
            agrees = np.zeros_like(out)
            agrees[..., lag:] = ok[..., :-lag] & (labels[..., :-lag] == labels[..., lag:])
            out &= agrees
        return out
