"""1-D convolutional classifiers in Keras: plain CNN, ResNet and SE-ResNet, their training and their NumPy form.

The three share one shape so that a comparison isolates what residual connections and
Squeeze-and-Excitation add (methods.md, part B):

* stem: Conv1D(w0, 7, stride 2) + BN + ReLU, MaxPool(2): a quarter of the input length;
* three stages of widths ``widths`` (default 8, 16, 32), the first at stride 1, the others at stride 2,
  each two Conv1D(k) + BN layers:
    - ``cnn``: conv-BN-ReLU, conv-BN-ReLU;
    - ``resnet``: conv-BN-ReLU, conv-BN, added to the input (a 1 x 1 strided conv + BN where the shape
      changes), ReLU;
    - ``se-resnet``: the ResNet block with a Squeeze-and-Excitation gate on the second conv's output
      (global average, Dense(C / r) + ReLU, Dense(C) + sigmoid, channels rescaled) before the addition;
* global average pooling, Dense(classes) + softmax.

Why these sizes: spectra have 1,000-3,000 points at ~1 cm-1 and Raman bands are 5-20 cm-1 wide, so a
strided 7-tap stem and a pool lose nothing a band needs; halving the length while doubling the channels
keeps each stage's cost about equal; one block per stage (8 convolutions deep with the stem) and
8-32 channels keep the networks at ~11,000 weights, in proportion to data sets of 10^2-10^4
spectra, and at ~3 x 10^6 FLOP per 1,500-point spectrum, a few milliseconds in NumPy on a Pi-class CPU.
The SE ratio is 4, not SENet's 16, because 16 would leave 0-2 units for 8-32 channels. Kernel 5 gives
the last stage a receptive field of ~190 points. The inputs are the spectra on the model axis after
standard normal variate normalisation.

Training uses Adam and an L2 penalty on kernels for a fixed number of optimizer steps (1,000 batches
of 32), not epochs, so that a 100-spectrum set gets as many updates as a 10,000-spectrum one (30
epochs of 75 spectra are 90 steps, far too few). The steps run in rounds of at least
:data:`ROUND_BATCHES` batches, each over a fresh copy of the training spectra (tiled when the set is
small) with, by default, augmentation that imitates inferior acquisitions
(:func:`trainer.data.degrade.augment`: lower signal with shot and read noise, a fluorescence background,
shifts of a few cm-1, cosmic spikes), applied before normalisation.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from device.inference.convnet import Conv, ConvNet, MaxPool, Residual, SqueezeExcitation
from device.inference.inputs import normalise

#: Model names of the convolutional family.
CONV_MODELS = ("cnn", "resnet", "se-resnet")
#: Batch-normalisation moving-average momentum. With Keras' 0.99 the inference statistics keep 13 % of
#: their initial values after 200 steps; 0.9 settles them within a few dozen, so short runs are sound.
BN_MOMENTUM = 0.9
#: Least number of batches per training round (one fresh augmented copy of the data, one Keras fit call).
ROUND_BATCHES = 50


@dataclass(frozen=True)
class ConvHyperparameters:
    """Architecture and training settings of the convolutional models (see the module docstring)."""

    widths: tuple = (8, 16, 32)
    kernel: int = 5
    stem_kernel: int = 7
    se_ratio: int = 4
    learning_rate: float = 1e-3
    l2: float = 1e-4
    steps: int = 1000
    batch_size: int = 32
    augment: bool = True

    def as_dict(self) -> dict:
        """The settings by name (``widths`` as a list)."""
        d = asdict(self)
        d["widths"] = list(self.widths)
        return d


def build(kind: str, points: int, n_classes: int, hp: ConvHyperparameters, seed: int):
    """A freshly initialised, compiled Keras model of ``kind`` (one of :data:`CONV_MODELS`) for ``points`` inputs."""
    from trainer.quiet import keras as import_keras

    keras = import_keras()
    L = keras.layers

    if kind not in CONV_MODELS:
        raise ValueError(f"unknown convolutional model {kind!r}; choose one of {', '.join(CONV_MODELS)}")
    keras.utils.set_random_seed(seed)
    reg = keras.regularizers.L2(hp.l2)

    def conv_bn(x, filters, width, stride, name, relu=True):
        x = L.Conv1D(filters, width, strides=stride, padding="same", use_bias=False, kernel_regularizer=reg,
                     name=f"{name}_conv")(x)
        x = L.BatchNormalization(momentum=BN_MOMENTUM, name=f"{name}_bn")(x)
        return L.ReLU(name=f"{name}_relu")(x) if relu else x

    inputs = keras.Input(shape=(points,), name="spectrum")
    x = L.Reshape((points, 1))(inputs)
    x = conv_bn(x, hp.widths[0], hp.stem_kernel, 2, "stem")
    x = L.MaxPooling1D(2, name="pool")(x)
    channels = hp.widths[0]
    for i, width in enumerate(hp.widths):
        stride = 1 if i == 0 else 2
        if kind == "cnn":
            x = conv_bn(x, width, hp.kernel, stride, f"s{i}a")
            x = conv_bn(x, width, hp.kernel, 1, f"s{i}b")
        else:
            h = conv_bn(x, width, hp.kernel, stride, f"s{i}a")
            h = conv_bn(h, width, hp.kernel, 1, f"s{i}b", relu=False)
            if kind == "se-resnet":
                z = L.GlobalAveragePooling1D(name=f"s{i}_squeeze")(h)
                z = L.Dense(max(1, width // hp.se_ratio), activation="relu", name=f"s{i}_se1")(z)
                z = L.Dense(width, activation="sigmoid", name=f"s{i}_se2")(z)
                h = L.Multiply(name=f"s{i}_excite")([h, L.Reshape((1, width))(z)])
            shortcut = conv_bn(x, width, 1, stride, f"s{i}sc", relu=False) if (stride != 1 or width != channels) else x
            x = L.ReLU(name=f"s{i}_out")(L.Add(name=f"s{i}_add")([h, shortcut]))
        channels = width
    x = L.GlobalAveragePooling1D(name="gap")(x)
    outputs = L.Dense(n_classes, activation="softmax", kernel_regularizer=reg, name="head")(x)
    model = keras.Model(inputs, outputs, name=kind)
    model.compile(optimizer=keras.optimizers.Adam(hp.learning_rate), loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    return model


def train(kind: str, Y: np.ndarray, shift: np.ndarray, y: np.ndarray, n_classes: int, hp: ConvHyperparameters,
          seed: int, log=None):
    """Train on spectra ``Y`` (n, points) on the model axis ``shift`` (points,) cm-1, labels ``y`` (n,).

    Runs about ``hp.steps`` optimizer steps in rounds (see the module docstring); inputs are SNV-normalised.
    ``log``, if given, gets progress lines (steps done, loss, time left).

    Returns
    -------
    model : keras.Model
    loss : list of float
        Training loss per round (including the L2 penalty).
    """
    from trainer.data.degrade import augment
    from trainer.progress import Progress

    model = build(kind, Y.shape[1], n_classes, hp, seed)
    rng = np.random.default_rng(seed)
    n = len(Y)
    copies = max(1, -(-ROUND_BATCHES * hp.batch_size // n))
    rounds = max(1, round(hp.steps / -(-copies * n // hp.batch_size)))
    Yr, yr = np.tile(Y, (copies, 1)), np.tile(y, copies)
    per_round = -(-len(yr) // hp.batch_size)
    progress = Progress(rounds * per_round, "step", log) if log else None
    loss = []
    for r in range(rounds):
        X = normalise(augment(Yr, shift, rng) if hp.augment else Yr, "snv").astype(np.float32)
        h = model.fit(X, yr, epochs=r + 1, initial_epoch=r, batch_size=hp.batch_size, shuffle=True, verbose=0)
        loss.append(float(h.history["loss"][-1]))
        if progress:
            progress((r + 1) * per_round, loss[-1])
    return model, loss


def predict(model, X: np.ndarray) -> np.ndarray:
    """Class probabilities (n, C) of a Keras model for normalised spectra ``X`` (n, points)."""
    out = [model(X[i:i + 512].astype(np.float32), training=False) for i in range(0, len(X), 512)]
    return np.concatenate([np.asarray(o, dtype=np.float64) for o in out])


def _folded(model, name: str, stride: int, relu: bool) -> Conv:
    """Conv ``name``_conv with its batch normalisation ``name``_bn folded in (float32 values)."""
    kernel = model.get_layer(f"{name}_conv").get_weights()[0].astype(np.float64)
    bn = model.get_layer(f"{name}_bn")
    gamma, beta, mean, var = (w.astype(np.float64) for w in bn.get_weights())
    scale = gamma / np.sqrt(var + bn.epsilon)
    return Conv((kernel * scale).astype(np.float32), (beta - mean * scale).astype(np.float32), stride,
                "relu" if relu else "linear")


def to_convnet(model, kind: str, hp: ConvHyperparameters) -> ConvNet:
    """The trained Keras model as a device :class:`~device.inference.convnet.ConvNet`, batch normalisation folded."""
    body = [_folded(model, "stem", 2, True), MaxPool(2)]
    channels = hp.widths[0]
    for i, width in enumerate(hp.widths):
        stride = 1 if i == 0 else 2
        if kind == "cnn":
            body += [_folded(model, f"s{i}a", stride, True), _folded(model, f"s{i}b", 1, True)]
        else:
            se = None
            if kind == "se-resnet":
                (w1, b1), (w2, b2) = (model.get_layer(f"s{i}_se{j}").get_weights() for j in (1, 2))
                se = SqueezeExcitation(w1, b1, w2, b2)
            shortcut = _folded(model, f"s{i}sc", stride, False) if (stride != 1 or width != channels) else None
            body.append(Residual(_folded(model, f"s{i}a", stride, True), _folded(model, f"s{i}b", 1, False), se,
                                 shortcut))
        channels = width
    kernel, bias = model.get_layer("head").get_weights()
    return ConvNet(tuple(body), kernel.astype(np.float32), bias.astype(np.float32))
