"""The published evaluation protocol: stratified K-fold cross-validation repeated with new shuffles.

The same training and report run under any split of :mod:`trainer.data.splits` (group K-fold, leave one
group out, a hold-out); the published one is ``repeated:10x15``.

Every fold re-initialises the weights and fits its standardisation on its own training rows only;
fold f of repeat r trains exactly as :func:`trainer.models.compact.fit_compact` with seed
:func:`trainer.models.compact.pair_seed` ``(seed, r, f)``.
Two engines run the same computation: ``vectorized`` trains all folds of a repeat at once
(:mod:`trainer.models.stacked`), ``naive`` trains one Keras model per fold, the reference. Given the same
seed they start from the same weights and see the same batches, so their results agree to float
precision; only their speed differs.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from device.inference.features import DEFAULT_PROMINENCE, FEATURE_NAMES
from device.inference.inputs import Standardizer, raw_inputs
from trainer.data.dataset import Dataset, DatasetError
from trainer.data.splits import Splits, SplitSpec, make_splits, pair_groups
from trainer.evaluation.metrics import classification_report, one_vs_rest_auc
from trainer.models import stacked
from trainer.models.compact import Hyperparameters, pair_seed, stream_seeds

ENGINES = ("vectorized", "naive")
#: Folds of the published protocol.
PUBLISHED_FOLDS = 15


def choose_folds(ds: Dataset, requested: int | None = None, grouped: bool = False) -> tuple[int, str]:
    """K of the stratified (``grouped``: stratified group) K-fold for ``ds``, and why, for the report.

    Without ``requested``: the published :data:`PUBLISHED_FOLDS` when every class has that many spectra,
    else the size of the smallest class (the largest K that tests every class in every fold). Grouped,
    K is also at most the number of groups.

    Raises
    ------
    DatasetError
        A ``requested`` K below 2 or above the smallest class's size, or a class of one spectrum.
    """
    counts = ds.counts()
    smallest_class = min(counts, key=counts.get)
    smallest = counts[smallest_class]
    if requested is not None:
        if not 2 <= requested <= smallest:
            raise DatasetError(f"--folds {requested}: K-fold needs 2 <= K <= the size of the smallest class "
                               f"({smallest_class}, {smallest} spectra)")
        return requested, f"{requested}-fold as requested"
    if grouped:
        n_groups = np.unique(ds.groups).size
        if n_groups < min(smallest, PUBLISHED_FOLDS):
            if n_groups < 2:
                raise DatasetError(f"a grouped split needs at least 2 groups; the data have {n_groups} "
                                   f"({ds.group_source})")
            return n_groups, (f"{n_groups}-fold, not the published {PUBLISHED_FOLDS}: the data have {n_groups} "
                              f"groups ({ds.group_source})")
    if smallest >= PUBLISHED_FOLDS:
        return PUBLISHED_FOLDS, f"{PUBLISHED_FOLDS}-fold, as the published protocol"
    if smallest < 2:
        raise DatasetError(f"cross-validation needs at least 2 spectra per class; {smallest_class} has {smallest}")
    return smallest, (f"{smallest}-fold, not the published {PUBLISHED_FOLDS}: the smallest class ({smallest_class}) "
                      f"has {smallest} spectra")


@dataclass(frozen=True)
class Settings:
    """What :func:`run` does; the defaults are the published protocol's."""

    folds: int = PUBLISHED_FOLDS
    repeats: int = 10
    seed: int = 0
    hp: Hyperparameters = field(default_factory=Hyperparameters)
    engine: str = "vectorized"
    band_width_cm: float = 20.0  # spectral bands of the permutation importance
    permutations: int = 3  # shuffles per group and fold in the permutation importance
    normalisation: str = "snv"  # per-spectrum, before the features; "none" as the published method

    @property
    def split(self) -> SplitSpec:
        """The repeated stratified K-fold of ``folds`` and ``repeats``, the split when none is given."""
        return SplitSpec("kfold", folds=self.folds, repeats=self.repeats)


