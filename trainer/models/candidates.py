"""Model candidates: a preprocessing chain and a model kind with its settings, trained to what a bundle holds.

Every kind ends in the one interface the device runs (:class:`Trained`): the chain, the input layout
(preprocessed intensities, optionally followed by the 22 engineered features), an optional per-column
standardisation and a network, dense (:class:`device.inference.network.DenseNet`) or convolutional
(:class:`device.inference.convnet.ConvNet`). The kinds:

``compact``          the published compact network (:mod:`trainer.models.compact`, the stacked NumPy engine that
                     ``evaluate`` uses too), on intensities + features.
``pca-compact``, ``pls-compact``
                     a PCA or PLS projection of the intensities to ``components`` scores
                     (:mod:`trainer.models.projection`), then the compact network on the scores; the scores'
                     standardisation is folded into the projection's layer, so the bundle holds three
                     dense layers and no scaler.
``logreg``, ``linear-svm``, ``pca-logreg``, ``pls-logreg``
                     the linear kinds of :mod:`trainer.models.linear`, on the intensities, or with ``features``
                     on intensities + features (the feature columns standardised, the intensities not).
``cnn``, ``resnet``, ``se-resnet``
                     the convolutional networks of :mod:`trainer.models.keras_convnets`, on the SNV spectrum.

Dense kinds are trained on the given spectra plus :data:`AUGMENT_COPIES` copies degraded by
:func:`trainer.data.degrade.augment` (the inferior-acquisition model), so that a model keeps its accuracy on
weak, shifted, fluorescent or spiked spectra; the convolutional networks draw fresh degraded copies at
every step instead. A validation or test spectrum is never augmented.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np

from device.inference.bundle import INPUT_LAYOUT, INTENSITIES_LAYOUT
from device.inference.convnet import ConvNet
from device.inference.cost import convnet_flop_count, flop_count
from device.inference.features import DEFAULT_PROMINENCE, FEATURE_NAMES
from device.inference.inputs import Standardizer, as_chain, network_inputs, raw_inputs
from device.inference.network import Dense, DenseNet
from device.inference.spectrum import Axis
from trainer.models import linear
from trainer.models.compact import Hyperparameters, build_keras, keras_probabilities
from trainer.models.keras_convnets import CONV_MODELS, ConvHyperparameters
from trainer.models.projection import DEFAULT_COMPONENTS, fit_projection
from trainer.models.projection import describe as describe_projection

#: Degraded copies of each training spectrum added to the training set of a dense kind.
AUGMENT_COPIES = 1
#: Kinds whose head is the compact network (:mod:`trainer.models.compact`): on intensities + features, or on scores.
COMPACT_MODELS = ("compact", "pca-compact", "pls-compact")
#: Kinds with a PCA or PLS projection in front of their head.
PROJECTED_MODELS = ("pca-logreg", "pls-logreg", "pca-compact", "pls-compact")
#: Every kind ``raman-train fit --model`` takes.
KINDS = (*COMPACT_MODELS, *linear.LINEAR_MODELS, *CONV_MODELS)


@dataclass(frozen=True)
class ProjectedCompact:
    """Settings of ``pca-compact`` and ``pls-compact``: the projection's size and the compact head's training.

    Attributes
    ----------
    components : int
        Scores of the projection.
    head : Hyperparameters
        The compact network on the scores (:class:`trainer.models.compact.Hyperparameters`).
    """

    components: int = DEFAULT_COMPONENTS
    head: Hyperparameters = field(default_factory=Hyperparameters)

    def __post_init__(self):
        if self.components < 1:
            raise ValueError(f"components must be at least 1, not {self.components}")

    def as_dict(self) -> dict:
        """The settings by name: the components and the head's hyperparameters."""
        return {"components": self.components, **self.head.as_dict()}


