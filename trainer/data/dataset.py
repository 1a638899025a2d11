"""Labelled spectra from the layouts users have, resampled onto one model axis.

Supported layouts:

* a directory with one sub-folder per class, each holding spectrum files (two-column text/CSV or
  ``.npz``), one spectrum per file as most instrument exports write them;
* a wide table (``.csv``, ``.tsv``, ``.txt``): a header row naming a label column and one column per
  Raman shift, then one spectrum per row;
* ``.npz`` with ``X`` (n, N), ``y`` (n,), ``wavenumber`` (N,) and ``class_names``; any other array of
  length n (e.g. ``concentration_ppm``) is kept as per-spectrum metadata.

Groups (spectra that are not independent: one patient, sample, batch, day) come with the data
(:attr:`Dataset.groups`) from one of three sources (:func:`load_dataset`'s ``groups``): a per-spectrum
``.npz`` array, a folder level under the class (``DATA/<class>/<group>/file.csv``), or a pattern with
one capture group matched against each file name.
"""
from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from device.errors import RamanEdgeError, SpectrumError
from device.inference.quality import is_flat
from device.inference.readers import read_spectra
from device.inference.resample import ResamplerCache
from device.inference.spectrum import Axis
from device.inference.validation import check_spectrum
from firmware_bridge.spectrum_files import is_number

#: Raman shift (cm-1) below which a default axis draws a warning: the laser line and filter edge lie there.
LOW_SHIFT = 100.0


class DatasetError(RamanEdgeError):
    """A training data set cannot be used as given."""


@dataclass
class Dataset:
    """Labelled spectra on one axis.

    Attributes
    ----------
    X : ndarray, shape (n, points)
        Intensities on ``axis``.
    y : ndarray of int, shape (n,)
        Class index of each spectrum.
    class_names : tuple of str
    axis : Axis
    sources : list of str
        Where each spectrum came from (file, or file and row).
    meta : dict of str to ndarray
        Extra per-spectrum arrays of length n.
    groups : ndarray of str, shape (n,), or None
        The group of each spectrum, when given (see the module docstring).
    group_source : str
        Where the groups come from, in words (e.g. ``.npz key 'condition'``); empty without groups.
    """

    X: np.ndarray
    y: np.ndarray
    class_names: tuple
    axis: Axis
    sources: list
    meta: dict = field(default_factory=dict)
    groups: np.ndarray | None = None
    group_source: str = ""

    @property
    def fingerprint(self) -> str:
        """SHA-256 of the resampled intensities (float32) and labels: identifies the training data."""
        h = hashlib.sha256(np.ascontiguousarray(self.X, np.float32).tobytes())
        h.update(np.ascontiguousarray(self.y, np.int64).tobytes())
        return h.hexdigest()

    def counts(self) -> dict:
        """Number of spectra per class name."""
        return {c: int((self.y == i).sum()) for i, c in enumerate(self.class_names)}

    def subset(self, index: np.ndarray) -> "Dataset":
        """The spectra at ``index`` (indices or boolean mask)."""
        idx = np.flatnonzero(index) if np.asarray(index).dtype == bool else np.asarray(index)
        return Dataset(self.X[idx], self.y[idx], self.class_names, self.axis, [self.sources[i] for i in idx],
                       {k: v[idx] for k, v in self.meta.items()},
                       None if self.groups is None else self.groups[idx], self.group_source)


