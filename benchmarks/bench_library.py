"""Library search benchmark: one spectrum against libraries of 100 to 10,000 entries, time and memory.

Run with ``make bench-library`` (or ``.venv/bin/python benchmarks/bench_library.py [--quick]``). Prints a
Markdown table. The entries are real spectra: every SERS spectrum of the shared pesticide set
(6,978) and, to reach 10,000, copies of them shifted by 1-3 cm-1, each entry its own material; the
query is a held-out raw file of the set. Each library is written and loaded through the real bundle
code; the search is :meth:`device.inference.library.Library.search` (resampling, the matching chain,
one float32 matrix product, the top hits). The baseline, measured in the same run, is the
straightforward search: :func:`numpy.corrcoef`-style standardisation of every entry at each query,
then the correlations and a full sort. Memory is the resident-set growth of a fresh process that
loads the library and searches (its peak, ``VmHWM`` of ``/proc/self/status``: Linux), beside the size of its arrays.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from device.inference.library import load_library, write_library  # noqa: E402
from device.inference.preprocess import Chain  # noqa: E402
from device.inference.readers import read_spectra  # noqa: E402
from device.inference.spectrum import Axis  # noqa: E402

DATA = ROOT.parent / "shared" / "datasets" / "sersformer_pesticides"
SIZES = (100, 1000, 10000)
#: The matching chain of the benchmark libraries: the shipped pesticide library's.
CHAIN = "savgol:9:2:1,snv"


def entries(count: int) -> tuple[Axis, np.ndarray]:
    """``count`` entry spectra (count, 1499) on the set's axis: the real spectra, then shifted copies."""
    z = np.load(DATA / "sersformer_pesticides.npz", allow_pickle=False)
    X = z["X"].astype(np.float64)
    axis = Axis(float(z["wavenumber"][0]), float(z["wavenumber"][-1]), X.shape[1])
    rows, shift = [X], 1
    while sum(len(r) for r in rows) < count:
        rows.append(np.roll(X, shift, axis=1))
        shift += 1
    return axis, np.concatenate(rows)[:count]


def build(path: Path, count: int) -> None:
    """Write a library of ``count`` entries at ``path`` (no replicates: it searches, it does not verify)."""
    axis, Y = entries(count)
    chain = Chain.parse(CHAIN, axis.step, axis.points)
    write_library(path, name=f"bench-{count}", axis=axis, preprocess=chain,
                  entry_names=[f"entry-{i}" for i in range(count)], references=chain.apply(Y),
                  spectra=np.zeros((0, axis.points)), spectrum_entry=np.zeros(0, int), no_match_below=50.0,
                  false_no_match=0.05, card={"name": f"bench-{count}", "description": "benchmark library"})


def query():
    """The query spectrum: a raw file of the set (two columns, its own axis), as the device reads it."""
    return read_spectra(sorted((DATA / "raw_subset" / "Phosmet_present").glob("*.CSV"))[0])[0]


def naive_search(references: np.ndarray, axis: Axis, spectrum, chain: Chain, top: int = 5) -> list:
    """The baseline: interpolate, preprocess, standardise every entry at the query, correlate, sort all."""
    y = np.interp(axis.values, spectrum.shift, spectrum.intensity)
    x = chain.apply(y[None, :])[0]
    x = (x - x.mean()) / x.std()
    R = (references - references.mean(axis=1, keepdims=True)) / references.std(axis=1, keepdims=True)
    r = R @ x / x.size
    return list(np.argsort(-r)[:top])


def timed(fn, repeats: int) -> float:
    """Median wall time of ``fn()`` over ``repeats`` calls, ms (after one warm-up call)."""
    fn()
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return 1e3 * float(np.median(times))


def memory(path: Path) -> dict:
    """Peak resident-set growth (MB) of a fresh process loading the library at ``path`` and searching it.

    ``VmHWM`` rather than ``ru_maxrss``, which a child inherits from the process that started it.
    """
    code = f"""
import json, re, sys
sys.path.insert(0, {str(ROOT)!r})
import numpy as np
from device.inference.library import load_library
from device.inference.readers import read_spectra
sys.path.insert(0, {str(Path(__file__).parent)!r})
from bench_library import query
def peak():
    status = open("/proc/self/status").read()
    return int(re.search(r"VmHWM:\\s+(\\d+) kB", status).group(1))
q = query()
before = peak()
lib = load_library({str(path)!r})
loaded = peak()
for _ in range(20):
    lib.search(q)
searched = peak()
arrays = lib.references.nbytes + lib.spectra.nbytes
print(json.dumps({{"load_mb": (loaded - before) / 1024, "search_mb": (searched - loaded) / 1024,
                  "arrays_mb": arrays / 1e6}}))
"""
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True).stdout
    return json.loads(out)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="fewer repeats (a smoke run, not for the table)")
    args = p.parse_args(argv)
    repeats = 20 if args.quick else 200
    q = query()
    print("| entries | search (ms, median) | baseline (ms) | speed-up | arrays (MB) | RSS on load (MB) "
          "| RSS while searching (MB) |")
    print("|---:|---:|---:|---:|---:|---:|---:|")
    with tempfile.TemporaryDirectory() as tmp:
        for count in SIZES:
            path = Path(tmp) / f"lib-{count}"
            build(path, count)
            lib = load_library(path)
            ours = timed(lambda lib=lib: lib.search(q), repeats)
            refs = lib.references.astype(np.float64)
            base = timed(lambda lib=lib, refs=refs: naive_search(refs, lib.axis, q, lib.preprocess),
                         max(5, repeats // 10))
            mem = memory(path)
            print(f"| {count:,} | {ours:.2f} | {base:.2f} | {base / ours:.1f}x | {mem['arrays_mb']:.1f} "
                  f"| {mem['load_mb']:.1f} | {mem['search_mb']:.1f} |", flush=True)
    print(f"\nQuery: one raw SERS file (1,556 points) resampled to the library axis (1,499 points), matched after "
          f"{CHAIN}; target: <= 20 ms for 10,000 entries on this machine.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
