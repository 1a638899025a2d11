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

from device.inference.bundle import ModelBundle, load_bundle  # noqa: E402
from device.inference.classifier import Classifier  # noqa: E402
from device.inference.cost import bundle_flop_count  # noqa: E402
from device.inference.features import FEATURE_NAMES  # noqa: E402
from device.inference.inputs import Standardizer  # noqa: E402
from device.inference.network import Dense, forward  # noqa: E402
from device.inference.preprocess import Chain  # noqa: E402
from device.inference.readers import read_spectra  # noqa: E402
from device.inference.spectrum import Axis  # noqa: E402

MODEL = ROOT / "models" / "sers-pesticides"
DATASET = ROOT.parent / "shared" / "datasets" / "sersformer_pesticides" / "sersformer_pesticides.npz"


def naive_probabilities(shift, intensity, bundle) -> np.ndarray:
    """The baseline: the same pipeline written the straightforward way."""
    import scipy.signal
    import scipy.stats

    x = bundle.axis.values
    y = np.interp(x, shift, intensity)
    for step in bundle.normalisation.split(","):
        name, *args = step.split(":")
        if name == "snv":
            y = (y - y.mean()) / y.std()
        elif name == "savgol":
            window, order, *deriv = (int(a) for a in args)
            y = scipy.signal.savgol_filter(y, window, order, deriv=deriv[0] if deriv else 0, delta=bundle.axis.step,
                                           mode="interp")
        elif name == "asls":
            from pybaselines.whittaker import asls

            y = y - asls(y, lam=float(args[0]), p=float(args[1]), max_iter=int(args[2]) if len(args) > 2 else 50,
                         tol=1e-3)[0]
        elif name != "none":
            raise ValueError(f"no baseline implementation of the preprocessing step {step!r}")
    if not bundle.features:
        z = y if bundle.standardizer is None else (y - bundle.standardizer.mean) / bundle.standardizer.scale
        return bundle.network.probabilities(z[None])
    mu, sd = y.mean(), y.std()
    q1, q3 = np.percentile(y, [25, 75])
    g = np.gradient(y, bundle.axis.step)
    peaks, _ = scipy.signal.find_peaks(y, prominence=bundle.prominence * np.ptp(y))
    f = [mu, sd, np.linalg.norm(y), np.sum(y ** 2), sd ** 2, 1 / sd ** 2, scipy.stats.kurtosis(y, fisher=False),
         scipy.stats.skew(y), np.mean(y ** 2), np.mean(np.abs(y - mu)), y.max(), y.min(), np.ptp(y), q3 - q1,
         abs(y.max() - mu), abs(y.min() - mu),
         sd / mu if abs(mu) > 1e-12 * np.abs(y).max() else 0.0,  # the documented zero-mean rule
         len(peaks),
         np.mean(np.diff(x[peaks])) if len(peaks) > 1 else 0.0, x[np.argmax(y)], g.max(), g.std()]
    z = (np.concatenate([y, f]) - bundle.standardizer.mean) / bundle.standardizer.scale
    return forward(z[None], bundle.layers, bundle.leaky_slope)


