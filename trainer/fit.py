"""Training a bundle: the model chosen or given, held-out and cross-validated metrics, export.

One pipeline for every kind (:mod:`trainer.models.candidates`): read and check the data and the splits, choose
the model by inner cross-validation (:mod:`trainer.selection`) unless one is given, report each split
with the model retrained on its training spectra only, train on all spectra, export and check TFLite
against NumPy and the training library, fit the unknown-sample detector, choose self-test examples,
write the card and the bundle.
"""
from __future__ import annotations

import time
from dataclasses import replace
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from device.inference.bundle import write_bundle
from device.inference.convnet import ConvNet
from device.inference.features import DEFAULT_PROMINENCE, FEATURE_NAMES
from device.inference.inputs import as_chain
from device.inference.resolution import broaden, harmonising_fwhm
from device.inference.verdict import is_unknown
from trainer.data.dataset import Dataset, DatasetError, load_dataset
from trainer.data.splits import SplitSpec, make_splits, pair_groups
from trainer.evaluation.metrics import classification_report
from trainer.evaluation.ood import FALSE_REJECTION, MIN_PER_CLASS, card_entry, fit_detector
from trainer.evaluation.report import software_versions
from trainer.evaluation.stopping import calibrate
from trainer.examples import EXAMPLES_PER_CLASS, choose_examples, read_examples
from trainer.export import export_check, tflite_bytes, tflite_convnet_bytes
from trainer.models.candidates import AUGMENT_COPIES, Candidate, TrainingSpectra, device_flop, train
from trainer.models.compact import pair_seeds
from trainer.models.projection import max_components
from trainer.selection import MAX_FLOP, Selection, inner_split, score, select

#: Folds of the split that calibrates the adaptive stop rule when no validation split is given (its first fold).
CALIBRATION_FOLDS = 5
#: Grid searched by ``--tune`` (learning rate x L2 coefficient of the compact network), by inner CV.
TUNING_GRID = {"learning_rate": (1e-3, 3e-3, 1e-2), "l2": (1e-4, 1e-3, 1e-2)}


def tune(candidate: Candidate, ds: Dataset, rows: np.ndarray, seed: int, log) -> Selection:
    """The compact ``candidate`` with the learning rate and L2 of :data:`TUNING_GRID` of best inner-CV score.

    Scored on ``rows`` only (:func:`trainer.selection.inner_split`, :func:`trainer.selection.score`).
    """
    grid = [Candidate(candidate.kind, candidate.chain, replace(candidate.settings, learning_rate=lr, l2=l2),
                      augment=candidate.augment)
            for lr in TUNING_GRID["learning_rate"] for l2 in TUNING_GRID["l2"]]
    inner = inner_split(ds, rows, seed)
    table = score(grid, ds, inner, seed, np.inf, log)
    i = int(np.argmax([r["cv_score_mean"] for r in table]))  # first of equals: grid order
    log(f"tuned: {grid[i].name} learning rate {grid[i].settings.learning_rate:g}, L2 {grid[i].settings.l2:g}")
    return Selection(grid[i], table, inner.description, "highest inner-CV score (test spectra as measured and "
                     "at SNR 10 and 5) over the learning rate x L2 grid")


