"""Choosing the model to ship: inner cross-validation over a small family, under a FLOP budget.

``raman-train fit DATA`` without a model option trains every member of :func:`family` whose device cost
is within ``--max-flop`` by inner cross-validation on the training spectra only (never a test or held-out
spectrum), grouped when the data carry groups and repeated when they are few, and ships the winner
trained on all training spectra. The family is fixed in advance, not tuned on any data set: the
preprocessing chains of chemometrics textbooks (SNV; Savitzky-Golay smoothing then SNV; a Savitzky-Golay
first derivative then SNV; an asymmetric-least-squares baseline removal then SNV), each in front of the
model kinds that won on public Raman data (multinomial logistic regression; a linear SVM, on the spectra
and on column-standardised spectra; PCA then logistic regression, likewise), the published compact
network, and the compact network on 30 PCA scores (with 32 hidden units, so that tens of classes pass
through its hidden layer).

Rule: each candidate is scored on every inner test fold as measured and degraded to SNR 10 and 5
(:func:`trainer.data.degrade.degrade`), since the device must also read weak spectra; the highest mean of
those accuracies wins; among equals, the one of fewest FLOP, then family order. The budget, not the rule,
bounds the device cost.
"""
from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from device.inference.spectrum import Axis
from trainer.data.dataset import Dataset, DatasetError
from trainer.data.degrade import degrade
from trainer.models import linear
from trainer.models.candidates import AUGMENT_COPIES, Candidate, ProjectedCompact, TrainingSpectra, train
from trainer.models.compact import Hyperparameters
from trainer.models.projection import DEFAULT_COMPONENTS, max_components

#: Device cost allowed per spectrum by default (FLOP).
MAX_FLOP = 1_000_000
#: Folds of the inner cross-validation (fewer when a class or the groups are fewer).
INNER_FOLDS = 5
#: Largest number of training spectra the inner cross-validation uses: a larger training set is
#: represented by a stratified random subset of this size (the winner is then trained on all).
INNER_MAX_SPECTRA = 1000
#: Fewest held-out predictions each candidate is scored on: a smaller training set repeats its inner
#: K-fold with new shuffles (at most :data:`INNER_MAX_REPEATS` times), so that which spectra share a fold
#: decides the choice less. A hundred spectra in 5 folds of 20 give each fold's accuracy a standard error of
#: about 5 points; 500 predictions give the mean about 1.
INNER_MIN_PREDICTIONS = 500
INNER_MAX_REPEATS = 10
#: The SNR levels at which every candidate is also scored (each inner test spectrum degraded by
#: :func:`trainer.data.degrade.degrade`): bands 10 and 5 times the noise, what a short or low-power field
#: acquisition gives, and the weak end of the range the training augmentation covers (5-300).
WEAK_SNR = (10.0, 5.0)
#: Inner-CV scores closer than this are equal (sums of the same fold counts in another order).
TIE = 1e-9
#: The preprocessing chains of the family (module docstring). Window and order in points.
CHAINS = ("snv", "savgol:11:2,snv", "savgol:11:2:1,snv", "asls:1e5:0.01,snv")
#: Hidden units of the family's compact network on PCA scores (the module docstring says 32).
PROJECTED_HIDDEN = 32


def family(axis: Axis, n_train: int, chains: tuple | None = None, augment: bool = True) -> list[Candidate]:
    """The candidates, in family order: every chain of ``chains`` (default :data:`CHAINS`) with each model kind.

    ``n_train`` (the fewest spectra an inner training fold has, degraded copies included) bounds the
    projection's components; ``augment`` is each candidate's (:class:`~trainer.models.candidates.Candidate`).
    """
    k = min(DEFAULT_COMPONENTS, max_components(n_train, axis.points))
    models = [("logreg", linear.LinearSettings("logreg")), ("linear-svm", linear.LinearSettings("linear-svm")),
              ("linear-svm", linear.LinearSettings("linear-svm", standardise=True)),
              ("pca-logreg", linear.LinearSettings("pca-logreg", components=k)),
              ("pca-logreg", linear.LinearSettings("pca-logreg", components=k, standardise=True)),
              ("compact", None),
              ("pca-compact", ProjectedCompact(k, Hyperparameters(hidden=PROJECTED_HIDDEN)))]
    return [Candidate(kind, chain, settings, augment=augment) for chain in chains or CHAINS
            for kind, settings in models]