def load_dataset(path, axis: Axis | None = None, log=None, groups: str | None = None) -> Dataset:
    r"""Load labelled spectra, resample them onto ``axis`` and drop the flat ones.

    Parameters
    ----------
    path : path-like
        Class-folder directory, wide table or ``.npz`` (see the module docstring).
    axis : Axis, optional
        Model axis. By default: for ``.npz`` and tables, their own grid when it is uniform; for
        folders (and non-uniform grids), the range every spectrum covers, at the median step.
    log : callable, optional
        Gets what the user should know, one line each: the classes and their counts, the axis and
        why (with the points outside it), flat spectra dropped (:func:`device.inference.quality.is_flat`), and
        warnings (``warning: ...``): labels that are numbers, a default axis starting below :data:`LOW_SHIFT`.
    groups : str, optional
        Where each spectrum's group comes from: ``folder`` (the folder level under the class), the
        name of a per-spectrum ``.npz`` array, or a regular expression with one capture group searched
        in each file name (e.g. ``^(P\d+)_``).

    Raises
    ------
    DatasetError
        Empty classes, unreadable files, axes that do not overlap, a bad layout, a class left
        without spectra once the flat ones are dropped; a ``groups`` source the data do not have
        (naming those they have), a file name the pattern does not match.
    """
    path = Path(path)
    say = log or (lambda msg: None)
    folders = None
    if path.is_dir():
        shifts, ys, labels, sources, classes, folders = _read_folders(path)
        meta = {}
    elif path.suffix.lower() == ".npz":
        shifts, ys, labels, sources, classes, meta = _read_npz(path)
    elif path.is_file():
        shifts, ys, labels, sources, classes = _read_table(path)
        numeric = [c for c in classes if is_number(c)]
        if numeric:
            say(f"warning: {path}: the label(s) {', '.join(numeric)} are numbers; every distinct label of a wide "
                "table is a class of its own, so check the label column (a number there is often a misplaced "
                "value or a class code)")
        meta = {}
    else:
        raise DatasetError(f"{path}: not found; give a class-folder directory, a wide .csv table or an .npz file.")
    group_of, group_source = (_groups(groups, meta, sources, folders) if groups is not None else (None, ""))
    given = axis is not None
    axis, why = (axis, "as given") if given else _default_axis(shifts, sources)
    outside = [int(((s < axis.start) | (s > axis.stop)).sum()) for s in shifts]
    cut = sum(n > 0 for n in outside)
    say(f"axis: {axis.start:g} to {axis.stop:g} cm-1, {axis.points} points, step {axis.step:.4g} cm-1 ({why}); "
        + (f"{sum(outside)} points outside it dropped (from {cut} of {len(shifts)} spectra)" if cut
           else "no point of any spectrum outside it"))
    if not given and axis.start < LOW_SHIFT:
        start = float(LOW_SHIFT)
        say(f"warning: the axis starts at {axis.start:g} cm-1; below ~{LOW_SHIFT:g} cm-1 lie the laser line and the "
            "edge of the laser filter, which differ between instruments and would be learnt as if they were the "
            f"sample: choose the range with --axis, e.g. --axis {start:g}:{axis.stop:g}:"
            f"{int(round((axis.stop - start) / axis.step)) + 1}")
    X = _resample_all(shifts, ys, axis, sources)
    y = np.asarray(labels, dtype=np.int64)
    flat = is_flat(X)
    if flat.any():
        bad = np.flatnonzero(flat)
        say(f"dropped {bad.size} flat spectra of {len(y)} (no band: maximum not above median on the axis), e.g. "
            + ", ".join(sources[i] for i in bad[:3]))
        emptied = [classes[k] for k in range(len(classes)) if not ((y == k) & ~flat).any()]
        if emptied:
            raise DatasetError(f"{path}: every spectrum of {', '.join(emptied)} is flat (no band); check those "
                               "files or drop the class.")
        keep = np.flatnonzero(~flat)
        X, y, sources = X[keep], y[keep], [sources[i] for i in keep]
        meta = {k: v[keep] for k, v in meta.items()}
        group_of = None if group_of is None else group_of[keep]
    counts = np.bincount(y, minlength=len(classes))
    say(f"classes: {len(classes)} ({', '.join(f'{c} {n}' for c, n in zip(classes, counts))}), {len(y)} spectra")
    if group_of is not None:
        names = np.unique(group_of)
        say(f"groups: {names.size} from {group_source} ({', '.join(names[:8])}{', ...' if names.size > 8 else ''})")
    return Dataset(X, y, tuple(classes), axis, sources, meta, group_of, group_source)


#: ``groups`` value naming the folder level under the class.
GROUP_FOLDER = "folder"