def evaluate(predict, ds: Dataset, splits: list, seed: int, fitted: str, log) -> dict:
    """Held-out and/or cross-validated metrics of a model, as the model card reports them.

    Parameters
    ----------
    predict : callable
        ``predict(train, test, seed)`` -> predicted class of each ``test`` row, the model (and whatever
        it learns from data, e.g. a scaler) fitted on the ``train`` rows only.
    splits : list of trainer.data.splits.Splits
        At most one hold-out (card key ``holdout``) and one cross-validation (``cross_validation``).
    seed : int
        The run's seed; each pair trains with its :func:`trainer.models.compact.pair_seeds` seed, as in
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


def load_training_data(data, axis, examples, log, validation: tuple = (), seed: int = 0,
                       groups: str | None = None, choosing: bool = False) -> tuple[Dataset, list, list]:
    """The data set, the example spectra to ship and the validation splits, all checked before any training.

    Refuses fewer than two classes, a class with fewer than :data:`trainer.evaluation.ood.MIN_PER_CLASS` spectra (the
    unknown-sample detector needs them), a ``validation`` split (:class:`trainer.data.splits.SplitSpec`) the data
    cannot fill (:func:`trainer.data.splits.check_split`), two hold-outs or two cross-validations, and a class
    without training spectra, or with fewer than 2 when ``choosing`` a model by inner cross-validation.
    ``groups`` is :func:`trainer.data.dataset.load_dataset`'s.
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
    if training[k] < (2 if choosing else 1):
        raise DatasetError(f"{ds.class_names[k]} has {training[k]} training spectra"
                           + (f" once {held.spec.text} is held out" if held else "")
                           + ("; choosing the model by inner cross-validation needs 2 per class: add spectra, hold "
                              "out less, or give --model (without --tune)" if choosing else "; every class needs some"))
    return ds, read_examples(Path(examples), ds.class_names) if examples else [], splits


def shipped_examples(given: list, ds: Dataset, probabilities: np.ndarray, ood, log) -> tuple[list, str]:
    """The examples to ship (``given``, or chosen from the training data) and how, for the card."""
    if given:
        return given, "the example folder given with --examples"
    chosen, missing = choose_examples(ds, probabilities, is_unknown(ood.scores(ds.X), ood.threshold))
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