@dataclass(frozen=True)
class InnerSplit:
    """The inner cross-validation of a selection.

    Attributes
    ----------
    pairs : list of (ndarray, ndarray)
        (train, test) row indices of the data set, ``repeats`` x ``folds`` of them.
    folds : int
        Folds of one repeat.
    repeats : int
    description : str
        In words, for the model card.
    """

    pairs: list
    folds: int
    repeats: int
    description: str


@dataclass(frozen=True)
class Selection:
    """The outcome of a selection.

    Attributes
    ----------
    winner : Candidate
    table : list of dict
        One row per candidate (family order): name, options, FLOP, within budget, inner-CV accuracy
        mean and std, mean accuracy at each of :data:`WEAK_SNR` (``{"snr10": ..., "snr5": ...}``), the
        rule's score (their mean with the accuracy), macro F1 mean (None when over budget), seconds.
    inner_split : str
        The inner cross-validation, in words.
    why : str
        Why the winner won, in words.
    """

    winner: Candidate
    table: list
    inner_split: str
    why: str

    def card(self, max_flop: float, scope: str) -> dict:
        """The ``selection`` entry of the model card."""
        return {"rule": __doc__.split("\n\n")[2].replace("\n", " ").strip().removeprefix("Rule: "),
                "max_flop": max_flop, "inner_split": self.inner_split, "scope": scope, "winner": self.winner.name,
                "winner_options": self.winner.options, "why": self.why, "family": __doc__.split("\n\n")[1]
                .replace("\n", " "), "candidates": self.table}


