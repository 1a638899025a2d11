"""The benchmark's baseline computes the same thing as the fast path, so its ratios are fair."""
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

from bench_device import naive_probabilities  # noqa: E402

from device.classifier import Classifier  # noqa: E402
from device.readers import read_spectra  # noqa: E402


def test_baseline_matches_fast_path(shipped_bundle):
    clf = Classifier(shipped_bundle)
    for path, _ in shipped_bundle.examples:
        s = read_spectra(path)[0]
        np.testing.assert_allclose(naive_probabilities(s.shift, s.intensity, shipped_bundle),
                                   clf.probabilities([s]), rtol=1e-9, atol=1e-12)
