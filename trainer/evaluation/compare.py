"""``raman-train compare``: every model under the same splits, with its cost, and an acquisition-quality sweep.

For each split, each model is trained on the training spectra and tested on the test spectra as they
are and degraded to each SNR level of the sweep (:mod:`trainer.data.degrade`; the same degraded spectra for
every model). On the first split each trained model is also measured: parameters, FLOP per spectrum
(analytic, from the axis through the verdict: resampling, normalisation, features where the model has
them, the model), size on disk (the bundle's ``model.npz`` + ``model.tflite`` for the networks, the
pickled estimator for the classical models) and latency per spectrum in the device runtime (the
networks; the classical models have none).

Models: the compact network of part A (SNV inputs + features, its defaults), the convolutional
networks of :mod:`trainer.models.keras_convnets`, and the classical baselines of :mod:`trainer.models.classical`, all on
SNV-normalised spectra. Nothing is tuned on the data.
"""
from __future__ import annotations

import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from device.inference.bundle import write_bundle
from device.inference.classifier import Classifier
from device.inference.cost import RESAMPLE_FLOP_PER_POINT, SNV_FLOP_PER_POINT, convnet_flop_count, flop_count
from device.inference.features import DEFAULT_PROMINENCE
from device.inference.inputs import normalise, raw_inputs
from device.inference.network import forward
from trainer.data.dataset import Dataset, DatasetError
from trainer.data.degrade import SNR_LEVELS, degrade
from trainer.data.splits import Splits, make_splits, pair_groups, parse_split
from trainer.evaluation.metrics import classification_report
from trainer.export import tflite_bytes, tflite_convnet_bytes
from trainer.models import classical, keras_convnets
from trainer.models.compact import Hyperparameters, fit_compact, pair_seeds

MODELS = ("compact", *keras_convnets.CONV_MODELS, *classical.CLASSICAL_MODELS)
#: Data sets up to this many spectra get repeated K-fold by default, larger ones one hold-out split.
SMALL_SET = 1000
#: Single-spectrum calls timed per model (median reported), after warm-up.
LATENCY_CALLS = 50


def make_split(text: str, ds: Dataset, seed: int) -> Splits:
    """The pairs of ``--split``: any :func:`trainer.data.splits.parse_split` spelling, or ``auto``.

    ``auto`` is, with groups (:attr:`Dataset.groups`), stratified group 5-fold (K lowered to the number of
    groups); without, repeated stratified K-fold (3 x 5, or 3 x the smallest class's size when below 5)
    for at most :data:`SMALL_SET` spectra, else a stratified random 20 % hold-out.
    """
    if text == "auto":
        if ds.groups is not None:
            text = f"group-kfold:{max(2, min(5, np.unique(ds.groups).size))}"
        else:
            folds = max(2, min(5, int(np.bincount(ds.y).min())))
            text = f"repeated:3x{folds}" if len(ds.y) <= SMALL_SET else "holdout:0.2"
    return make_splits(parse_split(text), ds, seed)


@dataclass
class Trained:
    """A fitted model: ``predict(Y)`` -> class probabilities or labels for spectra ``Y`` on the axis."""

    predict: object
    fit_seconds: float
    cost: dict
    note: str | None = None  # why the fit is doubtful (e.g. the solver did not converge), for the report


def _latency(clf: Classifier, Y: np.ndarray) -> float:
    """Median seconds of one single-spectrum classification on the axis, in the device runtime."""
    times = []
    for i in range(LATENCY_CALLS + 5):
        row = Y[i % len(Y)][None]
        t = time.perf_counter()
        clf.probabilities_on_axis(row)
        times.append(time.perf_counter() - t)
    return float(np.median(times[5:]))


def _bundle_cost(tmp: Path, Y: np.ndarray, ds: Dataset, **bundle_args) -> dict:
    """Size on disk (model.npz + model.tflite) and device latency of a bundle written for measuring."""
    b = write_bundle(tmp, name="compare", class_names=ds.class_names, axis=ds.axis, card={}, **bundle_args)
    size = sum((b.path / f).stat().st_size for f in ("model.npz", "model.tflite"))
    return {"size_bytes": size, "size_of": "bundle (model.npz + model.tflite)",
            "latency_s": _latency(Classifier(b), Y)}