def fit_bundle(data, out, candidate: Candidate | None = None, *, axis=None, seed: int = 0, tune_hp: bool = False,
               validation: tuple = (), groups: str | None = None, name: str | None = None,
               examples: Path | None = None, provenance: dict | None = None, chosen_by: str | None = None,
               max_flop: float = MAX_FLOP, augment: bool = True, chains: tuple | None = None,
               ood_false_rejection: float = FALSE_REJECTION, response_corrected: bool = False,
               resolution_cm1: float | None = None, source_resolution_cm1: float | None = None, log=print):
    """Train a model on ``data`` (chosen by inner cross-validation, or ``candidate``) and export a verified bundle.

    Parameters
    ----------
    data : path-like
        Training data in any layout :func:`trainer.data.dataset.load_dataset` reads.
    out : path-like
        Bundle directory to write.
    candidate : Candidate, optional
        The model to train (kind, settings, chain); None: chosen by :func:`trainer.selection.select`
        among the family within ``max_flop``, on the training spectra of each split and on all spectra.
    axis : Axis, optional
        Model axis; default from the data.
    seed : int
        Seed of weight initialisation, batch order, augmentation, splits and selection.
    tune_hp : bool
        Compact network only: choose learning rate and L2 from :data:`TUNING_GRID` by inner CV on the
        training spectra (the held-out ones excluded).
    validation : tuple of trainer.data.splits.SplitSpec
        Splits to report before the final fit: at most one hold-out and one cross-validation. Each pair's
        model (and its choice, when chosen) sees its training spectra only.
    groups : str, optional
        Where each spectrum's group comes from (see :func:`trainer.data.dataset.load_dataset`); the inner
        cross-validation of the choice is then grouped.
    name : str, optional
        Model name (default: the output directory's name).
    examples : path, optional
        Class-folder directory of example spectra to ship; by default chosen from the training spectra.
    provenance : dict, optional
        Card fields describing the data: ``source``, ``licence``, ``attribution``, ``description``.
    chosen_by : str, optional
        How the settings were chosen, for the card, when given rather than chosen here.
    max_flop : float
        Device cost allowed per spectrum when choosing.
    augment : bool
        Train on degraded copies of the training spectra too (:mod:`trainer.models.candidates`); applies to the
        chosen model (``candidate`` carries its own).
    chains : tuple of str, optional
        The preprocessing chains to choose among (default: the family's, :data:`trainer.selection.CHAINS`).
    ood_false_rejection : float
        Share of known spectra the out-of-distribution detector may call unknown (sets its threshold).
    response_corrected : bool
        The training spectra were corrected for their instrument's intensity response; the card says so
        (``intensity_response``) and a device must correct its own.
    resolution_cm1, source_resolution_cm1 : float, optional
        Resolution harmonisation (:mod:`device.inference.resolution`): the training spectra, recorded at
        ``source_resolution_cm1`` (FWHM of polystyrene's bands, cm-1), are broadened to ``resolution_cm1``
        before anything else, the card states it (``resolution``), and a device broadens its own spectra
        to it. Both or neither; the target at least as coarse as the source.

    Returns
    -------
    ModelBundle
    """
    t0 = time.perf_counter()
    out = Path(out)
    name = name or out.name
    if candidate is not None:
        log(f"model {candidate.name}")
    ds, example_files, splits = load_training_data(data, axis, examples, log, validation, seed, groups,
                                                   choosing=candidate is None or tune_hp)
    if resolution_cm1 is not None or source_resolution_cm1 is not None:
        ds = harmonised(ds, resolution_cm1, source_resolution_cm1, examples, log)
    for chain in [candidate.chain] if candidate is not None else chains or ():
        try:
            as_chain(chain, ds.axis)
        except ValueError as exc:
            raise DatasetError(f"--preprocess {chain}: {exc}") from None
    if candidate is not None:
        check_components(candidate, ds, splits)
    n_classes = len(ds.class_names)
    held = next((s for s in splits if s.spec.kind.startswith("holdout")), None)
    choices: dict = {}

    def chosen(rows: np.ndarray, s: int) -> tuple[Candidate, Selection | None]:
        """The candidate for training ``rows``: given, tuned or chosen on those rows only (once per rows)."""
        if candidate is not None and not tune_hp:
            return candidate, None
        key = rows.tobytes()
        if key not in choices:
            choices[key] = (tune(candidate, ds, rows, s, log) if tune_hp
                            else select(ds, rows, s, max_flop, augment, chains, log))
        return choices[key].winner, choices[key]

    calibration = splits[0].pairs[0] if splits else None  # the first held-out pair calibrates adaptive stops
    held_models: dict = {}

    def predict(tr, te, s):
        c, _ = chosen(tr, s)
        model = train(c, TrainingSpectra(ds.X[tr], ds.y[tr], ds.axis, s, c.augment), np.arange(tr.size),
                      n_classes, s, final=False)
        if calibration is not None and te is calibration[1]:
            held_models["calibration"] = model
        return model.predict(ds.X[te])

    choice_rows = held.pairs[0][0] if held else np.arange(ds.y.size)
    if candidate is None or tune_hp:
        log("choosing the model on the training spectra only" + (f" (those of {held.spec.text})" if held else ""))
        chosen(choice_rows, seed)
    fitted = "the choice of model and its weights" if candidate is None else (
        "the tuning and the weights" if tune_hp else "weights (and any scaler)")
    metrics = evaluate(predict, ds, splits, seed, fitted, log)
    cv = next((s for s in splits if not s.spec.kind.startswith("holdout")), None)
    if cv is not None and choices:  # name each fold's own choice, so that the card shows how it varied
        for fold, (tr, _) in zip(metrics["cross_validation"]["folds"], cv.pairs):
            fold["model"] = choices[tr.tobytes()].winner.name

    final, selection = chosen(choice_rows, seed)
    log(f"final fit of {final.name} on all {ds.y.size} spectra" + (" and a degraded copy of each" if final.augment
                                                                     else ""))
    trained = train(final, TrainingSpectra(ds.X, ds.y, ds.axis, seed, final.augment), np.arange(ds.y.size),
                    n_classes, seed, log)
    Z = trained.inputs(ds.X)
    net = trained.network
    tfl = (tflite_convnet_bytes(net, ds.axis.points) if isinstance(net, ConvNet)
           else tflite_bytes(net.layers, net.leaky_slope, Z.shape[1]))
    probs = net.probabilities(Z)
    check = export_check(trained.reference(ds.X), Z, probs, tfl, reference=trained.reference_name)
    log(f"export check passed: max |difference| {max(check['max_abs_difference'].values()):.2e} "
        f"on {check['spectra']} spectra ({check['tflite_runtime']})")
    metrics["training"] = {**trained.card.get("training", {}), "accuracy": float((probs.argmax(1) == ds.y).mean())}
    ood = fit_detector(ds.X, ds.y, n_classes, ood_false_rejection, seed, log)
    acquisition = stop_rule_card(ds, final, splits, held_models.get("calibration"), seed, log)
    example_files, examples_from = shipped_examples(example_files, ds, probs, ood, log)
    scope = (f"the training spectra of {held.spec.text} (the held-out spectra never seen); the winner then trained "
             "on all spectra" if held else "all spectra")
    how = (f"chosen by inner cross-validation among the family within {max_flop:.3g} FLOP (see selection)"
           if candidate is None else
           "learning rate and L2 by inner cross-validation over the grid in tuning; the rest given or defaults"
           if tune_hp else chosen_by or "given on the command line or raman-train defaults; not tuned")
    card = {
        **card_basics(ds, data, name, provenance, f"{final.name} trained on {Path(data).name}"),
        "preprocessing": preprocessing_card(trained, ds),
        "intensity_response": {"corrected": response_corrected, "meaning": (
            "trained on spectra corrected for their instrument's intensity response: a device must apply its own "
            "(spectrometer.response) before verdicts" if response_corrected else
            "trained on spectra as their instrument recorded them (response not corrected)")},
        "resolution": {"fwhm_cm1": resolution_cm1, "source_fwhm_cm1": source_resolution_cm1, "meaning": (
            f"training spectra broadened from {source_resolution_cm1:g} to {resolution_cm1:g} cm-1 (FWHM of "
            "polystyrene's bands): a device broadens its spectra to it from its own (spectrometer.resolution_cm1)"
            if resolution_cm1 is not None else "spectra at their instruments' own resolutions (not harmonised)")},
        "network": trained.card["network"],
        "hyperparameters": {**trained.card["hyperparameters"], "seed": seed, "chosen_by": how,
                            "augmentation": ("trainer.data.degrade.augment: one degraded copy of every training "
                                             "spectrum (SNR 5-300, background, shift, spikes, another instrument's "
                                             "response and resolution), made once"
                                             if final.augment and final.kind not in ("cnn", "resnet", "se-resnet")
                                             else "trainer.data.degrade.augment, fresh every step" if final.augment
                                             else "none")},
        **({"selection": selection.card(max_flop, scope)} if selection and not tune_hp else {}),
        **({"tuning": {"grid": TUNING_GRID, "inner_split": selection.inner_split, "scope": scope,
                       "results": selection.table}} if tune_hp else {}),
        "metrics": metrics,
        "out_of_distribution": {"target_false_unknown": ood_false_rejection, **card_entry(ood, ds.X, ds.y)},
        "examples_from": examples_from,
        "acquisition": acquisition,
        "flop_per_spectrum": device_flop(trained),
        "export_check": check,
        "training_seconds": round(time.perf_counter() - t0, 1),
        "software": software_versions(),
    }
    dense = not isinstance(net, ConvNet)
    bundle = write_bundle(out, ood=ood, name=name, class_names=ds.class_names, axis=ds.axis,
                          prominence=DEFAULT_PROMINENCE, standardizer=trained.standardizer,
                          layers=net.layers if dense else (), leaky_slope=net.leaky_slope if dense else 0.0,
                          convnet=None if dense else net, tflite=tfl, card=card, examples=example_files,
                          normalisation=trained.chain, input_layout=final.input_layout)
    log(f"wrote {out} ({bundle.model_id})")
    return bundle