def _groups(spec: str, meta: dict, sources: list, folders: list | None) -> tuple[np.ndarray, str]:
    """The group of each spectrum (n,) as strings, and where they come from in words."""
    if spec == GROUP_FOLDER:
        if folders is None:
            raise DatasetError(f"--groups folder: the data are not a class-folder directory; {_available(meta)}")
        loose = [s for s, f in zip(sources, folders) if f is None]
        if loose:
            raise DatasetError(f"--groups folder: {loose[0]} (and {len(loose) - 1} more) lie directly in the class "
                               "folder; put every file in a group folder, DATA/<class>/<group>/file")
        return np.array(folders, dtype=str), "the folder under the class"
    if spec in meta:
        return np.array([str(v) for v in meta[spec]], dtype=str), f".npz key '{spec}'"
    if "(" not in spec:
        raise DatasetError(f"--groups {spec}: the data have no per-spectrum '{spec}'; {_available(meta, folders)}")
    try:
        pattern = re.compile(spec)
    except re.error as exc:
        raise DatasetError(f"--groups {spec!r}: not a regular expression ({exc})") from None
    if pattern.groups != 1:
        raise DatasetError(f"--groups {spec!r}: a file-name pattern needs exactly one capture group, e.g. '^(P\\d+)_'; "
                           f"it has {pattern.groups}")
    out = []
    for s in sources:
        name = Path(re.sub(r"\[\d+\]$", "", s)).name
        m = pattern.search(name)
        if not m or not m.group(1):
            raise DatasetError(f"--groups {spec!r}: the file name {name!r} ({s}) does not match; every file name must "
                               "contain its group")
        out.append(m.group(1))
    return np.array(out, dtype=str), f"the file-name pattern '{spec}'"


def _available(meta: dict, folders: list | None = None) -> str:
    keys = ", ".join(meta) or "no per-spectrum arrays"
    folder = " or folder" if folders is not None and any(f is not None for f in folders) else ""
    return (f"the keys it has: {keys}{folder}; or give a file-name pattern with one capture group, e.g. "
            "--groups '^(P\\d+)_'")


def _read_folders(root: Path):
    folders = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not folders:
        raise DatasetError(f"{root}: no class sub-folders; put each class's spectrum files in a folder named "
                           "after the class.")
    shifts, ys, labels, sources, groups = [], [], [], [], []
    for k, folder in enumerate(folders):
        files = [(f, None) for f in _visible(folder, Path.is_file)]
        for sub in _visible(folder, Path.is_dir):
            files += [(f, sub.name) for f in _visible(sub, Path.is_file)]
        if not files:
            raise DatasetError(f"class folder {folder} holds no spectrum files; add spectra or remove the folder.")
        for f, group in files:
            try:
                spectra = read_spectra(f)
            except RamanEdgeError as exc:
                raise DatasetError(f"unreadable training file: {exc}") from None
            for s in spectra:
                shifts.append(s.shift)
                ys.append(s.intensity)
                labels.append(k)
                sources.append(str(f) + (f"[{s.meta['index']}]" if "index" in s.meta else ""))
                groups.append(group)
    return shifts, ys, labels, sources, [f.name for f in folders], groups


def _visible(folder: Path, kind) -> list:
    """The entries of ``folder`` for which ``kind`` (e.g. ``Path.is_file``) holds, sorted, hidden ones left out."""
    return sorted(p for p in folder.iterdir() if kind(p) and not p.name.startswith("."))