def train_model(name: str, ds: Dataset, train: np.ndarray, seed: int, steps: int, measure: bool) -> Trained:
    """Fit model ``name`` on the ``train`` rows; with ``measure``, also its cost (see the module docstring)."""
    Y, y, axis, n_classes = ds.X[train], ds.y[train], ds.axis, len(ds.class_names)
    t0 = time.perf_counter()
    cost: dict = {}
    note = None
    if name == "compact":
        hp = Hyperparameters()
        R = raw_inputs(Y, axis, DEFAULT_PROMINENCE, "snv")
        fitted = fit_compact(R, y, n_classes, hp, seed)
        std, layers = fitted.standardizer, fitted.layers
        fit_s = time.perf_counter() - t0
        predict = lambda Yt: forward(std.transform(raw_inputs(Yt, axis, DEFAULT_PROMINENCE, "snv")),  # noqa: E731
                                     layers, hp.leaky_slope)
        if measure:
            with tempfile.TemporaryDirectory() as tmp:
                cost = _bundle_cost(Path(tmp) / "b", Y, ds, prominence=DEFAULT_PROMINENCE, standardizer=std,
                                    layers=layers, leaky_slope=hp.leaky_slope, normalisation="snv",
                                    tflite=tflite_bytes(layers, hp.leaky_slope, R.shape[1]))
            cost.update(parameters=int(sum(layer.kernel.size + layer.bias.size for layer in layers)),
                        flop=flop_count(axis, layers, "snv")["total"])
    elif name in keras_convnets.CONV_MODELS:
        hp = keras_convnets.ConvHyperparameters(steps=steps)
        model, _ = keras_convnets.train(name, Y, axis.values, y, n_classes, hp, seed)
        net = keras_convnets.to_convnet(model, name, hp)
        fit_s = time.perf_counter() - t0
        predict = lambda Yt: net.probabilities(normalise(Yt, "snv"))  # noqa: E731
        if measure:
            with tempfile.TemporaryDirectory() as tmp:
                cost = _bundle_cost(Path(tmp) / "b", Y, ds, convnet=net, normalisation="snv",
                                    tflite=tflite_convnet_bytes(net, axis.points))
            cost.update(parameters=net.parameters, flop=convnet_flop_count(axis, net, "snv")["total"])
    else:
        est, note = classical.fit_classical(name, seed, normalise(Y, "snv"), y)
        fit_s = time.perf_counter() - t0
        predict = lambda Yt: est.predict(normalise(Yt, "snv"))  # noqa: E731
        if measure:
            cost = {"parameters": classical.parameter_count(est), "size_bytes": classical.model_size_bytes(est),
                    "size_of": "pickled estimator", "latency_s": None,
                    "flop": (RESAMPLE_FLOP_PER_POINT + SNV_FLOP_PER_POINT) * axis.points
                    + classical.classical_flops(est, axis.points)}
    return Trained(predict, fit_s, cost, note)


def evaluation_spectra(ds: Dataset, test: np.ndarray, snr_levels, seed: int, pair: int) -> dict:
    """The test spectra of pair number ``pair`` as they are and degraded to each SNR level.

    Returns ``{"clean": X, "snr10": X10, ...}``, each of shape (len(test), points) on the data's axis. The
    degradation (:func:`trainer.data.degrade.degrade`) draws from a generator seeded ``seed + 1000 + pair``, level
    after level, so one seed gives the same degraded spectra to every model and every caller.
    """
    rng = np.random.default_rng(seed + 1000 + pair)
    return {"clean": ds.X[test], **{f"snr{s:g}": degrade(ds.X[test], ds.axis.values, s, rng) for s in snr_levels}}


def _labels(out: np.ndarray) -> np.ndarray:
    return out.argmax(axis=1) if out.ndim == 2 else np.asarray(out)


def compare(ds: Dataset, split: Splits, models=MODELS, snr_levels=SNR_LEVELS, seed: int = 0,
            steps: int = keras_convnets.ConvHyperparameters().steps, log=print) -> dict:
    """Run the comparison; returns per-model results (see :func:`trainer.report_compare.write_compare_report`)."""
    unknown = [m for m in models if m not in MODELS]
    if unknown:
        raise DatasetError(f"unknown model(s) {', '.join(unknown)}; choose from {', '.join(MODELS)}")
    t_start = time.perf_counter()
    conditions = ["clean", *[f"snr{s:g}" for s in snr_levels]]
    results = {m: {"splits": [], "cost": None, "fit_seconds": [], "notes": []} for m in models}
    pairs = []
    for i, ((train, test), training_seed) in enumerate(zip(split.pairs, pair_seeds(split, seed))):
        pairs.append({"train_spectra": int(train.size), "test_spectra": int(test.size), **pair_groups(ds, train, test)})
        tests = evaluation_spectra(ds, test, snr_levels, seed, i)
        for name in models:
            trained = train_model(name, ds, train, training_seed, steps, measure=i == 0)
            scores = {}
            for cond in conditions:
                rep = classification_report(ds.y[test], _labels(trained.predict(tests[cond])), ds.class_names)
                scores[cond] = {"accuracy": rep["accuracy"], "macro_f1": rep["macro_f1"]}
            results[name]["splits"].append(scores)
            results[name]["fit_seconds"].append(trained.fit_seconds)
            if trained.note:
                results[name]["notes"].append(f"split {i + 1}: {trained.note}")
            if i == 0:
                results[name]["cost"] = trained.cost
            worst = f"  at SNR {snr_levels[-1]:g}: {scores[conditions[-1]]['accuracy']:.4f}" if snr_levels else ""
            log(f"split {i + 1}/{len(split.pairs)} {name:14s} accuracy {scores['clean']['accuracy']:.4f}{worst}  "
                f"({trained.fit_seconds:.1f} s){'  [' + trained.note + ']' if trained.note else ''}")
    for r in results.values():
        for cond in conditions:
            acc = [s[cond]["accuracy"] for s in r["splits"]]
            f1 = [s[cond]["macro_f1"] for s in r["splits"]]
            r.setdefault("summary", {})[cond] = {"accuracy_mean": float(np.mean(acc)),
                                                 "accuracy_std": float(np.std(acc)),
                                                 "macro_f1_mean": float(np.mean(f1))}
    return {"split": split.description, "split_spec": split.spec.text, "warning": split.warning,
            "splits": len(split.pairs), "pairs": pairs, "conditions": conditions,
            "snr_levels": list(snr_levels), "models": results, "seconds": round(time.perf_counter() - t_start, 1)}
