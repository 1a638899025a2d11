"""The benchmark's baseline computes the same thing as the fast path, so its ratios are fair."""
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
BENCHMARKS = ROOT / "benchmarks"
sys.path.insert(0, str(BENCHMARKS))

from bench_device import naive_probabilities  # noqa: E402

from device.inference.classifier import Classifier  # noqa: E402
from device.inference.readers import read_spectra  # noqa: E402


def test_baseline_matches_fast_path(shipped_bundle):
    clf = Classifier(shipped_bundle)
    for path, _ in shipped_bundle.examples:
        s = read_spectra(path)[0]
        np.testing.assert_allclose(naive_probabilities(s.shift, s.intensity, shipped_bundle),
                                   clf.probabilities([s]), rtol=1e-9, atol=1e-12)


@pytest.mark.slow
@pytest.mark.parametrize("script", sorted(p.name for p in BENCHMARKS.glob("bench_*.py")))
def test_every_benchmark_imports_what_it_uses_and_answers_help(script):
    """A benchmark is run by hand, rarely: its imports must still resolve after the code it measures moves."""
    r = subprocess.run([sys.executable, str(BENCHMARKS / script), "--help"], capture_output=True, text=True,
                       timeout=120, cwd=ROOT)
    assert r.returncode == 0 and "usage:" in r.stdout, r.stderr[-2000:]
