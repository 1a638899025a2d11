"""Fitting the out-of-distribution detector (:mod:`device.inference.ood`), and its leave-one-class-out evaluation."""
from __future__ import annotations

import time
from dataclasses import replace

import numpy as np

from device.inference.features import DEFAULT_PROMINENCE
from device.inference.inputs import normalise, raw_inputs
from device.inference.network import forward
from device.inference.ood import OODDetector
from device.inference.verdict import UNCERTAIN, UNKNOWN, is_unknown, verdict
from trainer.data.dataset import Dataset, DatasetError
from trainer.data.splits import SplitSpec, make_splits, pair_groups, stratified_folds
from trainer.models.compact import Hyperparameters, fit_compact

#: Principal components of the detector (fewer when the data has fewer spectra, see :func:`components_for`).
COMPONENTS = 20
#: Default share of known spectra that may be called unknown.
FALSE_REJECTION = 0.01
#: Folds whose held-out scores set the threshold (fewer when a class has fewer spectra).
THRESHOLD_FOLDS = 5
#: Fewest spectra per class: at least two folds of held-out scores, each fitted on two spectra per class.
MIN_PER_CLASS = 3
#: A threshold this many times the median score of the training spectra (about 2) or more separates
#: nothing. Fitted detectors put it at 3-100 times (11-21 on the real microplastics and SERS sets, up to
#: ~100 on 3 classes of 3-5 spectra); a covariance estimated from too few spectra put it at 10^13-10^15.
MEANINGLESS_RATIO = 1e3
#: Default split of the known classes in :func:`leave_one_class_out`.
LEAVE_OUT_SPLIT = SplitSpec("holdout-fraction", fraction=0.2)
#: Default hyperparameters of the compact network in :func:`leave_one_class_out`.
LEAVE_OUT_HYPERPARAMETERS = Hyperparameters()


