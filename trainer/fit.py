"""Training a compact-network bundle: optional tuning, held-out and cross-validated metrics, export."""
from __future__ import annotations

import time
from dataclasses import replace
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from device.bundle import write_bundle
from device.cost import flop_count
from device.features import DEFAULT_PROMINENCE, FEATURE_NAMES
from device.inputs import as_chain, raw_inputs
from device.network import forward

from . import model as net
from .compact import fit_compact, pair_seeds
from .data import Dataset, DatasetError, load_dataset
from .examples import EXAMPLES_PER_CLASS, choose_examples, read_examples
from .export import export_check, tflite_bytes
from .metrics import classification_report
from .ood import FALSE_REJECTION, MIN_PER_CLASS, card_entry, fit_detector
from .report import software_versions
from .splits import make_splits, pair_groups, stratified_folds

#: Grid searched by ``--tune`` (learning rate x L2 coefficient), by inner stratified K-fold.
TUNING_GRID = {"learning_rate": (1e-3, 3e-3, 1e-2), "l2": (1e-4, 1e-3, 1e-2)}
TUNING_FOLDS = 3


def fit_predict(R: np.ndarray, y: np.ndarray, n_classes: int, train: np.ndarray, test: np.ndarray,
                hp: net.Hyperparameters, seed: int) -> np.ndarray:
    """Fit the scaler and the network on ``train`` rows of raw inputs ``R`` and predict ``test`` rows."""
    fitted = fit_compact(R[train], y[train], n_classes, hp, seed)
    return forward(fitted.standardizer.transform(R[test]), fitted.layers, hp.leaky_slope).argmax(axis=1)


def tune(R, y, n_classes, rows, hp, seed, log) -> tuple[net.Hyperparameters, list]:
    """Pick learning rate and L2 by mean accuracy of inner stratified K-fold CV on ``rows`` only."""
    table = []
    folds = stratified_folds(y[rows], TUNING_FOLDS, seed)
    for lr in TUNING_GRID["learning_rate"]:
        for l2 in TUNING_GRID["l2"]:
            cand = replace(hp, learning_rate=lr, l2=l2)
            accs = [float((fit_predict(R[rows], y[rows], n_classes, tr, te, cand, seed) == y[rows][te]).mean())
                    for tr, te in folds]
            table.append({"learning_rate": lr, "l2": l2, "accuracy_mean": float(np.mean(accs)),
                          "accuracy_std": float(np.std(accs))})
            log(f"  tune lr={lr:g} l2={l2:g}: inner-CV accuracy {np.mean(accs):.4f}")
    best = max(table, key=lambda r: r["accuracy_mean"])  # first of equals: grid order
    return replace(hp, learning_rate=best["learning_rate"], l2=best["l2"]), table


def evaluate(predict, ds: Dataset, splits: list, seed: int, fitted: str, log) -> dict:
    """Held-out and/or cross-validated metrics of a model, as the model card reports them.

    Parameters
    ----------
    predict : callable
        ``predict(train, test, seed)`` -> predicted class of each ``test`` row, the model (and whatever
        it learns from data, e.g. a scaler) fitted on the ``train`` rows only.
    splits : list of trainer.splits.Splits
        At most one hold-out (card key ``holdout``) and one cross-validation (``cross_validation``).
    seed : int
        The run's seed; each pair trains with its :func:`trainer.compact.pair_seeds` seed, as in
        ``raman-train evaluate``.
    fitted : str
        What is refitted per pair, for the card.
    """
    metrics = {}
    for split in splits:
        if split.warning:
            log(f"warning: {split.warning}")
        named = {"split": split.spec.text, **({"warning": split.warning} if split.warning else {})}
        pairs, seeds = split.pairs, pair_seeds(split, seed)
        if split.spec.kind.startswith("holdout"):
            (train, test), = pairs
            log(f"held-out evaluation ({split.spec.text}): {train.size} train / {test.size} test")
            rep = classification_report(ds.y[test], predict(train, test, seeds[0]), ds.class_names)
            metrics["holdout"] = {**named, "description": split.description, "train_spectra": int(train.size),
                                  "test_spectra": int(test.size), **pair_groups(ds, train, test), **rep}
            log(f"  held-out accuracy {rep['accuracy']:.4f}, macro F1 {rep['macro_f1']:.4f}")
            continue
        log(f"cross-validation: {split.description}")
        per_fold = []
        for i, (tr, te) in enumerate(pairs):
            rep = classification_report(ds.y[te], predict(tr, te, seeds[i]), ds.class_names)
            per_fold.append({"train_spectra": int(tr.size), "test_spectra": int(te.size), **pair_groups(ds, tr, te),
                             "accuracy": rep["accuracy"], "macro_f1": rep["macro_f1"]})
            log(f"  fold {i + 1}/{len(pairs)}: accuracy {rep['accuracy']:.4f}")
        acc = [f["accuracy"] for f in per_fold]
        metrics["cross_validation"] = {
            **named, "protocol": f"{split.description}; {fitted} fitted per fold",
            "accuracy_mean": float(np.mean(acc)), "accuracy_std": float(np.std(acc)),
            "macro_f1_mean": float(np.mean([f["macro_f1"] for f in per_fold])), "folds": per_fold}
        log(f"  accuracy {np.mean(acc):.4f} +/- {np.std(acc):.4f}")
    return metrics


