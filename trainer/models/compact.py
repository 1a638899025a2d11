"""Training the compact network: one fit, and the seeds every caller derives its fits from.

``raman-train fit`` (its validation pairs and its final fit), ``evaluate`` (:mod:`trainer.evaluation.protocol`,
all folds of a repeat at once) and ``compare`` train with the stacked NumPy engine
(:mod:`trainer.models.stacked`) from seeds derived the same way: :func:`pair_seed` gives each pair of a split
its training seed, :func:`stream_seeds` turns a training seed into the initialisation and batch-order
seeds. So fold f of repeat r of ``evaluate`` is exactly :func:`fit_compact` on that fold's training
rows with ``pair_seed(seed, r, f)``.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from device.inference.inputs import Standardizer
from device.inference.network import Dense

from trainer.models import stacked
from trainer.models.model import Hyperparameters
from trainer.progress import Progress


def pair_seed(seed: int, repeat: int, fold: int) -> int:
    """Training seed of fold ``fold`` of repeat ``repeat`` of a split (a hold-out is fold 0 of repeat 0).

    Parameters
    ----------
    seed : int
        The run's seed (``--seed``), non-negative.
    repeat, fold : int

    Returns
    -------
    int
        In [0, 2**32), independent of the other pairs' seeds.
    """
    return int(np.random.SeedSequence([seed, repeat, fold]).generate_state(1)[0])


def pair_seeds(split, seed: int) -> list:
    """:func:`pair_seed` of every pair of ``split`` (:class:`trainer.data.splits.Splits`), in ``split.pairs`` order."""
    return [pair_seed(seed, r, f) for r, repeat in enumerate(split.repeats) for f in range(len(repeat))]


def stream_seeds(seed: int) -> tuple[int, int]:
    """Independent (initialisation, batch-order) seeds of one fit with training seed ``seed``."""
    init, order = np.random.SeedSequence(seed).spawn(2)
    return int(init.generate_state(1)[0]), int(order.generate_state(1)[0])


@dataclass(frozen=True)
class CompactFit:
    """A trained compact network.

    Attributes
    ----------
    standardizer : device.inference.inputs.Standardizer
        Column statistics of the training inputs.
    layers : tuple of device.inference.network.Dense
        Hidden (leaky_relu) and output (softmax) layers, float32 values as a bundle stores them.
    loss : list of float
        Training loss per epoch (cross-entropy + L2 penalty, mean over the epoch's spectra).
    """

    standardizer: Standardizer
    layers: tuple
    loss: list


def fit_compact(R: np.ndarray, y: np.ndarray, n_classes: int, hp: Hyperparameters, seed: int,
                log=None) -> CompactFit:
    """Fit the standardisation and the network: the stacked engine (:func:`trainer.models.stacked.train`) with one network.

    Parameters
    ----------
    R : ndarray, shape (n, D)
        Raw (unstandardised) inputs: intensities and features (:func:`device.inference.inputs.raw_inputs`).
    y : ndarray of int, shape (n,)
        Class of each row, in [0, ``n_classes``).
    n_classes : int
    hp : Hyperparameters
    seed : int
        Training seed; the Glorot-uniform start and the shuffled mini-batches come from its
        :func:`stream_seeds`.
    log : callable, optional
        Gets about ten progress lines (:class:`trainer.progress.Progress`).

    Returns
    -------
    CompactFit
    """
    std = Standardizer.fit(R)
    init_seed, order_seed = stream_seeds(seed)
    init = stacked.glorot_init([init_seed], R.shape[1], hp.hidden, n_classes)
    index, valid = stacked.batch_orders([np.arange(len(y))], hp.epochs, hp.batch_size, [order_seed])
    progress = None
    if log:
        lines = Progress(hp.epochs, "epoch", log)

        def progress(done: int, fold_loss: np.ndarray) -> None:
            lines(done, fold_loss[0])

    w, loss, _ = stacked.train(R, np.asarray(y), std.mean[None], std.scale[None], init, index, valid, hp,
                               progress=progress)
    W1, b1, W2, b2 = (p.astype(np.float32) for p in w.fold(0))
    return CompactFit(std, (Dense(W1, b1, "leaky_relu"), Dense(W2, b2, "softmax")),
                      [float(v) for v in loss[:, 0]])
