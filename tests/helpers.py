"""Test helpers: a small bundle with random weights and a real TFLite file."""
from __future__ import annotations

import numpy as np

from device.bundle import write_bundle
from device.features import FEATURE_NAMES
from device.inputs import Standardizer
from device.network import Dense
from device.spectrum import Axis


def make_bundle(path, axis=Axis(500, 600, 101), classes=("a", "b", "c"), seed=0, examples=(), normalisation="none"):
    """Write a bundle of the compact network's shape with random weights (TFLite via the trainer)."""
    from trainer.export import tflite_bytes

    rng = np.random.default_rng(seed)
    width = axis.points + len(FEATURE_NAMES)
    layers = (Dense(rng.normal(0, 0.3, (width, 5)).astype(np.float32), rng.normal(0, 0.1, 5).astype(np.float32),
                    "leaky_relu"),
              Dense(rng.normal(0, 0.5, (5, len(classes))).astype(np.float32),
                    rng.normal(0, 0.1, len(classes)).astype(np.float32), "softmax"))
    std = Standardizer(rng.normal(0, 1, width), rng.uniform(0.5, 2, width))
    return write_bundle(path, name="tiny", class_names=classes, axis=axis, prominence=0.05, standardizer=std,
                        layers=layers, leaky_slope=0.3, tflite=tflite_bytes(layers, 0.3, width),
                        card={"description": "test bundle"}, examples=examples, normalisation=normalisation)