def load_training_data(data, axis, examples, log, validation: tuple = (), tune_folds: int = 0, seed: int = 0,
                       groups: str | None = None) -> tuple[Dataset, list, list]:
    """The data set, the example spectra to ship and the validation splits, all checked before any training.

    Refuses fewer than two classes, a class with fewer than :data:`trainer.ood.MIN_PER_CLASS` spectra (the
    unknown-sample detector needs them), a ``validation`` split (:class:`trainer.splits.SplitSpec`) the data
    cannot fill (:func:`trainer.splits.check_split`), two hold-outs or two cross-validations, and ``tune_folds``
    inner folds with more folds than a class has training spectra. ``groups`` is
    :func:`trainer.data.load_dataset`'s.
    """
    ds = load_dataset(data, axis, log=log, groups=groups)
    if len(ds.class_names) < 2:
        raise DatasetError(f"{data}: found {len(ds.class_names)} class; a classifier needs at least two.")
    counts = ds.counts()
    small = {c: n for c, n in counts.items() if n < MIN_PER_CLASS}
    if small:
        raise DatasetError(f"{data}: every class needs at least {MIN_PER_CLASS} spectra (the unknown-sample detector "
                           f"sets its threshold on held-out spectra of each class); too few in "
                           f"{', '.join(f'{c} ({n})' for c, n in small.items())}: add spectra or drop the class.")
    kinds = ["holdout" if v.kind.startswith("holdout") else "cross-validation" for v in validation]
    twice = [k for k in set(kinds) if kinds.count(k) > 1]
    if twice:
        raise DatasetError(f"fit reports one hold-out and one cross-validation at most; "
                           f"{', '.join(v.text for v in validation)} give two of a kind ({twice[0]})")
    splits = [make_splits(v, ds, seed) for v in validation]
    held = next((s for s in splits if s.spec.kind.startswith("holdout")), None)
    training = np.bincount(ds.y[held.pairs[0][0]] if held else ds.y, minlength=len(ds.class_names))
    k = int(training.argmin())
    if training[k] < max(tune_folds, 1):
        raise DatasetError(f"{ds.class_names[k]} has {training[k]} training spectra"
                           + (f" once {held.spec.text} is held out" if held else "")
                           + (f"; --tune needs {tune_folds} per class" if tune_folds else "; every class needs some"))
    return ds, read_examples(Path(examples), ds.class_names) if examples else [], splits


def shipped_examples(given: list, ds: Dataset, probabilities: np.ndarray, ood, log) -> tuple[list, str]:
    """The examples to ship (``given``, or chosen from the training data) and how, for the card."""
    if given:
        return given, "the example folder given with --examples"
    chosen, missing = choose_examples(ds, probabilities, ood.scores(ds.X) > ood.threshold)
    how = (f"up to {EXAMPLES_PER_CLASS} training spectra per class, those the exported model classifies correctly "
           "with the highest confidence (none called unknown), on the model axis")
    log(f"self-test examples: {len(chosen)} training spectra ({how})")
    if missing:
        log(f"warning: no training spectrum of {', '.join(missing)} is classified correctly, so the bundle has no "
            "example of it; the model has not learnt it: check the data or train longer")
    return chosen, how


