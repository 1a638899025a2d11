"""The example spectra a bundle ships for the device's self-test: from a folder, or chosen from the training data.

At start (and before a model update) the device classifies every example and refuses verdicts unless
each comes back with its expected label (``device.service.measurement.self_test``). A bundle without examples is
therefore never deployable: :func:`choose_examples` picks them from the training spectra when the user
gives none.
"""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from device.inference.readers import read_spectra
from trainer.data.dataset import Dataset, DatasetError

#: Training spectra per class shipped as examples when no example folder is given.
EXAMPLES_PER_CLASS = 3


def read_examples(folder: Path, class_names) -> list[tuple[str, bytes, str]]:
    """Example files of a class-folder directory, as (name inside ``examples/``, bytes, expected label).

    Raises
    ------
    DatasetError
        A sub-folder that is not one of ``class_names``, an unreadable file, or no file at all.
    """
    out = []
    for sub in sorted(p for p in folder.iterdir() if p.is_dir()):
        if sub.name not in class_names:
            raise DatasetError(f"example folder {sub.name!r} is not one of the model's classes {list(class_names)}.")
        for f in sorted(p for p in sub.iterdir() if p.is_file() and not p.name.startswith(".")):
            read_spectra(f)  # refuse an unreadable example now, not on the device
            out.append((f"{sub.name}/{f.name}", f.read_bytes(), sub.name))
    if not out:
        raise DatasetError(f"{folder}: no example spectra (expected one sub-folder per class).")
    return out


def choose_examples(ds: Dataset, probabilities: np.ndarray, unknown: np.ndarray,
                    per_class: int = EXAMPLES_PER_CLASS) -> tuple[list[tuple[str, bytes, str]], list[str]]:
    """Training spectra the exported model gets right with the highest confidence, ``per_class`` per class.

    Parameters
    ----------
    ds : Dataset
        The training spectra, on the model axis.
    probabilities : ndarray, shape (n, C)
        The exported model's class probabilities for ``ds.X`` (as the device computes them).
    unknown : ndarray of bool, shape (n,)
        Spectra the out-of-distribution detector calls unknown; never chosen.
    per_class : int

    Returns
    -------
    examples : list of (name inside ``examples/``, bytes, expected label)
        Two-column CSV files (Raman shift in cm-1, intensity) on the model axis.
    missing : list of str
        Classes of which no training spectrum qualifies (the model gets none of them right).
    """
    predicted, confidence = probabilities.argmax(axis=1), probabilities.max(axis=1)
    examples, missing = [], []
    shift = ds.axis.values
    for k, name in enumerate(ds.class_names):
        good = np.flatnonzero((ds.y == k) & (predicted == k) & ~unknown)
        if not good.size:
            missing.append(name)
            continue
        for i in good[np.argsort(-confidence[good], kind="stable")][:per_class]:
            text = "raman_shift_cm-1,intensity\n" + "".join(f"{x:.12g},{v:.9g}\n" for x, v in zip(shift, ds.X[i]))
            examples.append((f"{_slug(name)}/{i:05d}-{_slug(Path(ds.sources[i]).stem)}.csv", text.encode(), name))
    return examples, missing


def _slug(text: str) -> str:
    """``text`` as a safe file-name part (letters, digits, ``.``, ``_``, ``-``)."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("._") or "x"