def train_naive(R, y, mean, scale, init: stacked.StackedWeights, index, valid, hp: Hyperparameters, val_rows,
                progress=None):
    """The reference: one Keras model per fold, from the same weights and with the same batches.

    Same signature and results as :func:`trainer.models.stacked.train`.
    """
    from trainer.models.compact import build_keras

    epochs, steps, F, B = index.shape
    C = init.W2.shape[2]
    W = [[], [], [], []]
    train_loss, val_loss = np.zeros((epochs, F)), np.zeros((epochs, F))
    for f in range(F):
        keras_model = build_keras(R.shape[1], C, hp, seed=0)
        keras_model.set_weights([p.astype(np.float32) for p in init.fold(f)])
        Z = ((R - mean[f]) / scale[f]).astype(np.float32)
        for e in range(epochs):
            rows = index[e, :, f][valid[e, :, f]]
            hist = keras_model.fit(Z[rows], y[rows], batch_size=B, epochs=1, shuffle=False, verbose=0)
            train_loss[e, f] = hist.history["loss"][0]
            val_loss[e, f] = keras_model.evaluate(Z[val_rows[f]], y[val_rows[f]], verbose=0,
                                                  batch_size=4096)[0]
        for k, p in enumerate(keras_model.get_weights()):
            W[k].append(p.astype(np.float64))
        if progress:
            progress(f + 1)
    return stacked.StackedWeights(*(np.array(w) for w in W)), train_loss, val_loss


def _groups(points: int, step: float, band_width_cm: float) -> tuple[list, list]:
    """Input column groups of the permutation importance: each engineered feature, then bands."""
    per_band = max(1, int(round(band_width_cm / step)))
    features = [[points + k] for k in range(len(FEATURE_NAMES))]
    bands = [list(range(a, min(a + per_band, points))) for a in range(0, points, per_band)]
    return features, bands


def permutation_importance(Z: np.ndarray, y: np.ndarray, weights: tuple, slope: float, groups: list,
                           permutations: int, rng) -> np.ndarray:
    """Mean increase of cross-entropy when each group of columns is shuffled across rows.

    Z (n, D) are one fold's standardised test inputs and ``weights`` its (W1, b1, W2, b2). The first
    layer is linear, so shuffling a group only adds ``(Z[perm, cols] - Z[:, cols]) @ W1[cols]`` to the
    hidden pre-activations: no shuffled copy of the inputs is ever made. Returns shape (len(groups),).
    """
    W1, b1, W2, b2 = weights
    A1 = Z @ W1 + b1

    def loss(A):  # A (..., n, H) hidden pre-activations
        logits = np.where(A >= 0, A, slope * A) @ W2 + b2
        logits = logits - logits.max(axis=-1, keepdims=True)
        logp = logits - np.log(np.exp(logits).sum(axis=-1, keepdims=True))
        return -np.take_along_axis(logp, np.broadcast_to(y[:, None], logp.shape[:-1] + (1,)), -1)[..., 0].mean(-1)

    base = loss(A1)
    out = np.zeros(len(groups))
    for _ in range(permutations):
        Zp = Z[rng.permutation(Z.shape[0])]
        shifted = np.stack([A1 + (Zp[:, cols] - Z[:, cols]) @ W1[cols] for cols in groups])
        out += loss(shifted) - base
    return out / permutations