@dataclass(frozen=True)
class Candidate:
    """One model to train: a kind, its settings and the preprocessing chain in front of it.

    Attributes
    ----------
    kind : str
        One of :data:`KINDS`.
    chain : str
        Preprocessing chain text (:mod:`device.inference.preprocess`); the convolutional kinds take ``snv``.
    settings : Hyperparameters, ProjectedCompact, LinearSettings or ConvHyperparameters
        The kind's settings (:mod:`trainer.models.compact`, :class:`ProjectedCompact`, :mod:`trainer.models.linear`,
        :mod:`trainer.models.keras_convnets`).
    features : bool
        The inputs include the 22 engineered features (always for ``compact``; never for a projected
        compact network or a convolutional one).
    augment : bool
        Train on degraded copies too (dense kinds: :data:`AUGMENT_COPIES` copies; convolutional: fresh per step).
    """

    kind: str
    chain: str = "snv"
    settings: object = None
    features: bool = False
    augment: bool = True

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ValueError(f"unknown model kind {self.kind!r}; choose one of {', '.join(KINDS)}")
        default = (Hyperparameters() if self.kind == "compact" else
                   ProjectedCompact() if self.kind in COMPACT_MODELS else
                   linear.LinearSettings(self.kind) if self.kind in linear.LINEAR_MODELS else ConvHyperparameters())
        object.__setattr__(self, "settings", self.settings if self.settings is not None else default)
        if self.kind in COMPACT_MODELS:
            object.__setattr__(self, "features", self.kind == "compact")
        if self.kind in CONV_MODELS:
            object.__setattr__(self, "features", False)
            object.__setattr__(self, "settings", replace(self.settings, augment=self.augment))

    @property
    def projected(self) -> bool:
        """Whether a PCA or PLS projection comes first (:data:`PROJECTED_MODELS`)."""
        return self.kind in PROJECTED_MODELS

    @property
    def input_layout(self) -> str:
        """The bundle's input layout: intensities + features, or intensities alone."""
        return INPUT_LAYOUT if self.features else INTENSITIES_LAYOUT

    @property
    def standardised(self) -> bool:
        """Whether the bundle standardises its inputs per column (the features always are)."""
        return self.features or self.standardised_intensities

    @property
    def standardised_intensities(self) -> bool:
        """Whether the intensity columns (not only the features) are standardised."""
        return self.kind == "compact" or (self.kind in linear.LINEAR_MODELS and self.settings.standardise)

    @property
    def name(self) -> str:
        """Short name for tables, e.g. ``pca-logreg k=30 C=10 | savgol:11:2,snv``."""
        s = self.settings
        if self.kind == "compact":
            what = f"compact h={s.hidden}"
        elif self.kind in COMPACT_MODELS:
            what = f"{self.kind} k={s.components} h={s.head.hidden}"
        elif self.kind in linear.LINEAR_MODELS:
            what = f"{self.kind}{f' k={s.components}' if s.projected else ''} C={s.regularisation:g}" + (
                " +features" if self.features else "") + (" std" if s.standardise else "")
        else:
            what = self.kind
        return f"{what} | {self.chain}"

    @property
    def options(self) -> list:
        """The ``raman-train fit`` options that train exactly this candidate."""
        s = self.settings
        opts = ["--model", self.kind, "--preprocess", self.chain]
        if self.kind in COMPACT_MODELS:
            hp = s if self.kind == "compact" else s.head
            opts += ([] if self.kind == "compact" else ["--components", str(s.components)]) + [
                "--hidden", str(hp.hidden), "--leaky-slope", f"{hp.leaky_slope:g}", "--learning-rate",
                f"{hp.learning_rate:g}", "--l2", f"{hp.l2:g}", "--epochs", str(hp.epochs), "--batch-size",
                str(hp.batch_size)]
        elif self.kind in linear.LINEAR_MODELS:
            opts += ["--C", f"{s.regularisation:g}"] + (["--components", str(s.components)] if s.projected else []) + (
                ["--standardise"] if s.standardise else []) + (["--features"] if self.features else [])
        else:
            opts += ["--steps", str(s.steps), "--batch-size", str(s.batch_size), "--learning-rate",
                     f"{s.learning_rate:g}", "--l2", f"{s.l2:g}"]
        return opts + ([] if self.augment else ["--no-augment"])

    def layer_shapes(self, points: int, n_classes: int) -> list:
        """(inputs, outputs, activation) of each dense layer; empty for a convolutional kind."""
        D = points + (len(FEATURE_NAMES) if self.features else 0)
        s = self.settings
        if self.kind == "compact":
            return [(D, s.hidden, "leaky_relu"), (s.hidden, n_classes, "softmax")]
        if self.kind in COMPACT_MODELS:
            k, h = s.components, s.head.hidden
            return [(D, k, "linear"), (k, h, "leaky_relu"), (h, n_classes, "softmax")]
        if self.kind in linear.LINEAR_MODELS:
            return ([(D, s.components, "linear"), (s.components, n_classes, "softmax")] if s.projected
                    else [(D, n_classes, "softmax")])
        return []

    def flop(self, axis: Axis, n_classes: int) -> int | None:
        """Analytic FLOP per spectrum on the device (:mod:`device.inference.cost`), known before training.

        None for a convolutional kind, whose cost is counted once it is built.
        """
        shapes = self.layer_shapes(axis.points, n_classes)
        if not shapes:
            return None
        layers = [Dense(np.zeros((d, u)), np.zeros(u), act) for d, u, act in shapes]
        return flop_count(axis, layers, as_chain(self.chain, axis), features=self.features,
                          standardise=self.standardised)["total"]