def _read_npz(path: Path):
    try:
        with np.load(path, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
    except Exception as exc:
        raise DatasetError(f"{path}: not a readable .npz file ({exc}).") from None
    missing = [k for k in ("X", "y", "wavenumber", "class_names") if k not in arrays]
    if missing:
        raise DatasetError(f"{path}: a training .npz needs X, y, wavenumber and class_names; missing {missing}.")
    X, y, wn = arrays["X"], arrays["y"], arrays["wavenumber"]
    names = [str(c) for c in arrays["class_names"]]
    if X.ndim != 2 or y.shape != (X.shape[0],) or wn.shape != (X.shape[1],):
        raise DatasetError(f"{path}: shapes X {X.shape}, y {y.shape}, wavenumber {wn.shape} do not fit "
                           "(need (n, N), (n,), (N,)).")
    if not np.issubdtype(y.dtype, np.integer) or y.min() < 0 or y.max() >= len(names):
        raise DatasetError(f"{path}: y must hold class indices 0..{len(names) - 1}.")
    for k, c in enumerate(names):
        if not (y == k).any():
            raise DatasetError(f"{path}: class {c!r} has no spectra; drop it from class_names or add data.")
    meta = {k: v for k, v in arrays.items()
            if k not in ("X", "y", "wavenumber", "class_names") and v.shape[:1] == (X.shape[0],)}
    wn, X = _increasing(path, wn, X)
    sources = [f"{path}[{i}]" for i in range(X.shape[0])]
    return [wn] * X.shape[0], list(X), y.tolist(), sources, names, meta


def _read_table(path: Path):
    text = path.read_bytes()
    try:
        lines = [ln for ln in text.decode("utf-8-sig").splitlines() if ln.strip()]
    except UnicodeDecodeError:
        raise DatasetError(f"{path}: not a text table; give a class-folder directory, a wide .csv "
                           "or an .npz.") from None
    if len(lines) < 2:
        raise DatasetError(f"{path}: a wide table needs a header row and at least one spectrum row.")
    delim = next((d for d in (";", "\t", ",") if d in lines[0]), None)
    header = [h.strip() for h in (lines[0].split(delim) if delim else lines[0].split())]
    label_cols = [i for i, h in enumerate(header) if not is_number(h)]
    if len(label_cols) != 1:
        raise DatasetError(
            f"{path}: a wide table needs exactly one label column (a non-numeric header) and one column per "
            f"Raman shift (numeric headers); found {len(label_cols)} non-numeric header(s).")
    lc = label_cols[0]
    shift_cols = [i for i in range(len(header)) if i != lc]
    wn = np.array([float(header[i]) for i in shift_cols])
    ys, names = [], []
    for lineno, ln in enumerate(lines[1:], start=2):
        fields = [f.strip() for f in (ln.split(delim) if delim else ln.split())]
        if len(fields) != len(header):
            raise DatasetError(f"{path}: line {lineno} has {len(fields)} fields, the header {len(header)}.")
        try:
            ys.append(np.array([float(fields[i]) for i in shift_cols]))
        except ValueError:
            raise DatasetError(f"{path}: line {lineno} holds a non-numeric intensity.") from None
        names.append(fields[lc])
    wn, Y = _increasing(path, wn, np.array(ys))
    ys = list(Y)
    classes = sorted(set(names))
    labels = [classes.index(n) for n in names]
    sources = [f"{path}:{i}" for i in range(2, len(lines) + 1)]
    return [wn] * len(ys), ys, labels, sources, classes


def _increasing(path: Path, wn: np.ndarray, X: np.ndarray):
    """The shared axis made strictly increasing (columns of ``X`` reversed with it if needed)."""
    try:
        checked, _ = check_spectrum(wn, np.zeros(np.shape(wn)))
    except SpectrumError as exc:
        raise DatasetError(f"{path}: the Raman-shift axis is unusable: {exc}") from None
    return checked, (X[:, ::-1] if wn[0] > wn[-1] else X)


def _default_axis(shifts: list, sources: list) -> tuple[Axis, str]:
    """The axis of the data and why: their own grid when uniform and shared, else the common range."""
    first = shifts[0]
    if all(s is first for s in shifts) or all(s.shape == first.shape and np.array_equal(s, first) for s in shifts):
        steps = np.diff(first)
        if np.allclose(steps, steps.mean(), rtol=1e-6, atol=0):
            return Axis(float(first[0]), float(first[-1]), first.size), "the data's own grid, shared and uniform"
    lo_i = int(np.argmax([s[0] for s in shifts]))
    hi_i = int(np.argmin([s[-1] for s in shifts]))
    lo, hi = shifts[lo_i][0], shifts[hi_i][-1]
    if lo >= hi:
        raise DatasetError(
            f"the spectra's axes do not overlap: {sources[lo_i]} starts at {lo:g} cm-1 but {sources[hi_i]} ends "
            f"at {hi:g} cm-1; train separate models or drop the outliers.")
    step = float(np.median(np.concatenate([np.diff(s) for s in shifts[:: max(1, len(shifts) // 50)]])))
    points = int(np.floor((hi - lo) / step + 1e-9)) + 1
    return (Axis(float(lo), float(lo + (points - 1) * step), points),
            "the range every spectrum covers, at their median step")


def _resample_all(shifts: list, ys: list, axis: Axis, sources: list) -> np.ndarray:
    X = np.empty((len(ys), axis.points))
    cache = ResamplerCache(axis, size=16)
    for i, (s, y) in enumerate(zip(shifts, ys)):
        try:
            X[i] = cache.get(np.asarray(s, np.float64))(y)
        except SpectrumError as exc:
            raise DatasetError(f"{sources[i]}: {exc}") from None
    if not np.isfinite(X).all():
        bad = int(np.flatnonzero(~np.isfinite(X).all(axis=1))[0])
        raise DatasetError(f"{sources[bad]}: holds NaN or infinite intensities; repair or drop it.")
    return X
