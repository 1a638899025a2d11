"""Train/test splits: one specification (``--split``) and one splitter for every command.

Spellings (:func:`parse_split`):

* ``kfold:K`` -- stratified K-fold; ``repeated:RxK`` -- R of them, each with a new shuffle (seed + r);
* ``group-kfold:K`` or ``group-kfold:RxK`` -- stratified group K-fold: all spectra of a group on one side;
* ``logo`` -- leave one group out: one fold per group;
* ``holdout:KEY=VALUE[,VALUE]`` -- test on the spectra whose metadata KEY takes these values;
* ``holdout:FRACTION`` -- a stratified random share held out.

The folds come from scikit-learn's splitters (``StratifiedKFold``, ``StratifiedGroupKFold``,
``LeaveOneGroupOut``). :func:`make_splits` checks the data fit the split before anything is trained,
and states when the figure a split gives is optimistic (:func:`optimism`).
"""
from __future__ import annotations

import re
import warnings
from dataclasses import dataclass, field

import numpy as np

from trainer.data.dataset import Dataset, DatasetError

#: Metadata names that usually mark spectra which are not independent (same patient, sample, batch ...).
GROUP_LIKE = ("patient", "subject", "donor", "individual", "sample", "specimen", "batch", "day", "date",
              "session", "condition", "site", "group", "replicate", "particle")
GROUPED = ("group-kfold", "logo")
SYNTAX = ("kfold:K, repeated:RxK (e.g. 3x5), group-kfold:K or group-kfold:RxK, logo (leave one group out), "
          "holdout:KEY=VALUE[,VALUE] or holdout:FRACTION (e.g. 0.2)")
_GROUPS_HOWTO = ("give --groups KEY (a per-spectrum .npz array), --groups folder (DATA/<class>/<group>/files) "
                 "or --groups 'PATTERN' (a regular expression with one capture group on the file names)")


@dataclass(frozen=True)
class SplitSpec:
    """A split as the user asked for it (see the module docstring)."""

    kind: str  # "kfold", "group-kfold", "logo", "holdout-key" or "holdout-fraction"
    folds: int = 0
    repeats: int = 1
    key: str = ""
    values: tuple = ()
    fraction: float = 0.0
    given: str = field(default="", compare=False)  # the option as the user spelt it, for messages

    @property
    def option(self) -> str:
        """The option that asked for this split, as spelt, for messages (default ``--split TEXT``)."""
        return self.given or f"--split {self.text}"

    @property
    def grouped(self) -> bool:
        """Whether every group stays on one side of each train/test pair."""
        return self.kind in GROUPED

    @property
    def text(self) -> str:
        """The spelling of ``--split`` that gives this split."""
        if self.kind == "kfold":
            return f"kfold:{self.folds}" if self.repeats == 1 else f"repeated:{self.repeats}x{self.folds}"
        if self.kind == "group-kfold":
            return f"group-kfold:{self.folds}" if self.repeats == 1 else f"group-kfold:{self.repeats}x{self.folds}"
        if self.kind == "logo":
            return "logo"
        if self.kind == "holdout-key":
            return f"holdout:{self.key}={','.join(f'{v:g}' if isinstance(v, float) else str(v) for v in self.values)}"
        return f"holdout:{self.fraction:g}"


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


def parse_split(text: str, option: str = "--split") -> SplitSpec:
    """The :class:`SplitSpec` of a ``--split`` text (see the module docstring).

    Raises
    ------
    DatasetError
        A text of none of the spellings, or K < 2, R < 1, a fraction outside (0, 1).
    """
    text = text.strip()
    m = re.fullmatch(r"(kfold|group-kfold):(?:(\d+)x)?(\d+)|repeated:(\d+)x(\d+)|logo|holdout:(.+)", text)
    if not m:
        raise DatasetError(f"{option} {text!r}: use {SYNTAX}")
    if text == "logo":
        return SplitSpec("logo")
    if m.group(6):
        arg = m.group(6)
        try:
            fraction = float(arg)
        except ValueError:
            key, values = parse_holdout(arg)
            return SplitSpec("holdout-key", key=key, values=tuple(values))
        if not 0 < fraction < 1:
            raise DatasetError(f"{option} holdout:{arg}: the test fraction must be between 0 and 1, e.g. holdout:0.2")
        return SplitSpec("holdout-fraction", fraction=fraction)
    if m.group(4):
        kind, repeats, folds = "kfold", int(m.group(4)), int(m.group(5))
    else:
        kind, repeats, folds = m.group(1), int(m.group(2) or 1), int(m.group(3))
        if kind == "kfold" and m.group(2):
            raise DatasetError(f"{option} {text!r}: repeated K-fold is spelt repeated:{repeats}x{folds}")
    if folds < 2 or repeats < 1:
        raise DatasetError(f"{option} {text!r}: K-fold needs K >= 2 folds and at least one repeat")
    return SplitSpec(kind, folds=folds, repeats=repeats)