@dataclass(frozen=True)
class Trained:
    """A trained candidate: what the bundle stores, the trained library's own prediction, and card entries.

    Attributes
    ----------
    candidate : Candidate
    axis : Axis
    chain : Chain
    standardizer : Standardizer or None
    network : DenseNet or ConvNet
    reference : callable
        ``reference(Y)`` -> (n, C) probabilities of spectra ``Y`` (n, points) on the axis, computed by the
        library that trained the model (Keras or scikit-learn): the outside oracle of the export check.
    reference_name : str
        ``keras`` or ``scikit-learn``.
    card : dict
        ``network`` and ``hyperparameters`` entries, and ``training`` metrics, for the model card.
    """

    candidate: Candidate
    axis: Axis
    chain: object
    standardizer: Standardizer | None
    network: object
    reference: object
    reference_name: str
    card: dict = field(default_factory=dict)

    def inputs(self, Y: np.ndarray) -> np.ndarray:
        """Network inputs for spectra ``Y`` (n, points) on the axis, as the bundle computes them."""
        return network_inputs(Y, self.axis, DEFAULT_PROMINENCE, self.chain, self.candidate.features,
                              self.standardizer)

    def probabilities(self, Y: np.ndarray) -> np.ndarray:
        """Class probabilities (n, C) of the exported network for spectra ``Y`` (n, points) on the axis."""
        return self.network.probabilities(self.inputs(Y))

    def predict(self, Y: np.ndarray) -> np.ndarray:
        """Predicted class (n,) of spectra ``Y`` (n, points)."""
        return self.probabilities(Y).argmax(axis=1)


class TrainingSpectra:
    """Labelled spectra, a degraded copy of each, and each chain's inputs of them computed once.

    Parameters
    ----------
    Y : ndarray, shape (n, points)
        Spectra on ``axis``.
    y : ndarray of int, shape (n,)
    axis : Axis
    seed : int
        Seed of the degraded copies (:func:`trainer.data.degrade.augment`); row ``i``'s copy is row ``n + i``.
    augment : bool
        Make the copies (:data:`AUGMENT_COPIES` per spectrum).
    """

    def __init__(self, Y: np.ndarray, y: np.ndarray, axis: Axis, seed: int, augment: bool = True):
        from trainer.data.degrade import augment as degraded

        self.axis, self.n = axis, len(y)
        Y = np.asarray(Y, dtype=np.float64)
        rng = np.random.default_rng([seed, 2026])
        copies = [degraded(Y, axis.values, rng) for _ in range(AUGMENT_COPIES if augment else 0)]
        self.Y = np.concatenate([Y, *copies])
        self.y = np.tile(np.asarray(y), len(copies) + 1)
        self.copies = len(copies)
        self._inputs: dict = {}

    def rows(self, rows: np.ndarray, augment: bool) -> np.ndarray:
        """Indices of spectra ``rows`` (into the first n) followed, with ``augment``, by those of their copies."""
        rows = np.asarray(rows)
        return np.concatenate([rows + k * self.n for k in range((self.copies if augment else 0) + 1)])

    def inputs(self, chain, features: bool) -> np.ndarray:
        """Chain output (or chain output + 22 features) of every spectrum and copy: (n (1 + copies), D)."""
        key = (chain.text, features)
        if key not in self._inputs:
            self._inputs[key] = (raw_inputs(self.Y, self.axis, DEFAULT_PROMINENCE, chain) if features
                                 else chain.apply(self.Y))
        return self._inputs[key]


def as_stored(net: DenseNet) -> DenseNet:
    """The network with its weights rounded to float32, as ``model.npz`` and ``model.tflite`` hold them."""
    return DenseNet(tuple(Dense(np.float32(layer.kernel).astype(np.float64), np.float32(layer.bias).astype(np.float64),
                                layer.activation) for layer in net.layers), net.leaky_slope)