def card_basics(ds: Dataset, data, name: str, provenance: dict | None, description: str) -> dict:
    """The model-card fields every bundle has: name, description, time, data, classes, axis."""
    prov = dict(provenance or {})
    return {
        "name": name,
        "description": prov.pop("description", description),
        "created": datetime.now(timezone.utc).replace(microsecond=0).isoformat(),
        "data": {**prov, "file": Path(data).name, "spectra": int(ds.X.shape[0]), "per_class": ds.counts(),
                 "fingerprint_sha256": ds.fingerprint},
        "classes": list(ds.class_names),
        "axis": {"start": ds.axis.start, "stop": ds.axis.stop, "points": ds.axis.points, "step": ds.axis.step,
                 "unit": "cm-1 (Raman shift)"},
    }


def fit_bundle(data, out, *, axis=None, hp: net.Hyperparameters = net.Hyperparameters(), seed: int = 0,
               tune_hp: bool = False, validation: tuple = (), groups: str | None = None, name: str | None = None,
               examples: Path | None = None, provenance: dict | None = None, chosen_by: str | None = None,
               preprocess: str = "snv", ood_false_rejection: float = FALSE_REJECTION, log=print):
    """Train the compact network on ``data`` and export a verified bundle to ``out``.

    Parameters
    ----------
    data : path-like
        Training data in any layout :func:`trainer.data.load_dataset` reads.
    out : path-like
        Bundle directory to write.
    axis : Axis, optional
        Model axis; default from the data.
    hp : Hyperparameters
        Settings; learning rate and L2 are replaced by the tuned ones when ``tune_hp``.
    seed : int
        Seed of weight initialisation, batch order, splits and tuning.
    tune_hp : bool
        Choose learning rate and L2 from :data:`TUNING_GRID` by inner CV on the training spectra
        (the held-out spectra excluded).
    validation : tuple of trainer.splits.SplitSpec
        Splits to report before the final fit: at most one hold-out (e.g. spectra whose metadata
        ``key`` is in ``values``, trained without them) and one cross-validation on all spectra.
    groups : str, optional
        Where each spectrum's group comes from (see :func:`trainer.data.load_dataset`).
    name : str, optional
        Model name (default: the output directory's name).
    examples : path, optional
        Class-folder directory of example spectra to ship in the bundle with their labels; by default
        :func:`trainer.examples.choose_examples` picks them from the training spectra.
    provenance : dict, optional
        Card fields describing the data: ``source``, ``licence``, ``attribution``, ``description``.
    chosen_by : str, optional
        How the hyperparameters were chosen, for the card, when they were not tuned here.
    preprocess : str
        Preprocessing chain before the features (:mod:`device.preprocess`): ``snv`` (default), ``none`` (the
        published method's raw intensities), or steps such as ``asls:1e5:0.01,savgol:11:2,snv``.
    ood_false_rejection : float
        Share of known spectra the out-of-distribution detector may call unknown (sets its threshold).

    Returns
    -------
    ModelBundle
    """
    t0 = time.perf_counter()
    out = Path(out)
    name = name or out.name
    ds, example_files, splits = load_training_data(data, axis, examples, log, validation,
                                                   TUNING_FOLDS if tune_hp else 0, seed, groups)
    split = next((s for s in splits if s.spec.kind.startswith("holdout")), None)
    n_classes = len(ds.class_names)
    try:
        chain = as_chain(preprocess, ds.axis)
    except ValueError as exc:
        raise DatasetError(f"--preprocess {preprocess}: {exc}") from None
    R = raw_inputs(ds.X, ds.axis, DEFAULT_PROMINENCE, chain)
    metrics: dict = {}
    tuning = None
    if tune_hp:
        rows = split.pairs[0][0] if split else np.arange(len(ds.y))
        log(f"tuning learning rate and L2 by {TUNING_FOLDS}-fold CV on {rows.size} training spectra")
        hp, table = tune(R, ds.y, n_classes, rows, hp, seed, log)
        tuning = {"grid": TUNING_GRID, "inner_folds": TUNING_FOLDS, "results": table,
                  "scope": "training spectra only (held-out spectra excluded)" if split else "all spectra"}
    metrics.update(evaluate(lambda tr, te, s: fit_predict(R, ds.y, n_classes, tr, te, hp, s), ds, splits, seed,
                            "scaler and weights", log))

    log("final fit on all spectra")
    fitted = fit_compact(R, ds.y, n_classes, hp, seed, log)
    std, layers, loss = fitted.standardizer, fitted.layers, fitted.loss
    Z = std.transform(R)
    keras_model = net.build(Z.shape[1], n_classes, hp, seed)
    keras_model.set_weights([p for layer in layers for p in (layer.kernel, layer.bias)])
    keras_probs = net.predict(keras_model, Z)
    probabilities = forward(Z, layers, hp.leaky_slope)
    tfl = tflite_bytes(layers, hp.leaky_slope, Z.shape[1])
    check = export_check(keras_probs, Z, probabilities, tfl)
    log(f"export check passed: max |difference| {max(check['max_abs_difference'].values()):.2e} "
        f"on {check['spectra']} spectra ({check['tflite_runtime']})")
    metrics["training"] = {"final_loss": loss[-1], "loss_per_epoch": loss,
                           "accuracy": float((probabilities.argmax(1) == ds.y).mean())}
    chosen = ("learning rate and L2 by inner cross-validation over the grid below; the rest fixed by the "
              "published method (5 hidden units, 50 epochs) or Keras defaults (Leaky ReLU slope 0.3, batch 32)"
              if tune_hp else chosen_by or "given on the command line or raman-train defaults; not tuned")
    ood = fit_detector(ds.X, ds.y, n_classes, ood_false_rejection, seed, log)
    example_files, examples_from = shipped_examples(example_files, ds, probabilities, ood, log)
    card = {
        **card_basics(ds, data, name, provenance, f"compact network trained on {Path(data).name}"),
        "preprocessing": {
            "resampling": "linear interpolation onto the axis; spectra that do not cover it are refused",
            **({"normalisation": {"snv": "standard normal variate per spectrum (minus its mean, over its standard "
                                         "deviation), before the features",
                                  "none": "none: raw intensities, as the published method"}[chain.text]}
               if chain.is_normalisation else
               {"chain": chain.text, "steps": [step.description for step in chain.steps]}),
            "inputs": f"{ds.axis.points} {'' if chain.is_normalisation else 'preprocessed '}intensities followed by "
                      f"{len(FEATURE_NAMES)} engineered features",
            "features": list(FEATURE_NAMES),
            "peak_prominence": f"{DEFAULT_PROMINENCE} x (max - min) of each spectrum",
            "standardisation": "per input column, mean and standard deviation of the training spectra",
        },
        "network": {"architecture": f"Dense({hp.hidden}) + LeakyReLU -> Dense({n_classes}) + softmax",
                    "leaky_relu_slope": hp.leaky_slope,
                    "parameters": int(sum(l.kernel.size + l.bias.size for l in layers))},
        "hyperparameters": {**hp.as_dict(), "optimizer": "Adam", "loss": "sparse categorical cross-entropy",
                            "seed": seed, "chosen_by": chosen, **({"tuning": tuning} if tuning else {})},
        "metrics": metrics,
        "out_of_distribution": {"target_false_unknown": ood_false_rejection, **card_entry(ood, ds.X, ds.y)},
        "examples_from": examples_from,
        "flop_per_spectrum": flop_count(ds.axis, layers, chain),
        "export_check": check,
        "training_seconds": round(time.perf_counter() - t0, 1),
        "software": software_versions(),
    }
    bundle = write_bundle(out, ood=ood, name=name, class_names=ds.class_names, axis=ds.axis, prominence=DEFAULT_PROMINENCE,
                          standardizer=std, layers=layers, leaky_slope=hp.leaky_slope, tflite=tfl, card=card,
                          examples=example_files, normalisation=chain)
    log(f"wrote {out} ({bundle.model_id})")
    return bundle
