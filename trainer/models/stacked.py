"""Many independent fits of the compact network at once, in NumPy.

Cross-validation trains one network per fold. Here the weights of all folds are stacked along a
leading axis (F folds) and trained together with batched matrix products: each fold has its own
initial weights, its own training rows and batch order, its own standardisation statistics and its
own Adam state and step counter. A fold whose epoch has fewer batches than another's simply skips
the extra steps (its Adam state does not move). The result is mathematically the same as F separate
fits with the same initial weights and batch order; ``tests/test_stacked.py`` checks it against
separate fits and against Keras.

The arithmetic follows Keras exactly: Glorot-uniform kernels and zero biases, mean sparse categorical
cross-entropy over the batch plus ``l2 * sum(w**2)`` for each kernel, and Keras' Adam
(beta_1 0.9, beta_2 0.999, epsilon 1e-7, bias correction folded into the step size).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from device.inference.network import softmax

if TYPE_CHECKING:  # trainer.models.compact trains with this engine
    from trainer.models.compact import Hyperparameters

ADAM_BETA_1 = 0.9
ADAM_BETA_2 = 0.999
ADAM_EPSILON = 1e-7


@dataclass
class StackedWeights:
    """Weights of F networks: W1 (F, D, H), b1 (F, H), W2 (F, H, C), b2 (F, C)."""

    W1: np.ndarray
    b1: np.ndarray
    W2: np.ndarray
    b2: np.ndarray

    def params(self) -> list:
        """The four stacked arrays: W1, b1, W2, b2."""
        return [self.W1, self.b1, self.W2, self.b2]

    def fold(self, f: int) -> tuple:
        """The weights of fold ``f`` as (W1, b1, W2, b2)."""
        return self.W1[f], self.b1[f], self.W2[f], self.b2[f]


def glorot_init(seeds, inputs: int, hidden: int, classes: int) -> StackedWeights:
    """Keras' default initialisation (Glorot-uniform kernels, zero biases), one seed per fold."""
    W1, W2 = [], []
    for s in seeds:
        rng = np.random.default_rng(s)
        a, b = np.sqrt(6 / (inputs + hidden)), np.sqrt(6 / (hidden + classes))
        W1.append(rng.uniform(-a, a, (inputs, hidden)))
        W2.append(rng.uniform(-b, b, (hidden, classes)))
    F = len(W1)
    return StackedWeights(np.array(W1), np.zeros((F, hidden)), np.array(W2), np.zeros((F, classes)))