def train(candidate: Candidate, spectra: TrainingSpectra, rows: np.ndarray, n_classes: int, seed: int,
          log=None, final: bool = True) -> Trained:
    """Train ``candidate`` on spectra ``rows`` of ``spectra`` (and their degraded copies, if it augments).

    ``final`` False skips what only an exported model needs (the SVM's probability calibration, which does
    not change its predicted class).

    Raises
    ------
    ValueError
        If a projection asks for more components than the training spectra allow.
    """
    axis = spectra.axis
    chain = as_chain(candidate.chain, axis)
    if candidate.kind in CONV_MODELS:
        return _train_conv(candidate, spectra.Y[rows], spectra.y[rows], axis, chain, n_classes, seed, log)
    if candidate.augment and not spectra.copies:
        raise ValueError("an augmented candidate needs TrainingSpectra made with augment=True")
    idx = spectra.rows(rows, candidate.augment)
    R, y = spectra.inputs(chain, candidate.features)[idx], spectra.y[idx]
    if candidate.kind == "compact":
        return _train_compact(candidate, R, y, axis, chain, n_classes, seed, log)
    if candidate.kind in COMPACT_MODELS:
        return _train_projected_compact(candidate, R, y, axis, chain, n_classes, seed, log)
    return _train_linear(candidate, R, y, axis, chain, n_classes, seed, final)


def _train_compact(candidate, R, y, axis, chain, n_classes, seed, log) -> Trained:
    """The compact network on raw inputs ``R`` (n, points + 22)."""
    from trainer.models.compact import fit_compact

    hp = candidate.settings
    fitted = fit_compact(R, y, n_classes, hp, seed, log)
    std, layers, loss = fitted.standardizer, fitted.layers, fitted.loss

    def reference(A):
        """Keras' forward pass of the trained weights: the third implementation of the export check."""
        return _keras_probabilities(layers, hp, n_classes, seed,
                                    std.transform(raw_inputs(A, axis, DEFAULT_PROMINENCE, chain)))

    card = {"network": {"kind": "compact", "architecture": f"Dense({hp.hidden}) + LeakyReLU -> Dense({n_classes}) "
                                                            "+ softmax",
                        "leaky_relu_slope": hp.leaky_slope,
                        "parameters": int(sum(layer.kernel.size + layer.bias.size for layer in layers))},
            "hyperparameters": {**hp.as_dict(), "optimizer": "Adam", "loss": "sparse categorical cross-entropy"},
            "training": {"final_loss": loss[-1], "loss_per_epoch": loss}}
    return Trained(candidate, axis, chain, std, DenseNet(layers, hp.leaky_slope), reference, "keras", card)


def _keras_probabilities(layers, hp, n_classes: int, seed: int, Z: np.ndarray) -> np.ndarray:
    """Probabilities (n, C) of the Keras compact network holding the trained ``layers`` (hidden, output).

    For its standardised inputs ``Z`` (n, D); the network is :func:`trainer.models.compact.build_keras`'s.
    """
    model = build_keras(Z.shape[1], n_classes, hp, seed)
    model.set_weights([p for layer in layers for p in (layer.kernel, layer.bias)])
    return keras_probabilities(model, Z)


def _train_projected_compact(candidate, R, y, axis, chain, n_classes, seed, log) -> Trained:
    """A PCA or PLS projection of the chain's output ``R`` (n, points), then the compact network on the scores.

    The network standardises its scores ``S`` by their training mean ``m`` and deviation ``s``; that is folded
    into the projection's layer (kernel ``W / s``, bias ``(b - m) / s``), so the bundle needs no scaler.
    """
    from trainer.models.compact import fit_compact

    s, hp = candidate.settings, candidate.settings.head
    method = candidate.kind[:3]
    projection = fit_projection(method, R, y, s.components, n_classes, seed)
    fitted = fit_compact(projection.transform(R), y, n_classes, hp, seed, log)
    std, (hidden, output) = fitted.standardizer, fitted.layers
    first = Dense(projection.layer.kernel / std.scale, (projection.layer.bias - std.mean) / std.scale, "linear")
    net = as_stored(DenseNet((first, hidden, output), hp.leaky_slope))

    def reference(A):
        """scikit-learn's projection, then Keras' forward pass of the trained head."""
        return _keras_probabilities((hidden, output), hp, n_classes, seed,
                                    std.transform(projection.transform(chain.apply(A))))

    card = {"network": {"kind": candidate.kind,
                        "architecture": f"{describe_projection(method, s.components)}, the scores' standardisation "
                                        f"folded into it -> Dense({hp.hidden}) + LeakyReLU -> Dense({n_classes}) "
                                        "+ softmax",
                        "leaky_relu_slope": hp.leaky_slope, "parameters": net.parameters},
            "hyperparameters": {**s.as_dict(), "optimizer": "Adam", "loss": "sparse categorical cross-entropy",
                                "projection_fitted_with": "scikit-learn (PCA, PLSRegression)"},
            "training": {"final_loss": fitted.loss[-1], "loss_per_epoch": fitted.loss}}
    return Trained(candidate, axis, chain, None, net, reference, "keras", card)


