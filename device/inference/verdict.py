"""The verdict on one spectrum: its most probable class, ``uncertain`` or ``unknown``.

One rule, reported by the measurement service (:mod:`device.service.measurement`) and scored by the
leave-one-class-out evaluation (:mod:`trainer.evaluation.ood`):

* ``unknown`` when the unknown-sample score (:mod:`device.inference.ood`) is above the detector's threshold:
  the spectrum is unlike every trained class, whatever its class probabilities;
* else ``uncertain`` when the probability of the most probable class is below the least confidence;
* else that class.
"""
from __future__ import annotations

import numpy as np

#: The verdict on a spectrum unlike every trained class.
UNKNOWN = "unknown"
#: The verdict on a spectrum whose most probable class is below the least confidence.
UNCERTAIN = "uncertain"


def is_unknown(scores, threshold: float):
    """Whether unknown-sample ``scores`` (float or ndarray (n,)) are above the detector's ``threshold``.

    Returns
    -------
    bool or ndarray of bool, shape (n,)
    """
    above = np.asarray(scores) > threshold
    return bool(above) if above.ndim == 0 else above


def verdict(label, confidence: float, unknown: bool, min_confidence: float):
    """The verdict on one spectrum.

    Parameters
    ----------
    label : str or int
        The most probable class (its name, or its index).
    confidence : float
        Its probability, 0-1.
    unknown : bool
        The spectrum's unknown-sample score is above the threshold (:func:`is_unknown`).
    min_confidence : float
        Least probability for a class verdict, 0-1.

    Returns
    -------
    str or int
        :data:`UNKNOWN`, :data:`UNCERTAIN`, or ``label``.
    """
    if unknown:
        return UNKNOWN
    return label if confidence >= min_confidence else UNCERTAIN