def interleaved(fns: dict, repeat: int, block: int = 50) -> dict:
    """Per-call times (microseconds) of each function, measured in alternating blocks.

    Alternating keeps every function under the same machine conditions, so their ratios hold even
    when the machine's speed drifts during the run.
    """
    for fn in fns.values():
        for _ in range(block):
            fn()
    out = {name: [] for name in fns}
    for _ in range(max(1, repeat // block)):
        for name, fn in fns.items():
            for _ in range(block):
                t = time.perf_counter_ns()
                fn()
                out[name].append(time.perf_counter_ns() - t)
    return {name: np.array(v) / 1e3 for name, v in out.items()}


def paper_axis_bundle(bundle: ModelBundle) -> ModelBundle:
    """A bundle of the compact network's shape on the published 2721-point axis, with random weights.

    The cost of the path does not depend on the weights' values.
    """
    axis = Axis(510, 1990, 2721)
    rng = np.random.default_rng(0)
    width = axis.points + len(FEATURE_NAMES)
    C = len(bundle.class_names)
    layers = (Dense(rng.normal(0, 0.05, (width, 5)), rng.normal(0, 0.1, 5), "leaky_relu"),
              Dense(rng.normal(0, 0.5, (5, C)), rng.normal(0, 0.1, C), "softmax"))
    return ModelBundle(path=bundle.path, card={}, name="paper-axis", model_id="paper-axis",
                       class_names=bundle.class_names, axis=axis, prominence=bundle.prominence,
                       standardizer=Standardizer(rng.normal(0, 1, width), rng.uniform(0.5, 2, width)),
                       layers=layers, leaky_slope=0.3, preprocess=bundle.preprocess)


def describe(bundle: ModelBundle) -> str:
    """The path of a bundle in words: its kind, chain, inputs and standardisation."""
    inputs = "intensities + 22 features" if bundle.features else "intensities"
    return (f"{bundle.kind} on {bundle.preprocess.text} ({inputs}"
            f"{', standardised' if bundle.standardizer is not None else ''}), {bundle.axis.points} points")


def latency_rows(bundle, spectrum, repeat, tflite_bytes=None):
    """(path, median us, p99 us, speed-up over the baseline) for one spectrum on each path."""
    from device.inference.backends import TFLiteBackend

    numpy_clf = Classifier(bundle, "numpy")
    tflite_clf = Classifier(bundle, TFLiteBackend(tflite_bytes, bundle.input_size) if tflite_bytes
                            else TFLiteBackend.from_bundle(bundle))
    t = interleaved({
        "straightforward NumPy/SciPy (baseline)":
            lambda: naive_probabilities(spectrum.shift, spectrum.intensity, bundle),
        "raman-edge, NumPy backend": lambda: numpy_clf.probabilities([spectrum]),
        "raman-edge, TFLite backend": lambda: tflite_clf.probabilities([spectrum]),
    }, repeat)
    base = np.median(t["straightforward NumPy/SciPy (baseline)"])
    return [(name, np.median(v), np.percentile(v, 99), base / np.median(v)) for name, v in t.items()]


def throughput(bundle, X, backend, tflite_bytes=None, batch=1024) -> float:
    from device.inference.backends import TFLiteBackend

    if backend == "tflite":
        clf = Classifier(bundle, TFLiteBackend(tflite_bytes, bundle.input_size) if tflite_bytes
                         else TFLiteBackend.from_bundle(bundle))
    else:
        clf = Classifier(bundle, "numpy")
    clf.probabilities_on_axis(X[:batch])
    t = time.perf_counter()
    for i in range(0, len(X), batch):
        clf.probabilities_on_axis(X[i:i + batch])
    return len(X) / (time.perf_counter() - t)


#: Runs a command from a minimal interpreter and prints its wall time and peak RSS: the child's
#: ru_maxrss counts the memory of the process it was forked from, so that must be small.
LAUNCHER = """
import os, sys, time
t = time.perf_counter()
pid = os.fork()
if pid == 0:
    os.dup2(os.open(os.devnull, os.O_WRONLY), 1)
    os.execv(sys.argv[1], sys.argv[1:])
_, status, usage = os.wait4(pid, 0)
print(time.perf_counter() - t, usage.ru_maxrss, status)
"""


def launch(argv: list) -> tuple[float, float]:
    """Wall time (s) and peak RSS (MB) of one run of ``argv`` (which must succeed)."""
    out = subprocess.run([sys.executable, "-S", "-c", LAUNCHER, *argv], capture_output=True, text=True, check=True)
    wall, rss, status = out.stdout.split()
    assert status == "0", f"{argv} failed"
    return float(wall), float(rss) / 1024


#: Preprocessing steps timed by :func:`preprocess_rows`.
STEPS = ("snv", "savgol:11:2:1", "asls:1e5:0.01")


def preprocess_rows(axis, X, runs) -> list:
    """(step, FLOP, ms per spectrum one at a time, ms per spectrum in a batch of 256) on real spectra ``X``."""
    rows = []
    batch = X[:256]
    for text in STEPS:
        chain = Chain.parse(text, axis.step, axis.points)
        t = time.perf_counter()
        for x in X[:runs]:
            chain.apply(x[None])
        single = (time.perf_counter() - t) / runs
        t = time.perf_counter()
        chain.apply(batch)
        rows.append((chain.text, chain.flop(axis.points), single * 1e3, (time.perf_counter() - t) / len(batch) * 1e3))
    return rows


def cold_start_rows(bundle, file, runs) -> list:
    """(what, median wall s, peak RSS MB) of a bare interpreter, one importing NumPy, and the CLI."""
    py = sys.executable
    exe = str(Path(py).parent / "raman-device")
    cases = {"python -c pass (floor)": [py, "-c", "pass"],
             "python -c 'import numpy' (baseline)": [py, "-c", "import numpy"],
             "raman-device classify, one file": [exe, "classify", "--model", str(bundle.path), str(file)]}
    results = {name: [] for name in cases}
    for _ in range(runs):
        for name, argv in cases.items():
            results[name].append(launch(argv))
    return [(name, float(np.median([w for w, _ in r])), float(max(m for _, m in r))) for name, r in results.items()]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="fewer repetitions (a smoke run)")
    args = ap.parse_args()
    repeat, runs = (300, 3) if args.quick else (2000, 10)
    bundle = load_bundle(MODEL)
    spectra = [read_spectra(p)[0] for p, _ in bundle.examples]
    paper = paper_axis_bundle(bundle)
    from trainer.export import tflite_bytes

    paper_tflite = tflite_bytes(paper.layers, paper.leaky_slope, paper.input_size)

    print(f"machine: {os.cpu_count()} cores, Python {sys.version.split()[0]}, NumPy {np.__version__}\n")
    print(f"shipped: {MODEL.name}, {describe(bundle)}; published: the compact network's shape, "
          f"{describe(paper)}\n")
    print("## One spectrum, the whole path: resample, preprocessing, inputs, network (microseconds)\n")
    print("| model axis | path | median | p99 | speed-up vs baseline |\n|---|---|---|---|---|")
    for label, b, tb in ((f"shipped, {bundle.axis.points} points", bundle, None),
                         (f"published, {paper.axis.points} points", paper, paper_tflite)):
        for name, med, p99, ratio in latency_rows(b, spectra[0], repeat, tb):
            print(f"| {label} | {name} | {med:.0f} | {p99:.0f} | {ratio:.1f}x |")
    print(f"\n(input: a real instrument spectrum of {spectra[0].shift.size} points, resampled on the fly)\n")

    if DATASET.exists():
        with np.load(DATASET, allow_pickle=False) as z:
            X = z["X"].astype(np.float64)
        print("## Batch throughput on the model axis (spectra per second, batches of 1024)\n")
        print("| model axis | straightforward, one at a time (baseline) | NumPy backend | TFLite backend |")
        print("|---|---|---|---|")
        for label, b, Xb, tb in ((f"shipped, {bundle.axis.points} points (all {len(X)} real spectra)", bundle, X, None),
                                 (f"published, {paper.axis.points} points (same spectra, resampled)", paper,
                                  np.stack([np.interp(paper.axis.values, np.arange(501.0, 2000.0), x) for x in X]),
                                  paper_tflite)):
            sub = Xb[:: max(1, len(Xb) // 500)]
            axis = b.axis.values
            t = time.perf_counter()
            for x in sub:
                naive_probabilities(axis, x, b)
            base = len(sub) / (time.perf_counter() - t)
            np_rate, tf_rate = throughput(b, Xb, "numpy"), throughput(b, Xb, "tflite", tb)
            print(f"| {label} | {base:,.0f} | {np_rate:,.0f} ({np_rate / base:.0f}x) | {tf_rate:,.0f} "
                  f"({tf_rate / base:.0f}x) |")
        print()
        print(f"## Preprocessing steps on real spectra, {bundle.axis.points} points (per spectrum)\n")
        print("| step | FLOP (baseline: upper bound) | one at a time | in a batch of 256 |\n|---|---|---|---|")
        for text, flop, single, batched in preprocess_rows(bundle.axis, X[::7], 20 if args.quick else 100):
            print(f"| {text} | {flop:,} | {single:.3f} ms | {batched:.3f} ms |")
        print()

    print("## Cold start on one file, each a new process (interleaved runs)\n")
    print("| command | median wall time | peak RSS |\n|---|---|---|")
    for name, wall, rss in cold_start_rows(bundle, bundle.examples[0][0], runs):
        print(f"| {name} | {wall * 1000:.0f} ms | {rss:.0f} MB |")
    print()
    print("## Analytic FLOP per spectrum\n\n"
          "| model axis | resample | normalise | features | standardise | network | total |")
    print("|---|---|---|---|---|---|---|")
    for label, b in ((f"shipped, {bundle.axis.points} points", bundle),
                     (f"published, {paper.axis.points} points", paper)):
        f = bundle_flop_count(b)
        print(f"| {label} | {f['resample']:,} | {f['normalise']:,} | {f.get('features', 0):,} | "
              f"{f.get('standardise', 0):,} | {f['network']:,} | {f['total']:,} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
