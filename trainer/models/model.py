"""The compact network of the published SERS method: its hyperparameters, and its Keras form.

Dense(5) with Leaky ReLU, then Dense(classes) with softmax; Adam, an L2 weight penalty on both
kernels, sparse categorical cross-entropy (methods.md, part A). It is trained in NumPy
(:mod:`trainer.models.compact`); the Keras model is the reference that the stacked engine is tested against
(``--engine naive``) and the third implementation of the export check.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np


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
        return asdict(self)


def build(input_size: int, n_classes: int, hp: Hyperparameters, seed: int):
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


def predict(model, Z: np.ndarray) -> np.ndarray:
    """Class probabilities of a trained Keras model for ``Z`` (n, D): shape (n, C)."""
    out = [model(Z[i:i + 4096].astype(np.float32), training=False) for i in range(0, len(Z), 4096)]
    return np.concatenate([np.asarray(o, dtype=np.float64) for o in out])

