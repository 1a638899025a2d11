"""Device benchmark: latency, throughput, cold start, memory and FLOP of the classification path.

Run with ``make bench`` (or ``.venv/bin/python benchmarks/bench_device.py [--quick]``). Prints
Markdown tables. Every speed is reported beside a baseline measured in the same run: a
straightforward NumPy/SciPy implementation of the same pipeline (np.interp, np.percentile,
np.gradient, scipy.stats, scipy.signal.find_peaks).
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from device.bundle import ModelBundle, load_bundle  # noqa: E402
from device.classifier import Classifier  # noqa: E402
from device.cost import flop_count  # noqa: E402
from device.features import FEATURE_NAMES  # noqa: E402
from device.inputs import Standardizer  # noqa: E402
from device.network import Dense, forward  # noqa: E402
from device.readers import read_spectra  # noqa: E402
from device.spectrum import Axis  # noqa: E402

MODEL = ROOT / "models" / "sers-pesticides"
DATASET = ROOT.parent / "shared" / "datasets" / "sersformer_pesticides" / "sersformer_pesticides.npz"


def naive_probabilities(shift, intensity, bundle) -> np.ndarray:
    """The baseline: the same pipeline written the straightforward way."""
    import scipy.signal
    import scipy.stats

    x = bundle.axis.values
    y = np.interp(x, shift, intensity)
    mu, sd = y.mean(), y.std()
    q1, q3 = np.percentile(y, [25, 75])
    g = np.gradient(y, bundle.axis.step)
    peaks, _ = scipy.signal.find_peaks(y, prominence=bundle.prominence * np.ptp(y))
    f = [mu, sd, np.linalg.norm(y), np.sum(y ** 2), sd ** 2, 1 / sd ** 2, scipy.stats.kurtosis(y, fisher=False),
         scipy.stats.skew(y), np.mean(y ** 2), np.mean(np.abs(y - mu)), y.max(), y.min(), np.ptp(y), q3 - q1,
         abs(y.max() - mu), abs(y.min() - mu), sd / mu, len(peaks),
         np.mean(np.diff(x[peaks])) if len(peaks) > 1 else 0.0, x[np.argmax(y)], g.max(), g.std()]
    z = (np.concatenate([y, f]) - bundle.standardizer.mean) / bundle.standardizer.scale
    return forward(z[None], bundle.layers, bundle.leaky_slope)


def timings(fn, repeat: int) -> np.ndarray:
    for _ in range(min(50, repeat)):
        fn()
    out = np.empty(repeat)
    for i in range(repeat):
        t = time.perf_counter_ns()
        fn()
        out[i] = time.perf_counter_ns() - t
    return out / 1e3  # microseconds


def paper_axis_bundle(bundle: ModelBundle) -> ModelBundle:
    """A bundle of the compact network's shape on the published 2721-point axis (random weights: the
    cost of the path does not depend on their values)."""
    axis = Axis(510, 1990, 2721)
    rng = np.random.default_rng(0)
    width = axis.points + len(FEATURE_NAMES)
    C = len(bundle.class_names)
    layers = (Dense(rng.normal(0, 0.05, (width, 5)), rng.normal(0, 0.1, 5), "leaky_relu"),
              Dense(rng.normal(0, 0.5, (5, C)), rng.normal(0, 0.1, C), "softmax"))
    return ModelBundle(path=bundle.path, card={}, name="paper-axis", model_id="paper-axis", class_names=bundle.class_names,
                       axis=axis, prominence=bundle.prominence,
                       standardizer=Standardizer(rng.normal(0, 1, width), rng.uniform(0.5, 2, width)),
                       layers=layers, leaky_slope=0.3)


def latency_rows(bundle, spectra, repeat, tflite_bytes=None):
    from device.backends import TFLiteBackend

    rows = []
    clf = Classifier(bundle, "numpy")
    naive = timings(lambda: naive_probabilities(spectra[0].shift, spectra[0].intensity, bundle), repeat)
    fast = timings(lambda: clf.probabilities(spectra[:1]), repeat)
    tfl = Classifier(bundle, "numpy")
    tfl.backend = TFLiteBackend(tflite_bytes, bundle.input_size) if tflite_bytes else TFLiteBackend.from_bundle(bundle)
    lite = timings(lambda: tfl.probabilities(spectra[:1]), repeat)
    base = np.median(naive)
    for name, t in (("straightforward NumPy/SciPy (baseline)", naive), ("raman-edge, NumPy backend", fast),
                    ("raman-edge, TFLite backend", lite)):
        rows.append((name, np.median(t), np.percentile(t, 99), base / np.median(t)))
    return rows


def throughput(bundle, X, backend, tflite_bytes=None, batch=1024) -> float:
    from device.backends import TFLiteBackend

    clf = Classifier(bundle, "numpy")
    if backend == "tflite":
        clf.backend = TFLiteBackend(tflite_bytes, bundle.input_size) if tflite_bytes else TFLiteBackend.from_bundle(bundle)
    clf.probabilities_on_axis(X[:batch])
    t = time.perf_counter()
    for i in range(0, len(X), batch):
        clf.probabilities_on_axis(X[i:i + batch])
    return len(X) / (time.perf_counter() - t)


def cold_start(bundle, file, runs) -> tuple[float, float]:
    exe = Path(sys.executable).parent / "raman-device"
    walls, rss = [], []
    for _ in range(runs):
        t = time.perf_counter()
        p = subprocess.Popen([str(exe), "classify", "--model", str(bundle.path), str(file)], stdout=subprocess.DEVNULL)
        _, status, usage = os.wait4(p.pid, 0)
        walls.append(time.perf_counter() - t)
        rss.append(usage.ru_maxrss / 1024)  # kB -> MB on Linux
        assert status == 0
    return float(np.median(walls)), float(np.max(rss))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="fewer repetitions (a smoke run)")
    args = ap.parse_args()
    repeat, runs = (300, 3) if args.quick else (3000, 10)
    bundle = load_bundle(MODEL)
    spectra = [read_spectra(p)[0] for p, _ in bundle.examples]
    paper = paper_axis_bundle(bundle)
    from trainer.export import tflite_bytes

    paper_tflite = tflite_bytes(paper.layers, paper.leaky_slope, paper.input_size)

    print(f"machine: {os.cpu_count()} cores, Python {sys.version.split()[0]}, NumPy {np.__version__}\n")
    print("## One spectrum: resample + 22 features + standardise + network (microseconds)\n")
    print("| model axis | path | median | p99 | speed-up vs baseline |\n|---|---|---|---|---|")
    for label, b, tb in ((f"shipped, {bundle.axis.points} points", bundle, None),
                         (f"published, {paper.axis.points} points", paper, paper_tflite)):
        for name, med, p99, ratio in latency_rows(b, spectra, repeat, tb):
            print(f"| {label} | {name} | {med:.0f} | {p99:.0f} | {ratio:.1f}x |")
    print(f"\n(input: a real instrument spectrum of {spectra[0].shift.size} points, resampled on the fly)\n")

    if DATASET.exists():
        with np.load(DATASET, allow_pickle=False) as z:
            X = z["X"].astype(np.float64)
        print("## Batch throughput on the model axis (spectra per second, batches of 1024)\n")
        print("| model axis | NumPy backend | TFLite backend |\n|---|---|---|")
        print(f"| shipped, {bundle.axis.points} points (all {len(X)} real spectra) | "
              f"{throughput(bundle, X, 'numpy'):,.0f} | {throughput(bundle, X, 'tflite'):,.0f} |")
        Xp = np.stack([np.interp(paper.axis.values, np.arange(501.0, 2000.0), x) for x in X])
        print(f"| published, {paper.axis.points} points (same spectra, resampled) | "
              f"{throughput(paper, Xp, 'numpy'):,.0f} | {throughput(paper, Xp, 'tflite', paper_tflite):,.0f} |\n")

    wall, rss = cold_start(bundle, bundle.examples[0][0], runs)
    print("## Cold start of `raman-device classify` on one file (new process, NumPy backend)\n")
    print(f"| median wall time | peak RSS |\n|---|---|\n| {wall * 1000:.0f} ms | {rss:.0f} MB |\n")
    print("## Analytic FLOP per spectrum\n\n| model axis | resample | features | standardise | network | total |")
    print("|---|---|---|---|---|---|")
    for label, b in ((f"shipped, {bundle.axis.points} points", bundle), (f"published, {paper.axis.points} points", paper)):
        f = flop_count(b.axis, b.layers)
        print(f"| {label} | {f['resample']:,} | {f['features']:,} | {f['standardise']:,} | {f['network']:,} | "
              f"{f['total']:,} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
