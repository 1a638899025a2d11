"""The classifier: spectrum in, verdict out, through resampling, preprocessing, features and a backend."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from device.errors import BundleError, ResolutionError
from device.inference.backends import make_backend
from device.inference.bundle import ModelBundle
from device.inference.resample import ResamplerCache
from device.inference.resolution import broaden, harmonising_fwhm, resolution_problem
from device.inference.spectrum import Spectrum
from device.inference.verdict import UNKNOWN, is_unknown


@dataclass(frozen=True)
class Prediction:
    """The verdict on one spectrum.

    Attributes
    ----------
    label : str
        The most probable class.
    confidence : float
        Its probability, 0-1.
    probabilities : dict of str to float
        Probability of every class, in the model's class order.
    model_id : str
    ood_score : float or None
        The bundle's out-of-distribution score (None when the bundle has no detector).
    unknown : bool
        The score is above the detector's threshold: the spectrum is unlike every trained class.
    """

    label: str
    confidence: float
    probabilities: dict
    model_id: str
    ood_score: float | None = None
    unknown: bool = False

    def reported(self) -> dict:
        """``label`` and ``confidence`` as output reports them (rounded to 6 digits).

        For an unknown spectrum the label is ``unknown`` with no confidence, and the most probable
        class is ``nearest``.
        """
        if self.unknown:
            return {"label": UNKNOWN, "confidence": None, "nearest": self.label}
        return {"label": self.label, "confidence": round(self.confidence, 6)}


class Classifier:
    """Classify spectra with a model bundle on the NumPy or the TFLite backend.

    Parameters
    ----------
    bundle : ModelBundle
    backend : str or backend object
        ``"numpy"`` (default, needs nothing but NumPy), ``"tflite"``, or an object with a
        ``probabilities(Z)`` method such as :class:`~device.inference.backends.TFLiteBackend`.
    resolution_cm1 : float, optional
        The resolution (FWHM, cm-1) of the instrument that recorded the spectra. When the bundle states one
        (:attr:`~device.inference.bundle.ModelBundle.resolution_cm1`), spectra are broadened to it
        (:mod:`device.inference.resolution`); None: they are taken to be at the model's resolution already.

    Raises
    ------
    ResolutionError
        If the instrument is coarser than the model's resolution.
    """

    def __init__(self, bundle: ModelBundle, backend: str = "numpy", resolution_cm1: float | None = None):
        self.bundle = bundle
        self.backend = make_backend(bundle, backend) if isinstance(backend, str) else backend
        self._resamplers = ResamplerCache(bundle.axis)
        #: Gaussian FWHM (cm-1) every spectrum is broadened by on the model axis; 0: none.
        self.broadening_cm1 = 0.0
        if resolution_cm1 is not None and bundle.resolution_cm1 is not None:
            problem = resolution_problem(resolution_cm1, bundle.resolution_cm1)
            if problem:
                raise ResolutionError(f"model bundle {bundle.path}: {problem}.")
            self.broadening_cm1 = harmonising_fwhm(resolution_cm1, bundle.resolution_cm1)

    def harmonise(self, Y: np.ndarray) -> np.ndarray:
        """Spectra ``Y`` (n, points) on the model axis brought to the model's resolution: (n, points)."""
        return broaden(Y, self.bundle.axis.values, self.broadening_cm1) if self.broadening_cm1 > 0 else Y

    def on_axis(self, spectra: Sequence[Spectrum]) -> np.ndarray:
        """Resample spectra onto the model axis and bring them to its resolution: shape (n, points).

        Raises
        ------
        AxisCoverageError
            If a spectrum does not cover the model axis.
        """
        return self.harmonise(np.stack([self._resamplers.get(s.shift)(s.intensity) for s in spectra]))

    def probabilities_on_axis(self, Y: np.ndarray) -> np.ndarray:
        """Class probabilities (n, C) for intensities ``Y`` (n, points) already on the model axis (and harmonised)."""
        return self.backend.probabilities(self.bundle.inputs(Y))

    def probabilities(self, spectra: Sequence[Spectrum]) -> np.ndarray:
        """Class probabilities (n, C) for spectra on any axis that covers the model's."""
        return self.probabilities_on_axis(self.on_axis(spectra))

    def classify(self, spectrum: Spectrum) -> Prediction:
        """The verdict on one spectrum."""
        return self.classify_many([spectrum])[0]

    def classify_many(self, spectra: Sequence[Spectrum]) -> list[Prediction]:
        """Verdicts on several spectra, computed as one batch (with the out-of-distribution score if any)."""
        Y = self.on_axis(spectra)
        P = self.probabilities_on_axis(Y)
        if not np.isfinite(P).all():  # finite but absurd weights overflow: never report a NaN verdict
            raise BundleError(f"model bundle {self.bundle.path}: its network gives non-finite probabilities; "
                              "its weights are unusable, re-export the bundle.")
        ood = self.bundle.ood
        scores = ood.scores(Y) if ood is not None else [None] * len(P)
        names = self.bundle.class_names
        out = []
        for p, score in zip(P, scores):
            k = int(np.argmax(p))
            out.append(Prediction(names[k], float(p[k]), {c: float(v) for c, v in zip(names, p)}, self.bundle.model_id,
                                  None if score is None else float(score),
                                  score is not None and is_unknown(score, ood.threshold)))
        return out