@dataclass
class Splits:
    """The train/test index pairs of a split of one data set.

    Attributes
    ----------
    spec : SplitSpec
    description : str
        The split in words, for reports.
    repeats : list of list of (train, test)
        The pairs of each repeat; within a repeat of a K-fold split every spectrum is tested once.
    warning : str or None
        Why the figure is optimistic (:func:`optimism`), for the first lines of a report.
    """

    spec: SplitSpec
    description: str
    repeats: list
    warning: str | None = None

    @property
    def pairs(self) -> list:
        """All (train, test) pairs, repeat after repeat."""
        return [p for rep in self.repeats for p in rep]


def stratified_folds(y: np.ndarray, folds: int, seed: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """Stratified K-fold (train, test) index pairs of labels ``y`` (n,), shuffled with ``seed``."""
    from sklearn.model_selection import StratifiedKFold

    smallest = np.bincount(y).min()
    if folds > smallest:
        raise DatasetError(f"{folds}-fold cross-validation needs at least {folds} spectra per class; "
                           f"the smallest class has {smallest}.")
    skf = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    return list(skf.split(np.zeros(len(y)), y))


def holdout_split(ds: Dataset, key: str, values: list, seed: int,
                  option: str = "--holdout") -> tuple[np.ndarray, np.ndarray, str]:
    """Hold out the spectra whose metadata ``key`` takes one of ``values``; ``option`` starts the messages.

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
        raise DatasetError(f"{option}: the data has no per-spectrum '{key}'; it has "
                           f"{', '.join(ds.meta) or 'no metadata'} (metadata comes from .npz arrays).")
    column = ds.meta[key]
    test = np.isin(column, np.asarray(values, dtype=column.dtype))
    if not test.any():
        present = np.unique(column)
        raise DatasetError(f"{option}: no spectrum has {key} in {values}; its values are "
                           f"{_few(present.tolist())}.")
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


def check_split(spec: SplitSpec, ds: Dataset) -> None:
    """Refuse a split the data cannot fill, before anything is trained.

    Raises
    ------
    DatasetError
        Naming the class or group that is too small and the split that would work: a class with fewer
        spectra than K; a grouped split without groups, with fewer groups than K, or with a class whose
        spectra all belong to one group (it would be missing from training whenever that group is tested).
    """
    counts = np.bincount(ds.y, minlength=len(ds.class_names))
    k = int(counts.argmin())
    name, smallest = ds.class_names[k], int(counts[k])
    if spec.kind == "kfold" or spec.kind == "holdout-fraction":
        folds = spec.folds if spec.kind == "kfold" else max(2, round(1 / spec.fraction))
        if smallest < 2:
            raise DatasetError(f"{spec.option}: class {name} has {smallest} spectrum; a stratified split "
                               "needs at least 2 per class: add spectra or drop the class")
        if smallest < folds:
            fix = (SplitSpec("kfold", folds=smallest, repeats=spec.repeats) if spec.kind == "kfold"
                   else SplitSpec("holdout-fraction", fraction=round(1 / smallest, 2) + 0.01))
            raise DatasetError(f"{spec.option} needs at least {folds} spectra per class; class {name} "
                               f"has {smallest}: use --split {fix.text} (or add spectra)")
        return
    if spec.kind == "holdout-key":
        return
    if ds.groups is None:
        raise DatasetError(f"{spec.option} keeps each group on one side, but the data carry no groups: "
                           + _GROUPS_HOWTO)
    names = np.unique(ds.groups)
    if names.size < 2:
        raise DatasetError(f"{spec.option}: the data have one group only ({names[0]}, {ds.group_source}); "
                           "a grouped split needs at least 2")
    if spec.kind == "group-kfold" and names.size < spec.folds:
        raise DatasetError(f"{spec.option} needs at least {spec.folds} groups; the data have {names.size} "
                           f"({_few(names)}; {ds.group_source}): use --split group-kfold:{names.size} or logo")
    for c, cname in enumerate(ds.class_names):
        own = np.unique(ds.groups[ds.y == c])
        if own.size < 2:
            raise DatasetError(f"{spec.option}: every spectrum of class {cname} belongs to group {own[0]} "
                               f"({ds.group_source}), so a grouped split leaves {cname} out of training whenever "
                               f"{own[0]} is tested: add {cname} spectra of another group, drop the class, or use a "
                               "hold-out by a key")


def _few(names) -> str:
    shown = ", ".join(str(n) for n in names[:8])
    return shown + (f", ... ({len(names)} in all)" if len(names) > 8 else "")


def make_splits(spec: SplitSpec, ds: Dataset, seed: int) -> Splits:
    """The train/test pairs of ``spec`` on ``ds``, checked (:func:`check_split`), described and judged.

    K-fold repeats are shuffled with ``seed + r``; a group K-fold likewise; leave-one-group-out and a
    hold-out by key are not random (the key hold-out's random share of classes without the key uses ``seed``).
    """
    from sklearn.model_selection import LeaveOneGroupOut, StratifiedGroupKFold

    check_split(spec, ds)
    zeros = np.zeros(len(ds.y))
    if spec.kind == "kfold":
        repeats = [stratified_folds(ds.y, spec.folds, seed + r) for r in range(spec.repeats)]
        desc = (f"stratified {spec.folds}-fold cross-validation, repeated {spec.repeats} times (seeds {seed}..."
                f"{seed + spec.repeats - 1})" if spec.repeats > 1
                else f"stratified {spec.folds}-fold cross-validation (seed {seed})")
    elif spec.kind == "group-kfold":
        with warnings.catch_warnings():  # a class with fewer groups than K is tested in fewer folds: stated below
            warnings.simplefilter("ignore", UserWarning)
            repeats = [list(StratifiedGroupKFold(n_splits=spec.folds, shuffle=True, random_state=seed + r)
                            .split(zeros, ds.y, ds.groups)) for r in range(spec.repeats)]
        desc = (f"stratified group {spec.folds}-fold cross-validation by {ds.group_source} "
                f"({np.unique(ds.groups).size} groups, each on one side of every pair)"
                + (f", repeated {spec.repeats} times (seeds {seed}...{seed + spec.repeats - 1})" if spec.repeats > 1
                   else f" (seed {seed})"))
    elif spec.kind == "logo":
        repeats = [list(LeaveOneGroupOut().split(zeros, ds.y, ds.groups))]
        desc = f"leave one group out by {ds.group_source} ({len(repeats[0])} groups, one fold each)"
    elif spec.kind == "holdout-key":
        train, test, d = holdout_split(ds, spec.key, list(spec.values), seed, spec.option)
        missing = [ds.class_names[c] for c in range(len(ds.class_names)) if not (ds.y[train] == c).any()]
        if missing:
            raise DatasetError(f"{spec.option}: no spectrum of {', '.join(missing)} is left for training; "
                               f"hold out fewer values of {spec.key}")
        repeats, desc = [[(train, test)]], f"hold-out by {spec.key}: {d}"
    else:
        folds = max(2, round(1 / spec.fraction))
        repeats = [[stratified_folds(ds.y, folds, seed)[0]]]
        desc = f"stratified random hold-out of 1/{folds} of the spectra (seed {seed})"
    return Splits(spec, desc, repeats, optimism(spec, ds, [p for rep in repeats for p in rep]))


def pair_groups(ds: Dataset, train: np.ndarray, test: np.ndarray) -> dict:
    """The groups of the ``train`` and ``test`` rows of one pair, for reports; empty without groups."""
    if ds.groups is None:
        return {}
    return {"train_groups": np.unique(ds.groups[train]).tolist(), "test_groups": np.unique(ds.groups[test]).tolist()}


def optimism(spec: SplitSpec, ds: Dataset, pairs: list) -> str | None:
    """Why the figure of ``pairs`` overstates accuracy on new groups, or None when it does not.

    With groups (:attr:`Dataset.groups`): when a group has spectra on both sides of some pair. Without:
    when the data have a per-spectrum key named like a group (:data:`GROUP_LIKE`) that the split does not
    keep apart.
    """
    if ds.groups is not None:
        both = set()
        for train, test in pairs:
            both |= set(np.intersect1d(ds.groups[train], ds.groups[test]).tolist())
        if not both:
            return None
        total = np.unique(ds.groups).size
        return (f"optimistic figure: the data carry groups ({ds.group_source}, {total} groups) and this split "
                f"({spec.text}) puts spectra of {len(both)} of them on both sides of a train/test pair, so the model "
                "is tested on groups it saw in training; for a figure that holds for new groups use --split "
                "group-kfold:K or logo")
    keys = [k for k in ds.meta if any(w in k.lower() for w in GROUP_LIKE)
            and not (spec.kind == "holdout-key" and spec.key == k)]
    if not keys:
        return None
    return (f"possibly optimistic figure: the data have a per-spectrum {', '.join(repr(k) for k in keys)} and this "
            f"split ({spec.text}) does not keep its values apart; if spectra sharing a value are related (one "
            f"patient, sample, batch or day), give --groups {keys[0]} and --split group-kfold:K or logo")
