"""The compact network of the published SERS method: its hyperparameters, its training, and its Keras form.

Dense(5) with Leaky ReLU, then Dense(classes) with softmax; Adam, an L2 weight penalty on both kernels,
sparse categorical cross-entropy (methods.md, part A). It is trained in NumPy: :func:`fit_compact` fits one
network with the stacked engine (:mod:`trainer.models.stacked`). The Keras model (:func:`build_keras`,
TensorFlow imported only when it is called) is the reference that the stacked engine is tested against
(``--engine naive``) and the third implementation of the export check.

``raman-train fit`` (its validation pairs and its final fit), ``evaluate`` (:mod:`trainer.evaluation.protocol`,
all folds of a repeat at once) and ``compare`` train from seeds derived the same way: :func:`pair_seed`
gives each pair of a split its training seed, :func:`stream_seeds` turns a training seed into the
initialisation and batch-order seeds. So fold f of repeat r of ``evaluate`` is exactly :func:`fit_compact`
on that fold's training rows with ``pair_seed(seed, r, f)``.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from device.inference.inputs import Standardizer
from device.inference.network import Dense
from trainer.models import stacked
from trainer.progress import Progress


@dataclass(frozen=True)
class Hyperparameters:
    """Training settings of the compact network.

    Attributes
    ----------
    hidden : int
        Units of the hidden layer (the method uses 5).
    leaky_slope : float
        Leaky ReLU slope for negative inputs. 0.3 is Keras' ``LeakyReLU`` layer default, which a
        Keras implementation of the method gets unless it says otherwise.
    learning_rate : float
        Adam step size.
    l2 : float
        L2 penalty coefficient on the kernels (Keras ``l2(l2)`` adds ``l2 * sum(w**2)`` to the loss).
    epochs : int
        Passes over the training data (the method uses 50).
    batch_size : int
    """

    hidden: int = 5
    leaky_slope: float = 0.3
    learning_rate: float = 1e-3
    l2: float = 1e-3
    epochs: int = 50
    batch_size: int = 32

    def as_dict(self) -> dict:
        """The settings by name."""
        return asdict(self)


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
    """Fit the standardisation and the network: the stacked engine (:func:`trainer.models.stacked.train`), one net.

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


def build_keras(input_size: int, n_classes: int, hp: Hyperparameters, seed: int):
    """A freshly initialised Keras model (Glorot-uniform kernels, zero biases) for the given seed."""
    from trainer.quiet import keras as import_keras

    keras = import_keras()
    keras.utils.set_random_seed(seed)
    reg = keras.regularizers.L2(hp.l2)
    model = keras.Sequential([
        keras.Input(shape=(input_size,)),
        keras.layers.Dense(hp.hidden, kernel_regularizer=reg),
        keras.layers.LeakyReLU(negative_slope=hp.leaky_slope),
        keras.layers.Dense(n_classes, activation="softmax", kernel_regularizer=reg),
    ])
    model.compile(optimizer=keras.optimizers.Adam(hp.learning_rate), loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    return model


def keras_probabilities(model, Z: np.ndarray) -> np.ndarray:
    """Class probabilities of a trained Keras model for ``Z`` (n, D): shape (n, C)."""
    out = [model(Z[i:i + 4096].astype(np.float32), training=False) for i in range(0, len(Z), 4096)]
    return np.concatenate([np.asarray(o, dtype=np.float64) for o in out])