def inner_split(ds: Dataset, rows: np.ndarray, seed: int) -> InnerSplit:
    """The inner cross-validation of training ``rows``.

    Grouped (stratified group K-fold, a class of one group dealt into shares by :func:`lone_class_shares`)
    when ``ds`` has groups, else stratified K-fold; K is :data:`INNER_FOLDS`, or fewer if there are fewer
    groups or spectra in the smallest class. A training set of more than :data:`INNER_MAX_SPECTRA` spectra
    is subsampled first (stratified); one of fewer than :data:`INNER_MIN_PREDICTIONS` is cross-validated
    repeatedly, repeat r shuffled with seed + r (not when every group is a fold of its own: a repeat would
    be the same folds).

    Raises
    ------
    DatasetError
        Fewer than 2 spectra in a class, or fewer than 2 groups.
    """
    from sklearn.model_selection import StratifiedGroupKFold, StratifiedKFold, train_test_split

    rows = np.asarray(rows)
    note = ""
    if rows.size > INNER_MAX_SPECTRA:
        rows, _ = train_test_split(rows, train_size=INNER_MAX_SPECTRA, stratify=ds.y[rows], random_state=seed)
        rows = np.sort(rows)
        note = f" of a stratified random {INNER_MAX_SPECTRA} of the training spectra"
    y = ds.y[rows]
    counts = np.bincount(y, minlength=len(ds.class_names))
    present = counts[counts > 0]
    if present.min() < 2:
        c = ds.class_names[int(np.flatnonzero(counts == present.min())[0])]
        raise DatasetError(f"choosing a model needs at least 2 training spectra per class, {c} has "
                           f"{present.min()}: add spectra, or give --model to train one kind without a choice")
    repeats = int(np.clip(-(-INNER_MIN_PREDICTIONS // rows.size), 1, INNER_MAX_REPEATS))
    if ds.groups is not None:
        n_groups = np.unique(ds.groups[rows]).size
        if n_groups < 2:
            raise DatasetError(f"choosing a model by grouped cross-validation needs at least 2 groups among the "
                               f"training spectra; {ds.group_source} gives {n_groups}: give --model, or other --groups")
        k = min(INNER_FOLDS, n_groups)
        repeats = 1 if k == n_groups else repeats
        import warnings

        pairs = []
        for r in range(repeats):
            groups = lone_class_shares(ds.groups[rows], y, INNER_FOLDS, seed + r)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", UserWarning)
                pairs += StratifiedGroupKFold(k, shuffle=True, random_state=seed + r).split(rows, y, groups)
        what = f"stratified group {k}-fold cross-validation by {ds.group_source}{note}"
    else:
        k = int(min(INNER_FOLDS, present.min()))
        pairs = [p for r in range(repeats)
                 for p in StratifiedKFold(k, shuffle=True, random_state=seed + r).split(rows, y)]
        what = f"stratified {k}-fold cross-validation{note}"
    seeds = f"repeated {repeats} times with a new shuffle (seeds {seed}-{seed + repeats - 1})" if repeats > 1 \
        else f"(seed {seed})"
    return InnerSplit([(rows[tr], rows[te]) for tr, te in pairs], k, repeats, f"{what} {seeds}")


def lone_class_shares(groups: np.ndarray, y: np.ndarray, k: int, seed: int) -> np.ndarray:
    """Groups for a grouped K-fold in which a class whose spectra all share one group is still in every fold.

    A control measured once (all its spectra in one group, e.g. one concentration, 0) would otherwise be
    missing from training whenever its group is tested. Its spectra are dealt at random into ``k`` shares,
    each a group of its own, as a hold-out by key gives such classes the same share at random
    (:func:`trainer.data.splits.holdout_split`); the other classes keep their groups.

    Parameters
    ----------
    groups : ndarray of str, shape (n,)
    y : ndarray of int, shape (n,)
    k : int
        Folds.
    seed : int

    Returns
    -------
    ndarray of str, shape (n,)
    """
    out = np.asarray(groups).astype(str).astype(object)
    rng = np.random.default_rng(seed)
    for c in np.unique(y):
        rows = np.flatnonzero(y == c)
        if np.unique(out[rows]).size == 1 and rows.size >= k:
            share = rng.permutation(rows.size) % k
            out[rows] = [f"{g}#{i}" for g, i in zip(out[rows], share)]
    return out.astype(str)


def weak_tests(ds: Dataset, inner: InnerSplit, seed: int) -> list:
    """The test spectra of every inner pair degraded to each of :data:`WEAK_SNR`, drawn once.

    Seeded ``[seed, pair]``, so that every candidate is scored on the same weak spectra.

    Returns
    -------
    list of list of ndarray
        ``[pair][level]``, each of shape (len(test), points) on the data's axis.
    """
    out = []
    for i, (_, te) in enumerate(inner.pairs):
        rng = np.random.default_rng([seed, i])
        out.append([degrade(ds.X[te], ds.axis.values, s, rng) for s in WEAK_SNR])
    return out


def score(candidates: list, ds: Dataset, inner: InnerSplit, seed: int, max_flop: float = MAX_FLOP,
          log=print) -> list:
    """Cross-validation of each candidate within ``max_flop`` over the pairs of ``inner`` (:func:`inner_split`).

    Returns
    -------
    list of dict
        One row per candidate, in order (see :class:`Selection`).
    """
    from trainer.evaluation.metrics import classification_report

    n_classes = len(ds.class_names)
    used = np.unique(np.concatenate([np.concatenate(p) for p in inner.pairs]))
    spectra = TrainingSpectra(ds.X[used], ds.y[used], ds.axis, seed, any(c.augment for c in candidates))
    weak = weak_tests(ds, inner, seed)
    log(f"{len(candidates)} candidates, scored by {inner.description}; device cost at most {max_flop:.3g} FLOP")
    table = []
    for c in candidates:
        flop = c.flop(ds.axis, n_classes)
        row = {"name": c.name, "options": c.options, "flop": flop, "within_budget": flop <= max_flop,
               "cv_score_mean": None, "cv_accuracy_mean": None, "cv_accuracy_std": None,
               "cv_weak_accuracy_mean": None, "cv_macro_f1_mean": None}
        table.append(row)
        if flop > max_flop:
            log(f"  {c.name}: {flop:,} FLOP, over the budget: not trained")
            continue
        t0 = time.perf_counter()
        acc, f1, at_snr = [], [], []
        for i, (tr, te) in enumerate(inner.pairs):
            model = train(c, spectra, np.searchsorted(used, tr), n_classes, seed + i, final=False)
            rep = classification_report(ds.y[te], model.predict(ds.X[te]), ds.class_names)
            acc.append(rep["accuracy"])
            f1.append(rep["macro_f1"])
            at_snr.append([np.mean(model.predict(X) == ds.y[te]) for X in weak[i]])
        weak_mean = np.mean(at_snr, axis=0)
        row.update(cv_score_mean=float(np.mean([np.mean(acc), *weak_mean])), cv_accuracy_mean=float(np.mean(acc)),
                   cv_accuracy_std=float(np.std(acc)),
                   cv_weak_accuracy_mean={f"snr{s:g}": float(a) for s, a in zip(WEAK_SNR, weak_mean)},
                   cv_macro_f1_mean=float(np.mean(f1)), seconds=round(time.perf_counter() - t0, 1))
        at = ", ".join(f"{s:g} {a:.4f}" for s, a in zip(WEAK_SNR, weak_mean))
        log(f"  {c.name}: inner-CV accuracy {np.mean(acc):.4f} +/- {np.std(acc):.4f}, at SNR {at}; {flop:,} FLOP "
            f"({row['seconds']} s)")
    return table


def select(ds: Dataset, rows: np.ndarray, seed: int, max_flop: float = MAX_FLOP, augment: bool = True,
           chains: tuple | None = None, log=print) -> Selection:
    """Choose a member of :func:`family` (of ``chains``) by inner cross-validation on training ``rows`` of ``ds``.

    Raises
    ------
    DatasetError
        No candidate is within ``max_flop``, or the training rows cannot be cross-validated.
    """
    n_classes = len(ds.class_names)
    inner = inner_split(ds, rows, seed)
    smallest = min(tr.size for tr, _ in inner.pairs) * (AUGMENT_COPIES + 1 if augment else 1)
    candidates = family(ds.axis, smallest, chains, augment)
    cheapest = min(c.flop(ds.axis, n_classes) for c in candidates)
    if cheapest > max_flop:
        raise DatasetError(f"no candidate model is within --max-flop {max_flop:g}; the cheapest needs {cheapest:,} "
                           f"FLOP per spectrum: raise --max-flop to at least {cheapest}, or give --model")
    table = score(candidates, ds, inner, seed, max_flop, log)
    scored = [(c, r) for c, r in zip(candidates, table) if r["cv_score_mean"] is not None]
    winner, why = choose(scored)
    log(f"chosen: {winner.name} ({why})")
    return Selection(winner, table, inner.description, why)


def choose(scored: list) -> tuple[Candidate, str]:
    """The candidate of highest inner-CV score among ``scored`` (candidate, table row) pairs, and why.

    The score is the mean of the accuracies on the test spectra and on them degraded to each SNR level; among
    equals, the fewest FLOP wins (then family order).
    """
    top = max(r["cv_score_mean"] for _, r in scored)
    equal = [(c, r) for c, r in scored if r["cv_score_mean"] >= top - TIE]
    c, r = min(equal, key=lambda cr: cr[1]["flop"])  # first of equals: family order
    weak = ", ".join(f"SNR {k[3:]} {v:.4f}" for k, v in r["cv_weak_accuracy_mean"].items())
    why = f"highest inner-CV score, {top:.4f} (accuracy {r['cv_accuracy_mean']:.4f} on the test spectra; {weak})"
    if len(equal) > 1:
        others = ", ".join(o.name for o, _ in equal if o is not c)
        why += f", shared with {others}: the fewest FLOP ({r['flop']:,}) of those"
    return c, why
