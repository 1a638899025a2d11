"""Train/test splits: hold out a group by metadata, and stratified K-fold."""
from __future__ import annotations

import numpy as np

from .data import Dataset, DatasetError


def parse_holdout(text: str) -> tuple[str, list[float | str]]:
    """``"KEY=V1,V2"`` -> (KEY, [V1, V2]); values are numbers when they parse as numbers."""
    if "=" not in text:
        raise DatasetError(f"--holdout takes KEY=VALUE[,VALUE...], e.g. concentration_ppm=0.5; got {text!r}")
    key, values = text.split("=", 1)
    out = []
    for v in values.split(","):
        try:
            out.append(float(v))
        except ValueError:
            out.append(v)
    return key.strip(), out


def holdout_split(ds: Dataset, key: str, values: list, seed: int) -> tuple[np.ndarray, np.ndarray, str]:
    """Hold out the spectra whose metadata ``key`` takes one of ``values``.

    Classes that have no spectrum with those values (e.g. a pesticide-free control, which has no
    concentration) would otherwise be untested; a random share of each such class, equal to the
    held-out share of the other classes, is held out too (seeded), so every class is tested.

    Returns
    -------
    train, test : ndarray of int
    description : str
        The split in words, for reports.
    """
    if key not in ds.meta:
        raise DatasetError(f"--holdout {key}: the data has no per-spectrum '{key}'; it has "
                           f"{', '.join(ds.meta) or 'no metadata'} (metadata comes from .npz arrays).")
    column = ds.meta[key]
    test = np.isin(column, np.asarray(values, dtype=column.dtype))
    if not test.any():
        raise DatasetError(f"--holdout {key}={values}: no spectrum has that value.")
    covered = np.isin(ds.y, np.unique(ds.y[test]))
    share = test[covered].mean()
    rng = np.random.default_rng(seed)
    extra = []
    for k in np.setdiff1d(np.arange(len(ds.class_names)), np.unique(ds.y[test])):
        members = np.flatnonzero(ds.y == k)
        pick = rng.choice(members, size=int(round(share * members.size)), replace=False)
        test[pick] = True
        extra.append(f"{ds.class_names[k]} ({pick.size} of {members.size} at random)")
    desc = f"test = spectra with {key} in {values}"
    if extra:
        desc += f"; classes without that {key} contribute the same share: {', '.join(extra)}"
    return np.flatnonzero(~test), np.flatnonzero(test), desc


def stratified_folds(y: np.ndarray, folds: int, seed: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """Stratified K-fold (train, test) index pairs, shuffled with ``seed``."""
    from sklearn.model_selection import StratifiedKFold

    smallest = np.bincount(y).min()
    if folds > smallest:
        raise DatasetError(f"{folds}-fold cross-validation needs at least {folds} spectra per class; "
                           f"the smallest class has {smallest}.")
    skf = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    return list(skf.split(np.zeros(len(y)), y))