def run(ds: Dataset, settings: Settings, splits: Splits | None = None, log=print) -> dict:
    """Run the protocol on a data set: train and test every pair of ``splits``, the folds of a repeat at once.

    ``splits`` defaults to :attr:`Settings.split` on ``ds``. A repeat's accuracy is over the spectra it
    tests (all of them in a K-fold; the test side of a hold-out).

    Returns
    -------
    dict
        The split's description and warning, per fold and per repeat metrics, pooled per-class metrics,
        AUC, confusion matrix, loss curves, permutation importance and timing (see :mod:`trainer.evaluation.report`).
    """
    if settings.engine not in ENGINES:
        raise ValueError(f"engine must be one of {ENGINES}")
    t0 = time.perf_counter()
    splits = splits or make_splits(settings.split, ds, settings.seed)
    hp = settings.hp
    n_classes = len(ds.class_names)
    R = raw_inputs(ds.X, ds.axis, DEFAULT_PROMINENCE, settings.normalisation)
    feat_groups, band_groups = _groups(ds.axis.points, ds.axis.step, settings.band_width_cm)
    groups = feat_groups + band_groups
    rng = np.random.default_rng([settings.seed, 7])
    folds_out, repeats_out = [], []
    pooled_true, pooled_prob = [], []
    train_curves, val_curves, importance = [], [], []
    engine = stacked.train if settings.engine == "vectorized" else train_naive
    for r, pairs in enumerate(splits.repeats):
        train_rows = [tr for tr, _ in pairs]
        test_rows = [te for _, te in pairs]
        scalers = [Standardizer.fit(R[tr]) for tr in train_rows]
        mean = np.array([s.mean for s in scalers])
        scale = np.array([s.scale for s in scalers])
        init_seeds, order_seeds = zip(*(stream_seeds(pair_seed(settings.seed, r, f)) for f in range(len(pairs))))
        init = stacked.glorot_init(init_seeds, R.shape[1], hp.hidden, n_classes)
        index, valid = stacked.batch_orders(train_rows, hp.epochs, hp.batch_size, order_seeds)
        w, tl, vl = engine(R, ds.y, mean, scale, init, index, valid, hp, val_rows=test_rows)
        probs = stacked.predict(R, test_rows, mean, scale, w, hp.leaky_slope)
        oof = np.zeros((len(ds.y), n_classes))
        tested = np.zeros(len(ds.y), bool)
        for f, (te, p) in enumerate(zip(test_rows, probs)):
            oof[te] = p
            tested[te] = True
            rep = classification_report(ds.y[te], p.argmax(1), ds.class_names)
            folds_out.append({"repeat": r, "fold": f, "train_spectra": int(train_rows[f].size),
                              "test_spectra": int(te.size), **pair_groups(ds, train_rows[f], te),
                              "accuracy": rep["accuracy"], "macro_f1": rep["macro_f1"],
                              "final_train_loss": float(tl[-1, f]), "final_val_loss": float(vl[-1, f])})
            Zte = (R[te] - mean[f]) / scale[f]
            importance.append(permutation_importance(Zte, ds.y[te], w.fold(f), hp.leaky_slope, groups,
                                                     settings.permutations, rng))
        acc = float((oof[tested].argmax(1) == ds.y[tested]).mean())
        repeats_out.append({"repeat": r, "accuracy": acc})
        pooled_true.append(ds.y[tested])
        pooled_prob.append(oof[tested])
        train_curves.append(tl)
        val_curves.append(vl)
        log(f"repeat {r + 1}/{len(splits.repeats)}: accuracy {acc:.4f}  ({time.perf_counter() - t0:.1f} s)")
    y_all, p_all = np.concatenate(pooled_true), np.concatenate(pooled_prob)
    pooled = classification_report(y_all, p_all.argmax(1), ds.class_names)
    accs = np.array([r["accuracy"] for r in repeats_out])
    imp = np.mean(importance, axis=0)
    top = max(imp.max(), 1e-12)
    band_centres = [float(ds.axis.values[g].mean()) for g in band_groups]
    tcurve, vcurve = np.concatenate(train_curves, axis=1), np.concatenate(val_curves, axis=1)
    return {
        "split": splits.spec.text, "split_description": splits.description, "warning": splits.warning,
        "accuracy_mean": float(accs.mean()), "accuracy_std": float(accs.std()),
        "repeats": repeats_out, "folds": folds_out,
        "pooled": pooled,
        "auc": dict(zip(ds.class_names, one_vs_rest_auc(y_all, p_all))),
        "roc_data": {"y": y_all, "p": p_all},
        "loss_curves": {"train_mean": tcurve.mean(1).tolist(), "train_std": tcurve.std(1).tolist(),
                        "val_mean": vcurve.mean(1).tolist(), "val_std": vcurve.std(1).tolist()},
        "importance": {
            "measure": "mean increase of test cross-entropy when the group is shuffled across test spectra, "
                       f"{settings.permutations} shuffles per fold, averaged over all folds; normalised to the largest",
            "features": {name: float(v / top) for name, v in zip(FEATURE_NAMES, imp[:len(feat_groups)])},
            "bands": [{"centre_cm-1": c, "importance": float(v / top)}
                      for c, v in zip(band_centres, imp[len(feat_groups):])],
            "band_width_cm-1": settings.band_width_cm,
        },
        "seconds": round(time.perf_counter() - t0, 2),
    }
