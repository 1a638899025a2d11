"""Training a linear bundle (``raman-train fit --model logreg|linear-svm|pca-logreg|pls-logreg``): metrics, export."""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from device.bundle import INTENSITIES_LAYOUT, write_bundle
from device.cost import flop_count
from device.inputs import as_chain
from device.network import Dense, DenseNet

from . import linear
from .data import DatasetError
from .export import export_check, tflite_bytes
from .fit import card_basics, evaluate, load_training_data, shipped_examples
from .ood import FALSE_REJECTION, card_entry, fit_detector
from .report import software_versions


def as_stored(net: DenseNet) -> DenseNet:
    """The network with its weights rounded to float32, as ``model.npz`` and ``model.tflite`` hold them."""
    return DenseNet(tuple(Dense(np.float32(l.kernel).astype(np.float64), np.float32(l.bias).astype(np.float64),
                                l.activation) for l in net.layers), net.leaky_slope)


def _training_sets(ds, splits: list) -> dict:
    """The size of the smallest training set of each validation split, by what makes it (all spectra included)."""
    sizes = {"all spectra": ds.y.size}
    for split in splits:
        sizes[f"a training set of {split.spec.option}"] = min(tr.size for tr, _ in split.pairs)
    return sizes


def check_components(settings: linear.LinearSettings, sizes: dict, points: int) -> None:
    """Refuse, before any training, more projection scores than the smallest training set allows.

    ``sizes`` maps what makes a training set (e.g. ``all spectra``) to its number of spectra.
    """
    if not settings.projected:
        return
    where = min(sizes, key=sizes.get)
    most = linear.max_components(sizes[where], points)
    if settings.components > most:
        raise DatasetError(f"--components {settings.components} is more than {where} ({sizes[where]} spectra) "
                           f"can give: use --components {most} or fewer")


def fit_linear_bundle(data, out, settings: linear.LinearSettings, *, axis=None, seed: int = 0,
                      validation: tuple = (), groups: str | None = None, name: str | None = None,
                      examples: Path | None = None, provenance: dict | None = None, chosen_by: str | None = None,
                      preprocess: str = "snv", ood_false_rejection: float = FALSE_REJECTION, log=print):
    """Train a linear kind (:mod:`trainer.linear`) on ``data`` and export a verified bundle to ``out``.

    Parameters are those of :func:`trainer.fit.fit_bundle` (without tuning), plus the kind's
    :class:`~trainer.linear.LinearSettings`. The network's inputs are the preprocessed intensities
    (standardised per column only with ``settings.standardise``). The export check compares
    scikit-learn's own probabilities with the TFLite and NumPy ones; if it fails nothing is written.

    Returns
    -------
    ModelBundle
    """
    t0 = time.perf_counter()
    out = Path(out)
    name = name or out.name
    log(f"model {settings.kind}")
    ds, example_files, splits = load_training_data(data, axis, examples, log, validation, 0, seed, groups)
    check_components(settings, _training_sets(ds, splits), ds.axis.points)
    n_classes = len(ds.class_names)
    try:
        chain = as_chain(preprocess, ds.axis)
    except ValueError as exc:
        raise DatasetError(f"--preprocess {preprocess}: {exc}") from None
    X = chain.apply(ds.X)

    def predict(train, test, s):
        return linear.fit_linear(settings, X[train], ds.y[train], n_classes, s).probabilities(X[test]).argmax(axis=1)

    fitted = ("column statistics, " if settings.standardise else "") + (
        "projection and head" if settings.projected else "weights") + (
        " and calibration" if settings.kind == "linear-svm" else "")
    metrics = evaluate(predict, ds, splits, seed, fitted, log)

    log("final fit on all spectra")
    model = linear.fit_linear(settings, X, ds.y, n_classes, seed)
    for note in model.notes:
        log(f"warning: scikit-learn: {note}")
    Z = model.inputs(X)
    net = as_stored(model.network)
    tfl = tflite_bytes(net.layers, net.leaky_slope, Z.shape[1])
    check = export_check(model.reference(X), Z, net.probabilities(Z), tfl, reference="scikit-learn")
    log(f"export check passed: max |difference| {max(check['max_abs_difference'].values()):.2e} "
        f"on {check['spectra']} spectra ({check['tflite_runtime']})")
    probs = net.probabilities(Z)
    metrics["training"] = {"accuracy": float((probs.argmax(1) == ds.y).mean())}
    ood = fit_detector(ds.X, ds.y, n_classes, ood_false_rejection, seed, log)
    example_files, examples_from = shipped_examples(example_files, ds, probs, ood, log)
    chosen = chosen_by or "given on the command line or raman-train defaults (trainer/linear.py); not tuned"
    card = {
        **card_basics(ds, data, name, provenance, f"{settings.kind} trained on {Path(data).name}"),
        "preprocessing": {
            "resampling": "linear interpolation onto the axis; spectra that do not cover it are refused",
            "chain": chain.text, "steps": [step.description for step in chain.steps],
            "inputs": f"the {ds.axis.points} preprocessed intensities",
            "standardisation": "per input column, mean and standard deviation of the training spectra"
                               if settings.standardise else "none",
        },
        "network": {"kind": settings.kind, "architecture": linear.describe(settings, n_classes, ds.axis.points),
                    "layers": [f"Dense({l.kernel.shape[1]}, {l.activation})" for l in net.layers],
                    "parameters": net.parameters},
        "hyperparameters": {**settings.as_dict(), "seed": seed, "chosen_by": chosen,
                            "trained_with": "scikit-learn (LinearSVC, LogisticRegression L-BFGS, PCA, PLSRegression)",
                            **({"calibration": model.calibration} if model.calibration else {}),
                            **({"fit_warnings": model.notes} if model.notes else {})},
        "metrics": metrics,
        "out_of_distribution": {"target_false_unknown": ood_false_rejection, **card_entry(ood, ds.X, ds.y)},
        "examples_from": examples_from,
        "flop_per_spectrum": flop_count(ds.axis, net.layers, chain, features=False, standardise=settings.standardise),
        "export_check": check,
        "training_seconds": round(time.perf_counter() - t0, 1),
        "software": software_versions(),
    }
    bundle = write_bundle(out, ood=ood, name=name, class_names=ds.class_names, axis=ds.axis, tflite=tfl, card=card,
                          standardizer=model.standardizer, layers=net.layers, leaky_slope=net.leaky_slope,
                          input_layout=INTENSITIES_LAYOUT, examples=example_files, normalisation=chain)
    log(f"wrote {out} ({bundle.model_id})")
    return bundle