def stop_rule_card(ds: Dataset, final: Candidate, splits: list, held_model, seed: int, log) -> dict:
    """The card's ``acquisition`` section: adaptive acquisition's stop rule, calibrated on held-out spectra.

    With validation splits, the first pair's held-out spectra and the model the report trained without them
    (``held_model``); without, the first fold of a stratified (grouped, with groups) 5-fold split and the final
    candidate trained on the rest. See :mod:`trainer.evaluation.stopping`.
    """
    if splits:
        (tr, te), text = splits[0].pairs[0], f"the held-out spectra of the first pair of {splits[0].spec.text}"
    else:
        grouped = ds.groups is not None
        folds = min(CALIBRATION_FOLDS, np.unique(ds.groups).size) if grouped else CALIBRATION_FOLDS
        spec = SplitSpec("group-kfold" if grouped else "kfold", folds=folds)
        tr, te = make_splits(spec, ds, seed).pairs[0]
        text = f"the held-out spectra of the first fold of {spec.text} (seed {seed})"
    model = held_model or train(final, TrainingSpectra(ds.X[tr], ds.y[tr], ds.axis, seed, final.augment),
                                np.arange(tr.size), len(ds.class_names), seed, final=False)
    card = calibrate(model.probabilities, ds.X[te], ds.y[te], ds.axis, seed, text)
    checked = card["checked"]
    log(f"adaptive stop rule {card['rule']} on {text}: {100 * checked['stopped_early']:.0f} % stopped early, "
        f"{checked['mean_scans']:.1f} of {card['calibration']['full_scans']} scans on average, error "
        f"{100 * checked['error']:.1f} % (full length {100 * checked['full_length_error']:.1f} %)")
    return card