def batch_orders(train_rows: list, epochs: int, batch_size: int, seeds) -> tuple[np.ndarray, np.ndarray]:
    """Each fold's shuffled mini-batches, padded to a common shape.

    Parameters
    ----------
    train_rows : list of F int arrays
        Training rows of each fold.
    epochs, batch_size : int
    seeds : F ints
        Seed of each fold's shuffling.

    Returns
    -------
    index : ndarray of int, shape (epochs, steps, F, batch_size)
        Row of every batch entry (0 where padded).
    valid : ndarray of bool, same shape
        False for padding: the last batch of an epoch may be short, and folds may differ in size.
    """
    F = len(train_rows)
    steps = max(-(-len(r) // batch_size) for r in train_rows)
    index = np.zeros((epochs, steps, F, batch_size), dtype=np.intp)
    valid = np.zeros_like(index, dtype=bool)
    for f, (rows, seed) in enumerate(zip(train_rows, seeds)):
        rng = np.random.default_rng(seed)
        n = len(rows)
        for e in range(epochs):
            order = np.asarray(rows)[rng.permutation(n)]
            flat = np.zeros(steps * batch_size, dtype=np.intp)
            flat[:n] = order
            index[e, :, f] = flat.reshape(steps, batch_size)
            valid[e, :, f] = (np.arange(steps * batch_size) < n).reshape(steps, batch_size)
    return index, valid


def _forward(Z, w: StackedWeights, slope: float):
    """Z (F, B, D) -> hidden pre-activations (F, B, H), hidden (F, B, H), probabilities (F, B, C)."""
    A1 = Z @ w.W1 + w.b1[:, None, :]
    H1 = np.where(A1 >= 0, A1, slope * A1)
    return A1, H1, softmax_stacked(H1 @ w.W2 + w.b2[:, None, :])


def softmax_stacked(logits: np.ndarray) -> np.ndarray:
    """Softmax over the last axis of (F, B, C)."""
    F, B, C = logits.shape
    return softmax(logits.reshape(F * B, C)).reshape(F, B, C)


def predict(R: np.ndarray, rows: list, mean: np.ndarray, scale: np.ndarray, w: StackedWeights,
            slope: float) -> list:
    """Probabilities of each fold's network for its own rows of raw inputs ``R`` (n, D).

    ``mean`` and ``scale`` (F, D) are each fold's standardisation. Returns a list of F arrays (n_f, C).
    """
    out = []
    for f, r in enumerate(rows):
        Z = (R[r] - mean[f]) / scale[f]
        W1, b1, W2, b2 = w.fold(f)
        A1 = Z @ W1 + b1
        out.append(softmax(np.where(A1 >= 0, A1, slope * A1) @ W2 + b2))
    return out


def train(R: np.ndarray, y: np.ndarray, mean: np.ndarray, scale: np.ndarray, init: StackedWeights,
          index: np.ndarray, valid: np.ndarray, hp: Hyperparameters, val_rows: list | None = None,
          progress=None) -> tuple[StackedWeights, np.ndarray, np.ndarray]:
    """Train F networks at once.

    Parameters
    ----------
    R : ndarray, shape (n, D)
        Raw (unstandardised) inputs of all spectra.
    y : ndarray of int, shape (n,)
    mean, scale : ndarray, shape (F, D)
        Standardisation of each fold (from its training rows).
    init : StackedWeights
        Initial weights; not modified.
    index, valid : from :func:`batch_orders`
    hp : Hyperparameters
        ``learning_rate``, ``l2`` and ``leaky_slope`` are used; epochs and batches come from ``index``.
    val_rows : list of F int arrays, optional
        Rows on which to report each fold's loss after every epoch.
    progress : callable, optional
        Called after each epoch with the number of epochs done and that epoch's ``train_loss`` (F,).

    Returns
    -------
    weights : StackedWeights
    train_loss : ndarray, shape (epochs, F)
        Mean over the epoch's batches of the batch loss (cross-entropy + L2), weighted by batch size.
    val_loss : ndarray, shape (epochs, F)
        Cross-entropy + L2 on ``val_rows`` after each epoch (NaN without ``val_rows``).
    """
    epochs, steps, F, B = index.shape
    # Each fold's standardised inputs, once: every step then gathers its batch from them.
    Zs = (R[None] - mean[:, None, :]) / scale[:, None, :]
    folds = np.arange(F)[:, None]
    w = StackedWeights(*(p.copy() for p in init.params()))
    m = [np.zeros_like(p) for p in w.params()]
    v = [np.zeros_like(p) for p in w.params()]
    t = np.zeros(F)
    lr, l2, slope = hp.learning_rate, hp.l2, hp.leaky_slope
    train_loss = np.zeros((epochs, F))
    val_loss = np.full((epochs, F), np.nan)
    if val_rows is not None:
        vmax = max(len(r) for r in val_rows)
        vidx = np.zeros((F, vmax), dtype=np.intp)
        vmask = np.zeros((F, vmax), dtype=bool)
        for f, r in enumerate(val_rows):
            vidx[f, :len(r)], vmask[f, :len(r)] = r, True
    for e in range(epochs):
        seen = np.zeros(F)
        for s in range(steps):
            idx, ok = index[e, s], valid[e, s]
            count = ok.sum(axis=1)
            active = count > 0
            Z = Zs[folds, idx]
            A1, H1, P = _forward(Z, w, slope)
            yb = y[idx]
            weight = ok / np.maximum(count, 1)[:, None]  # mean over each fold's real rows
            p_true = np.take_along_axis(P, yb[..., None], axis=-1)[..., 0]
            batch_loss = -(np.log(p_true + 1e-300) * weight).sum(axis=1) + l2 * (
                (w.W1 ** 2).sum(axis=(1, 2)) + (w.W2 ** 2).sum(axis=(1, 2)))
            train_loss[e] += batch_loss * count
            seen += count
            dA2 = P.copy()
            np.put_along_axis(dA2, yb[..., None], np.take_along_axis(P, yb[..., None], axis=-1) - 1, axis=-1)
            dA2 *= weight[..., None]
            dA1 = (dA2 @ w.W2.transpose(0, 2, 1)) * np.where(A1 >= 0, 1.0, slope)
            grads = [Z.transpose(0, 2, 1) @ dA1 + 2 * l2 * w.W1, dA1.sum(axis=1),
                     H1.transpose(0, 2, 1) @ dA2 + 2 * l2 * w.W2, dA2.sum(axis=1)]
            t += active
            alpha = lr * np.sqrt(1 - ADAM_BETA_2 ** np.maximum(t, 1)) / (1 - ADAM_BETA_1 ** np.maximum(t, 1))
            for p, g, mp, vp in zip(w.params(), grads, m, v):
                shape = (F,) + (1,) * (p.ndim - 1)
                act = active.reshape(shape)
                mp += np.where(act, (g - mp) * (1 - ADAM_BETA_1), 0.0)
                vp += np.where(act, (g * g - vp) * (1 - ADAM_BETA_2), 0.0)
                p -= np.where(act, alpha.reshape(shape) * mp / (np.sqrt(vp) + ADAM_EPSILON), 0.0)
        train_loss[e] /= np.maximum(seen, 1)
        if val_rows is not None:
            P = _forward(Zs[folds, vidx], w, slope)[2]
            p_true = np.take_along_axis(P, y[vidx][..., None], axis=-1)[..., 0]
            ce = -(np.log(p_true + 1e-300) * vmask).sum(axis=1) / vmask.sum(axis=1)
            val_loss[e] = ce + l2 * ((w.W1 ** 2).sum(axis=(1, 2)) + (w.W2 ** 2).sum(axis=(1, 2)))
        if progress:
            progress(e + 1, train_loss[e])
    return w, train_loss, val_loss
