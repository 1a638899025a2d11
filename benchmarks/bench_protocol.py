"""Protocol benchmark: the published 10 x 15-fold protocol, vectorised, against the naive loop.

Run with ``make bench-protocol`` (or ``.venv/bin/python benchmarks/bench_protocol.py``). On the
synthetic set (116 spectra, 2,721 points) it times the full protocol with the vectorised engine, and
on ``--naive-repeats`` repeats, scaled to the full protocol, the naive loop (one Keras model of 50
epochs per fold, ``--engine naive``) and one NumPy fit per fold (:func:`trainer.models.compact.fit_compact`,
as ``raman-train fit --model compact --cv-folds`` trains); it prints the ratios.
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


from device.inference.features import DEFAULT_PROMINENCE  # noqa: E402
from device.inference.inputs import raw_inputs  # noqa: E402
from trainer.data.dataset import load_dataset  # noqa: E402
from trainer.data.splits import SplitSpec, make_splits  # noqa: E402
from trainer.data.synth import write  # noqa: E402
from trainer.evaluation.protocol import Settings, run  # noqa: E402
from trainer.models.compact import (
    Hyperparameters,  # noqa: E402
    fit_compact,  # noqa: E402
)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--naive-repeats", type=int, default=1, help="repeats of the naive loop to time (default 1)")
    args = ap.parse_args()
    folds, repeats = 15, 10
    hp = Hyperparameters(learning_rate=3e-3, l2=1e-3)
    with tempfile.TemporaryDirectory() as tmp:
        write(tmp, seed=0)
        ds = load_dataset(tmp)
    print(f"data: SYNTHETIC set, {len(ds.y)} spectra x {ds.axis.points} points; {repeats} x {folds}-fold, "
          f"{hp.epochs} epochs, batch {hp.batch_size}; {os.cpu_count()} cores\n")
    t = time.perf_counter()
    result = run(ds, Settings(folds=folds, repeats=repeats, hp=hp), log=lambda m: None)
    vec = time.perf_counter() - t

    fits = folds * args.naive_repeats
    t = time.perf_counter()
    run(ds, Settings(folds=folds, repeats=args.naive_repeats, hp=hp, engine="naive"), log=lambda m: None)
    naive_measured = time.perf_counter() - t
    naive_full = naive_measured / fits * folds * repeats

    R = raw_inputs(ds.X, ds.axis, DEFAULT_PROMINENCE, "snv")  # as the vectorised run (Settings default)
    split = make_splits(SplitSpec("kfold", folds=folds, repeats=args.naive_repeats), ds, 0)
    t = time.perf_counter()
    for i, (tr, _) in enumerate(split.pairs):
        fit_compact(R[tr], ds.y[tr], len(ds.class_names), hp, seed=i)
    single_measured = time.perf_counter() - t
    single_full = single_measured / fits * folds * repeats

    print("| path | timed | seconds | full protocol (s) | speed-up |\n|---|---|---|---|---|")
    print(f"| naive: one Keras model per fold (--engine naive) | {fits} fits | {naive_measured:.1f} | {naive_full:.0f} "
          f"(x {folds * repeats / fits:g}, {naive_measured / fits:.2f} s per fit) | 1x |")
    print(f"| one NumPy fit per fold | {fits} fits | {single_measured:.1f} | {single_full:.0f} "
          f"(x {folds * repeats / fits:g}, {single_measured / fits:.2f} s per fit) | {naive_full / single_full:.0f}x |")
    print(f"| vectorised: all folds of a repeat at once | {folds * repeats} fits, with report data | {vec:.1f} | "
          f"{vec:.1f} | {naive_full / vec:.0f}x |")
    print(f"\naccuracy under the protocol (vectorised): {100 * result['accuracy_mean']:.2f} % +/- "
          f"{100 * result['accuracy_std']:.2f} %")
    print("(the vectorised run also computes validation losses every epoch and the permutation importance)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