def harmonised(ds: Dataset, target_cm1: float | None, source_cm1: float | None, examples, log) -> Dataset:
    """``ds`` with every spectrum broadened from the source resolution to the target (FWHM, cm-1).

    Raises
    ------
    DatasetError
        If only one of the two is given, the source is coarser than the target, or example files were given
        (they would be at the source's resolution).
    """
    if target_cm1 is None or source_cm1 is None:
        raise DatasetError("--resolution-cm1 and --source-resolution-cm1 go together: give the resolution to "
                           "train at and the FWHM of polystyrene's bands on the instrument that recorded the "
                           "training spectra (raman-device sst reports it)")
    if examples is not None:
        raise DatasetError("--examples with --resolution-cm1: the example files are at the source's resolution; "
                           "drop --examples and the bundle ships broadened training spectra")
    try:
        extra = harmonising_fwhm(source_cm1, target_cm1)
    except ValueError as exc:
        raise DatasetError(f"--source-resolution-cm1 {source_cm1:g}: {exc}; give a --resolution-cm1 of at least "
                           "the coarsest instrument's") from None
    log(f"training spectra broadened from {source_cm1:g} to {target_cm1:g} cm-1 (a Gaussian of {extra:.1f} cm-1)")
    return replace(ds, X=broaden(ds.X, ds.axis.values, extra) if extra > 0 else ds.X)


def check_components(candidate: Candidate, ds: Dataset, splits: list) -> None:
    """Refuse, before any training, more projection scores than the smallest training set allows.

    The training sets are all spectra and those of each pair of ``splits``, with their degraded copies.
    """
    if not candidate.projected:
        return
    sizes = {"all spectra": ds.y.size, **{f"a training set of {s.spec.option}": min(tr.size for tr, _ in s.pairs)
                                          for s in splits}}
    where = min(sizes, key=sizes.get)
    copies = AUGMENT_COPIES + 1 if candidate.augment else 1
    most = max_components(sizes[where] * copies, ds.axis.points)
    if candidate.settings.components > most:
        raise DatasetError(f"--components {candidate.settings.components} is more than {where} ({sizes[where]} "
                           f"spectra{' and as many degraded copies' if candidate.augment else ''}) can give: use "
                           f"--components {most} or fewer")


def preprocessing_card(trained, ds: Dataset) -> dict:
    """The ``preprocessing`` entry of the model card: resampling, chain, inputs, standardisation."""
    c, chain = trained.candidate, trained.chain
    std = trained.standardizer
    return {
        "resampling": "linear interpolation onto the axis; spectra that do not cover it are refused",
        "chain": chain.text, "steps": [step.description for step in chain.steps],
        "inputs": f"the {ds.axis.points} preprocessed intensities"
                  + (f", then {len(FEATURE_NAMES)} engineered features" if c.features else ""),
        **({"features": list(FEATURE_NAMES), "peak_prominence": f"{DEFAULT_PROMINENCE} x (max - min) of each spectrum"}
           if c.features else {}),
        "standardisation": ("none" if std is None else
                            "the feature columns, by the training spectra's mean and standard deviation; the "
                            "intensities not" if c.features and not c.standardised_intensities else
                            "per input column, mean and standard deviation of the training spectra"),
    }