def _train_linear(candidate, R, y, axis, chain, n_classes, seed, final) -> Trained:
    """A linear kind on the chain's output ``R`` (n, points), or with features (n, points + 22)."""
    settings = candidate.settings
    if candidate.features:
        std = _feature_standardizer(R, axis.points, settings.standardise)
        model = linear.fit_linear(replace(settings, standardise=False), std.transform(R), y, n_classes, seed,
                                  calibrate=final)

        def reference(A):
            return model.reference(std.transform(raw_inputs(A, axis, DEFAULT_PROMINENCE, chain)))
    else:
        model = linear.fit_linear(settings, R, y, n_classes, seed, calibrate=final)
        std = model.standardizer

        def reference(A):
            return model.reference(chain.apply(A))

    net = as_stored(model.network)
    inputs = axis.points + (len(FEATURE_NAMES) if candidate.features else 0)
    card = {"network": {"kind": candidate.kind, "architecture": linear.describe(settings, n_classes, inputs),
                        "layers": [f"Dense({layer.kernel.shape[1]}, {layer.activation})" for layer in net.layers],
                        "parameters": net.parameters},
            "hyperparameters": {**settings.as_dict(), "features": candidate.features,
                                "trained_with": "scikit-learn (LinearSVC, LogisticRegression Newton-CG and L-BFGS, "
                                                "PCA, PLSRegression)",
                                **({"calibration": model.calibration} if model.calibration else {}),
                                **({"fit_warnings": model.notes} if model.notes else {})}}
    return Trained(candidate, axis, chain, std, net, reference, "scikit-learn", card)


def _feature_standardizer(R: np.ndarray, points: int, intensities: bool) -> Standardizer:
    """Column statistics of intensities + features ``R`` (n, points + 22): the feature columns standardised.

    The intensity columns are standardised too only when ``intensities``.
    """
    std = Standardizer.fit(R)
    if intensities:
        return std
    mean, scale = std.mean.copy(), std.scale.copy()
    mean[:points], scale[:points] = 0.0, 1.0
    return Standardizer(mean, scale)


def _train_conv(candidate, Y, y, axis, chain, n_classes, seed, log) -> Trained:
    from trainer.models import keras_convnets

    hp = candidate.settings
    model, loss = keras_convnets.train(candidate.kind, Y, axis.values, y, n_classes, hp, seed, log)
    net: ConvNet = keras_convnets.to_convnet(model, candidate.kind, hp)
    card = {"network": {"kind": candidate.kind, "architecture": keras_convnets.__doc__.split("\n\n")[1].strip(),
                        "parameters": net.parameters, "batch_normalisation": "folded into the convolutions at export",
                        "flop_note": "counted from the built network"},
            "hyperparameters": {**hp.as_dict(), "optimizer": "Adam", "loss": "sparse categorical cross-entropy"},
            "training": {"final_loss": loss[-1], "loss_per_epoch": loss}}
    return Trained(candidate, axis, chain, None, net, lambda A: keras_convnets.predict(model, chain.apply(A)), "keras",
                   card)


def device_flop(trained: Trained) -> dict:
    """FLOP per spectrum of a trained candidate on the device, by stage (:mod:`device.inference.cost`)."""
    c = trained.candidate
    if isinstance(trained.network, ConvNet):
        return convnet_flop_count(trained.axis, trained.network, trained.chain)
    return flop_count(trained.axis, trained.network.layers, trained.chain, features=c.features,
                      standardise=trained.standardizer is not None)