def components_for(n_train: int, n_classes: int, points: int) -> int:
    """Principal components a detector fitted on ``n_train`` spectra can estimate.

    The pooled within-class covariance of k scores has ``n_train - n_classes`` degrees of freedom; with
    fewer than about two per dimension it is nearly singular and the Mahalanobis distances of new spectra
    explode. So k = min(:data:`COMPONENTS`, (n_train - n_classes) // 2, points), at least 1.
    """
    return int(max(1, min(COMPONENTS, (n_train - n_classes) // 2, points)))


def principal_axes(Xc: np.ndarray, k: int) -> np.ndarray:
    """The first ``k`` principal axes (k, points) of centred rows ``Xc`` (n, points), largest variance first.

    With more rows than points, from the eigenvectors of ``Xc' Xc`` (points x points: a few times faster
    than the SVD of a tall matrix, and as accurate for the leading axes); else from the SVD.
    """
    n, points = Xc.shape
    if n > points:
        return np.linalg.eigh(Xc.T @ Xc)[1][:, ::-1][:, :k].T
    return np.linalg.svd(Xc, full_matrices=False)[2][:k]


def _fit(Y: np.ndarray, y: np.ndarray, n_classes: int, k: int) -> OODDetector:
    X = normalise(Y, "snv")
    mean = X.mean(axis=0)
    Xc = X - mean
    components = principal_axes(Xc, k)
    T = Xc @ components.T
    class_means = np.stack([T[y == c].mean(axis=0) for c in range(n_classes)])
    within = T - class_means[y]
    cov = within.T @ within / max(len(y) - n_classes, 1)
    cov += 1e-6 * np.trace(cov) / k * np.eye(k)  # a ridge keeps it invertible when a direction is empty
    residual = np.einsum("ij,ij->i", Xc, Xc) - np.einsum("ij,ij->i", T, T)
    return OODDetector(mean, components, class_means, np.linalg.inv(cov), float(max(residual.mean(), 1e-12)),
                       np.inf, 0.0)


def threshold_folds(y: np.ndarray) -> int:
    """Folds of held-out scores for labels ``y``: :data:`THRESHOLD_FOLDS`, or the smallest class's size."""
    return int(min(THRESHOLD_FOLDS, np.bincount(y).min()))


def fit_detector(Y: np.ndarray, y: np.ndarray, n_classes: int, false_rejection: float = FALSE_REJECTION,
                 seed: int = 0, log=None) -> OODDetector:
    """The detector of spectra ``Y`` (n, points) with labels ``y``, its threshold set on held-out scores.

    Each spectrum is scored by a detector fitted without it (stratified K-fold); the threshold is the
    (1 - ``false_rejection``) quantile of those scores. The returned detector is fitted on all spectra,
    with as many components as the smallest training fold supports (:func:`components_for`), so that
    the scores which set the threshold come from detectors of the same size. ``log``, if given, gets the
    threshold and, when it is meaningless, a warning (:func:`threshold_warning`).

    Raises
    ------
    DatasetError
        If a class has fewer than :data:`MIN_PER_CLASS` spectra.
    """
    counts = np.bincount(y, minlength=n_classes)
    if counts.min() < MIN_PER_CLASS:
        raise DatasetError(f"the unknown-sample detector needs at least {MIN_PER_CLASS} spectra per class; "
                           f"class {int(counts.argmin())} has {int(counts.min())}")
    splits = stratified_folds(y, threshold_folds(y), seed)
    k = components_for(min(len(tr) for tr, _ in splits), n_classes, Y.shape[1])
    held = np.empty(len(y))
    for tr, te in splits:
        held[te] = _fit(Y[tr], y[tr], n_classes, k).scores(Y[te])
    threshold = float(np.quantile(held, 1.0 - false_rejection, method="higher"))
    d = _fit(Y, y, n_classes, k)
    d = OODDetector(d.mean, d.components, d.class_means, d.precision, d.residual_scale, threshold,
                    float(is_unknown(held, threshold).mean()))
    if log:
        log(f"out-of-distribution threshold {d.threshold:.4g} ({100 * d.false_rejection:.1f} % of held-out known "
            f"spectra above it; {k} components, {len(splits)} folds)")
        problem = threshold_warning(d, Y)
        if problem:
            log(f"warning: {problem}")
    return d


def threshold_warning(detector: OODDetector, Y: np.ndarray) -> str | None:
    """Why the detector's threshold separates nothing, judged on its training spectra ``Y``; None when sound.

    A threshold that is not finite, or :data:`MEANINGLESS_RATIO` times the median score of the training
    spectra or more, would let through anything: the detector had too few spectra to be estimated.
    """
    typical = float(np.median(detector.scores(Y)))
    if np.isfinite(detector.threshold) and detector.threshold < MEANINGLESS_RATIO * max(typical, 1e-12):
        return None
    ratio = detector.threshold / max(typical, 1e-12)
    return (f"the unknown-sample threshold {detector.threshold:.3g} is meaningless: {ratio:.3g} times the typical "
            f"score of the training spectra ({typical:.3g}; fitted detectors sit at 3-100 times), so it cannot "
            "tell unknown samples from known ones: add spectra before relying on 'unknown'")


def card_entry(detector: OODDetector, Y: np.ndarray, y: np.ndarray) -> dict:
    """The model card's description of a detector fitted on spectra ``Y`` (n, points) with labels ``y``."""
    entry = {"method": "min over classes of the Mahalanobis distance in the first "
                       f"{detector.components.shape[0]} principal components of the SNV spectra (over k) + the "
                       "residual energy outside them (over its training mean); see device/inference/ood.py",
             "threshold": detector.threshold,
             "threshold_from": f"the (1 - target) quantile of held-out scores ({threshold_folds(y)}-fold, "
                               f"{len(y)} spectra)",
             "held_out_false_unknown": detector.false_rejection}
    problem = threshold_warning(detector, Y)
    return {**entry, "warning": problem} if problem else entry


def verdicts(fitted, detector: OODDetector, X: np.ndarray, axis, hp: Hyperparameters,
             min_confidence: float) -> list:
    """The verdicts (:func:`device.inference.verdict.verdict`) on spectra ``X`` (n, points) on ``axis``.

    ``fitted`` is the compact network (:func:`trainer.models.compact.fit_compact`), ``detector`` its
    unknown-sample detector; each verdict is a class index, :data:`UNKNOWN` or :data:`UNCERTAIN`.
    """
    p = forward(fitted.standardizer.transform(raw_inputs(X, axis, DEFAULT_PROMINENCE, "snv")), fitted.layers,
                hp.leaky_slope)
    unknown = is_unknown(detector.scores(X), detector.threshold)
    return [verdict(int(k), float(c), bool(u), min_confidence)
            for k, c, u in zip(p.argmax(axis=1), p.max(axis=1), unknown)]


def leave_one_class_out(ds: Dataset, split: SplitSpec | None = None, hp: Hyperparameters | None = None,
                        min_confidence: float = 0.8, false_rejection: float = FALSE_REJECTION, seed: int = 0,
                        log=print) -> dict:
    """For each class: train the compact network and the detector without it, then classify.

    Verdicts follow the device's rule (:func:`device.inference.verdict.verdict`).

    The known classes' spectra are split by ``split`` (:func:`trainer.data.splits.make_splits`, on the data
    without the left-out class); for every pair the model and detector are fitted on its training side.
    Reported per left-out class, over all pairs: how many of its spectra come back ``unknown``,
    ``uncertain`` (below ``min_confidence``) or wrongly labelled as a known class; and on the held-out
    known spectra, the share called ``unknown`` (false unknown) and the accuracy of the rest. Every
    split is checked on every left-out class before anything is trained. ``split`` defaults to holding out
    a fifth, ``hp`` to the default hyperparameters.
    """
    split = SplitSpec("holdout-fraction", fraction=0.2) if split is None else split
    hp = Hyperparameters() if hp is None else hp
    t0 = time.perf_counter()
    known_sets = []
    for left in range(len(ds.class_names)):
        known = np.flatnonzero(ds.y != left)
        remap = {c: i for i, c in enumerate(c for c in range(len(ds.class_names)) if c != left)}
        sub = replace(ds.subset(known), y=np.array([remap[c] for c in ds.y[known]]),
                      class_names=tuple(n for c, n in enumerate(ds.class_names) if c != left))
        try:
            known_sets.append((left, known, sub, make_splits(split, sub, seed)))
        except DatasetError as exc:
            raise DatasetError(f"without class {ds.class_names[left]}: {exc}") from None
    warning = next((s.warning for *_, s in known_sets if s.warning), None)
    if warning:
        log(f"warning: {warning}")
    rows, description = [], ""
    for left, known, sub, splits in known_sets:
        description = splits.description
        yk, n_known = sub.y, len(sub.class_names)
        novel = np.flatnonzero(ds.y == left)
        counts = {"unknown": 0, "uncertain": 0, "novel": 0, "known": 0, "false_unknown": 0, "decided": 0,
                  "right": 0}
        thresholds, components, pairs = [], [], []
        for tr, te in splits.pairs:
            train = known[tr]
            pairs.append({"train_spectra": int(tr.size), "test_spectra": int(te.size),
                          **pair_groups(ds, train, known[te])})
            R = raw_inputs(ds.X[train], ds.axis, DEFAULT_PROMINENCE, "snv")
            fitted = fit_compact(R, yk[tr], n_known, hp, seed)
            detector = fit_detector(ds.X[train], yk[tr], n_known, false_rejection, seed)
            novel_verdicts, known_verdicts = (verdicts(fitted, detector, ds.X[rows], ds.axis, hp, min_confidence)
                                              for rows in (novel, known[te]))
            decided = [(v, int(t)) for v, t in zip(known_verdicts, yk[te]) if v not in (UNKNOWN, UNCERTAIN)]
            counts["unknown"] += novel_verdicts.count(UNKNOWN)
            counts["uncertain"] += novel_verdicts.count(UNCERTAIN)
            counts["novel"] += novel.size
            counts["known"] += te.size
            counts["false_unknown"] += known_verdicts.count(UNKNOWN)
            counts["decided"] += len(decided)
            counts["right"] += sum(v == t for v, t in decided)
            thresholds.append(detector.threshold)
            components.append(int(detector.components.shape[0]))
        row = {"left_out": ds.class_names[left], "spectra": int(novel.size),
               "unknown": counts["unknown"] / counts["novel"], "uncertain": counts["uncertain"] / counts["novel"],
               "wrongly_labelled": 1 - (counts["unknown"] + counts["uncertain"]) / counts["novel"],
               "known_test_spectra": counts["known"], "false_unknown": counts["false_unknown"] / counts["known"],
               "known_accuracy_of_decided": counts["right"] / counts["decided"] if counts["decided"] else None,
               "pairs": pairs, "threshold": float(np.median(thresholds)),
               "components": int(np.median(components))}
        rows.append(row)
        log(f"without {row['left_out']}: {100 * row['unknown']:.1f} % unknown, {100 * row['uncertain']:.1f} % "
            f"uncertain, {100 * row['wrongly_labelled']:.1f} % wrongly labelled; false unknown on known "
            f"{100 * row['false_unknown']:.1f} %")
    return {"protocol": f"leave one class out; known classes split by {description} (--split {split.text}; "
                        f"every pair counted); compact network (SNV, defaults) + detector with "
                        f"{false_rejection:.0%} target false rejection; uncertain below confidence {min_confidence}",
            "split": split.text, "warning": warning, "rows": rows, "seconds": round(time.perf_counter() - t0, 1)}


def markdown_table(result: dict) -> str:
    """The leave-one-class-out rows as a Markdown table (percentages)."""
    lines = ["| class left out | its spectra | unknown | uncertain | wrongly labelled | known test spectra | "
             "false unknown | accuracy of decided known |", "|---|---|---|---|---|---|---|---|"]
    for r in result["rows"]:
        acc = "-" if r["known_accuracy_of_decided"] is None else f"{100 * r['known_accuracy_of_decided']:.1f} %"
        lines.append(f"| {r['left_out']} | {r['spectra']} | {100 * r['unknown']:.1f} % | "
                     f"{100 * r['uncertain']:.1f} % | {100 * r['wrongly_labelled']:.1f} % | "
                     f"{r['known_test_spectra']} | {100 * r['false_unknown']:.1f} % | {acc} |")
    return "\n".join(lines)


def refit_detector(bundle_dir, data, false_rejection: float = FALSE_REJECTION, seed: int = 0, log=print):
    """Fit (or refit) the detector of an existing bundle on its training data, keeping its network as it is.

    The data are read onto the bundle's axis and must have the bundle's classes in its order. The bundle is
    rewritten whole (a new model id, since ``model.npz`` changes); its card records the detector.
    """
    from datetime import datetime, timezone
    from pathlib import Path

    from device.inference.bundle import load_bundle, write_bundle
    from trainer.data.dataset import load_dataset

    b = load_bundle(bundle_dir)
    ds = load_dataset(data, b.axis, log=log)
    if tuple(ds.class_names) != tuple(b.class_names):
        raise DatasetError(f"{data} has the classes {list(ds.class_names)}, the bundle {list(b.class_names)}: "
                           "give the data the model was trained on")
    ood = fit_detector(ds.X, ds.y, len(ds.class_names), false_rejection, seed, log)
    card = {k: v for k, v in b.card.items() if k not in ("schema_version", "id", "files", "examples")}
    card["out_of_distribution"] = {
        "target_false_unknown": false_rejection, **card_entry(ood, ds.X, ds.y),
        "fitted": f"by raman-train detector on {Path(data).name} ({ds.fingerprint[:12]}), "
                  f"{datetime.now(timezone.utc).date().isoformat()}, for the network of {b.model_id}"}
    examples = [(p.relative_to(b.path / "examples").as_posix(), p.read_bytes(), label) for p, label in b.examples]
    return write_bundle(b.path, name=b.name, class_names=b.class_names, axis=b.axis, tflite=b.tflite_path.read_bytes(),
                        card=card, prominence=b.prominence, standardizer=b.standardizer, layers=b.layers,
                        leaky_slope=b.leaky_slope, convnet=b.convnet, ood=ood, examples=examples,
                        normalisation=b.normalisation, input_layout=b.input_layout)
