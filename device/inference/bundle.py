"""Model bundles: a directory holding the weights twice (NumPy and TFLite) and a model card.

Layout::

    BUNDLE/
      model.json     model card: provenance, classes, axis, metrics, and the SHA-256 of every file
      model.npz      pure NumPy: everything the NumPy backend needs (loaded with allow_pickle=False);
                     its preprocessing chain (device.inference.preprocess) is the JSON spec "preprocess" with the
                     arrays "preprocess.I.NAME" of step I; a chain of SNV alone or no step is stored, as
                     bundles always stored it, as the "normalisation" entry snv or none (absent: none).
                     Its "input_layout" says what the network takes: "intensities+features" (the
                     preprocessed intensities and the 22 features, standardised with "scaler_mean" and
                     "scaler_scale") or "intensities" (the preprocessed intensities alone, standardised
                     only if the scaler entries are present). Independently of the layout, the network
                     ("network_kind") is dense ("layer_activations", "layerI_kernel", "layerI_bias",
                     "leaky_slope": the compact network, a linear model, a projection and a linear head)
                     or convolutional (device.inference.convnet: its operations listed as JSON in "architecture",
                     weights "net.*"). "introduced_in" (JSON) gives the raman-edge version that
                     introduced the network kind, the input layout and each preprocessing step, and
                     "written_by" the version that wrote the bundle; the card's "format" repeats all three.
                     Bundles written before these entries have the kind inferred from "architecture".
      model.tflite   the same network for a TFLite runtime
      examples/...   optional example spectra with their expected labels (listed in the card)

Loading verifies the schema version and the hash of every file, and refuses a bundle with a missing,
modified or unlisted file, so what runs is exactly what was exported; a network kind, input layout or
preprocessing step this release does not know is refused by name, with the version that introduced it.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from device.errors import BundleError
from device.inference.convnet import Conv, ConvNet, MaxPool, from_arrays, to_arrays
from device.inference.features import FEATURE_NAMES
from device.inference.inputs import NORMALISATIONS, Standardizer, as_chain, network_inputs
from device.inference.network import ACTIVATIONS, Dense, DenseNet
from device.inference.ood import OODDetector
from device.inference.preprocess import STEPS, Chain, UnknownStepError
from device.inference.sealed import read_arrays, read_card, verify_files, write_sealed
from device.inference.signature import verify_signature
from device.inference.spectrum import Axis
from device.inference.validation import MAX_AXIS_POINTS

#: Version of the bundle format this code reads and writes.
SCHEMA_VERSION = 1
CARD_FILE = "model.json"
NPZ_FILE = "model.npz"
TFLITE_FILE = "model.tflite"
#: Network inputs: preprocessed intensities on the axis, then the engineered features, standardised.
INPUT_LAYOUT = "intensities+features"
#: Network inputs: the preprocessed intensities on the axis alone (standardised if the bundle has a scaler).
INTENSITIES_LAYOUT = "intensities"
#: The input layouts this release reads, with the raman-edge version that introduced each.
INPUT_LAYOUTS = {INPUT_LAYOUT: "0.1.0", INTENSITIES_LAYOUT: "0.1.0"}
#: The network kinds this release reads, with the raman-edge version that introduced each.
NETWORK_KINDS = {"dense": "0.1.0", "convolutional": "0.1.0"}
#: Entries of ``model.npz`` that hold text (Unicode); every other entry holds finite numbers.
TEXT_ENTRIES = ("name", "input_layout", "class_names", "feature_names", "normalisation", "layer_activations",
                "architecture", "preprocess", "network_kind", "introduced_in", "written_by")
#: Most bytes the arrays of ``model.npz`` may unpack to: far above any model (the shipped one: 0.1 MB),
#: low enough for a board's memory.
MAX_NPZ_BYTES = 64 * 1024 * 1024


@dataclass(frozen=True)
class ModelBundle:
    """A verified model bundle, ready for a backend.

    Attributes
    ----------
    path : Path
        The bundle directory.
    card : dict
        The parsed model card (``model.json``).
    model_id : str
        ``NAME@`` followed by the first 12 hex digits of the SHA-256 of ``model.npz``.
    class_names : tuple of str
    axis : Axis
    prominence : float
        Peak threshold of the features, fraction of each spectrum's range.
    preprocess : Chain
        The preprocessing chain applied first to the spectra on the axis (:mod:`device.inference.preprocess`).
    standardizer : Standardizer or None
        Column statistics of the training inputs, shape (inputs,) each; None: the inputs are not standardised.
    layers : tuple of Dense
        Dense network: its layers (empty for a convolutional network).
    leaky_slope : float
    convnet : ConvNet or None
        Convolutional network instead of dense layers.
    ood : OODDetector or None
        The out-of-distribution detector fitted with the model (bundles may lack one).
    input_layout : str
        What the network takes, one of :data:`INPUT_LAYOUTS`, whichever network it is.
    network_kind : str
        ``dense`` or ``convolutional`` (:data:`NETWORK_KINDS`), as stored or, in older bundles, inferred.
    written_by : str or None
        The raman-edge version that wrote the bundle; None for bundles written before it was recorded.
    """

    path: Path
    card: dict
    name: str
    model_id: str
    class_names: tuple
    axis: Axis
    prominence: float
    standardizer: Standardizer | None
    layers: tuple
    leaky_slope: float
    preprocess: Chain = Chain()
    convnet: ConvNet | None = None
    ood: OODDetector | None = None
    input_layout: str = INPUT_LAYOUT
    network_kind: str = "dense"
    written_by: str | None = None

    @property
    def features(self) -> bool:
        """True when the network inputs include the 22 engineered features."""
        return self.input_layout == INPUT_LAYOUT

    @property
    def input_size(self) -> int:
        """Number of network inputs: axis points (+ 22 features for the layout with features)."""
        return self.axis.points + (len(FEATURE_NAMES) if self.features else 0)

    @property
    def network(self) -> DenseNet | ConvNet:
        """The network, whichever kind: ``network.probabilities(Z)`` (n, C) of inputs ``Z`` (n, :attr:`input_size`)."""
        return self.convnet if self.convnet is not None else DenseNet(self.layers, self.leaky_slope)

    def inputs(self, Y: np.ndarray) -> np.ndarray:
        """Network inputs (n, :attr:`input_size`) for intensities ``Y`` (n, points) on the model axis.

        The preprocessing chain, then the 22 features if the layout has them, then the standardisation
        if the bundle has one.
        """
        return network_inputs(Y, self.axis, self.prominence, self.preprocess, self.features, self.standardizer)

    @property
    def kind(self) -> str:
        """The model kind the card names (e.g. ``logreg``, ``resnet``), else ``compact`` or ``convolutional``."""
        kind = self.card.get("network", {}).get("kind") if isinstance(self.card.get("network"), dict) else None
        return kind if isinstance(kind, str) else self.architecture

    @property
    def normalisation(self) -> str:
        """The preprocessing chain as text: ``none``, ``snv``, or e.g. ``asls:100000.0:0.01:50,snv``."""
        return self.preprocess.text

    @property
    def architecture(self) -> str:
        """``compact`` (dense network on intensities + features), ``dense`` (on intensities) or ``convolutional``."""
        if self.convnet is not None:
            return "convolutional"
        return "compact" if self.features else "dense"

    @property
    def tflite_path(self) -> Path:
        """The bundle's ``model.tflite``: the same network as a TFLite flatbuffer."""
        return self.path / TFLITE_FILE

    @property
    def response_corrected(self) -> bool:
        """True when the model was trained on intensity-response-corrected spectra (``intensity_response``).

        A spectrometer must then correct its own (:mod:`firmware_bridge.response`).
        """
        return self.card.get("intensity_response", {}).get("corrected") is True

    @property
    def resolution_cm1(self) -> float | None:
        """The resolution (FWHM, cm-1) the training spectra were brought to (``resolution``), or None.

        A spectrometer must then state its own (:mod:`device.inference.resolution`).
        """
        value = self.card.get("resolution", {}).get("fwhm_cm1")
        return None if value is None else float(value)

    @property
    def examples(self) -> list[tuple[Path, str]]:
        """Example spectra shipped in the bundle, as (path, expected label)."""
        return [(self.path / e["file"], e["label"]) for e in self.card.get("examples", [])]


def _fail(path: Path, problem: str, remedy: str = "re-export the bundle or restore it from a good copy") -> BundleError:
    return BundleError(f"model bundle {path}: {problem}; {remedy}.")


def load_bundle(path, keys: dict | None = None) -> ModelBundle:
    """Load and verify a model bundle directory.

    Parameters
    ----------
    path : path-like
    keys : dict, optional
        Key id -> public key (:func:`device.inference.signature.load_public_keys`): the bundle must be signed
        by one of them. None (default): a signature is not checked.

    Raises
    ------
    BundleError
        If the directory or a file is missing, a hash does not match, a file is not listed in the
        card, the schema version is unknown, or the weights are inconsistent.
    SignatureError
        With ``keys``: unsigned, signed by another key, or a signature that does not match the card.
    """
    path = Path(path)

    def fail(problem: str, remedy: str | None = None) -> BundleError:
        return _fail(path, problem, *([remedy] if remedy else []))

    card = read_card(path, CARD_FILE, fail, "pass the directory that holds model.json, model.npz and model.tflite")
    if keys is not None:
        verify_signature(path, CARD_FILE, keys, fail)
    version = card.get("schema_version")
    if version != SCHEMA_VERSION:
        raise _fail(path, f"unknown bundle schema version {version!r} (this raman-edge reads {SCHEMA_VERSION})",
                    "use the raman-edge release that wrote it, or re-export it with this one")
    files = verify_files(path, card, CARD_FILE, (NPZ_FILE, TFLITE_FILE), fail)
    examples = card.get("examples", [])
    if not isinstance(examples, list) or not all(
            isinstance(e, dict) and isinstance(e.get("label"), str) and isinstance(e.get("file"), str)
            and e["file"] in files for e in examples):
        raise _fail(path, f"the examples in {CARD_FILE} must each name a listed file and its expected label")
    response = card.get("intensity_response", {})
    if not isinstance(response, dict) or not isinstance(response.get("corrected", False), bool):
        raise _fail(path, f"intensity_response in {CARD_FILE} must be an object whose 'corrected' is true or false")
    resolution = card.get("resolution", {})
    fwhm = resolution.get("fwhm_cm1") if isinstance(resolution, dict) else "?"
    if fwhm is not None and not (isinstance(fwhm, (int, float)) and not isinstance(fwhm, bool)
                                 and math.isfinite(fwhm) and fwhm > 0):
        raise _fail(path, f"resolution in {CARD_FILE} must be an object whose 'fwhm_cm1' is a positive number or null")
    arrays = read_arrays(path, NPZ_FILE, TEXT_ENTRIES, MAX_NPZ_BYTES, fail)
    bundle = _network_bundle(path, card, arrays)
    if "ood.threshold" not in arrays:
        return bundle
    try:
        ood = OODDetector.from_arrays(arrays, bundle.axis.points, len(bundle.class_names))
    except (KeyError, ValueError, TypeError) as exc:
        raise _fail(path, f"its out-of-distribution detector is malformed ({exc})") from None
    return replace(bundle, ood=ood)


def _runtime_version() -> str:
    """The version of this runtime, ``device.__version__`` (read once the package has finished importing)."""
    from device import __version__

    return __version__


def _introduced_in(path: Path, arrays: dict) -> dict:
    """The ``introduced_in`` entry of checked ``model.npz`` arrays; empty for bundles written before it.

    Returns
    -------
    dict
        ``{"network_kind" | "input_layout" | "preprocess": {name: raman-edge version}}``.
    """
    if "introduced_in" not in arrays:
        return {}
    try:
        table = json.loads(str(arrays["introduced_in"]))
    except (ValueError, RecursionError):
        table = None
    if not (isinstance(table, dict) and all(
            isinstance(names, dict) and all(isinstance(v, str) for v in names.values()) for names in table.values())):
        raise _fail(path, f"{NPZ_FILE} entry 'introduced_in' is not a JSON object of names and their versions")
    return table


def _unknown(path: Path, what: str, name: str, known, since: str | None, written_by: str | None) -> BundleError:
    """The refusal of a network kind, input layout or preprocessing step this runtime does not know.

    Parameters
    ----------
    what : str
        ``network kind``, ``input layout`` or ``preprocessing step``.
    name : str
        The name the bundle stores.
    known : iterable of str
        The names of that sort this runtime reads.
    since, written_by : str or None
        From the bundle: the version that introduced ``name``, and the version that wrote the bundle.
    """
    version = _runtime_version()
    origin = f"was introduced in raman-edge {since[:40]}" if since else "is not in the bundle's table of versions"
    by = f" (the bundle was written by raman-edge {written_by[:40]})" if written_by else ""
    update = f"update raman-edge on the device to {since[:40]} or later" if since else "update raman-edge on the device"
    return _fail(path, f"its {what} {name[:40]!r} {origin}{by}, and this runtime, raman-edge {version}, "
                       "does not know it",
                 f"{update}, or re-export the model with what raman-edge {version} knows ({what}s: {', '.join(known)})")


def _network_bundle(path: Path, card: dict, arrays: dict) -> ModelBundle:
    """The bundle's network, whichever kind and layout it has, from its checked ``model.npz`` arrays."""
    try:
        if int(arrays["schema_version"]) != SCHEMA_VERSION:
            raise _fail(path, f"{NPZ_FILE} has schema version {int(arrays['schema_version'])}")
        introduced = _introduced_in(path, arrays)
        written_by = str(arrays["written_by"]) if "written_by" in arrays else None
        kind = str(arrays["network_kind"]) if "network_kind" in arrays \
            else "convolutional" if "architecture" in arrays else "dense"
        if kind not in NETWORK_KINDS:
            raise _unknown(path, "network kind", kind, NETWORK_KINDS, introduced.get("network_kind", {}).get(kind),
                           written_by)
        layout = str(arrays["input_layout"])
        if layout not in INPUT_LAYOUTS:
            raise _unknown(path, "input layout", layout, INPUT_LAYOUTS,
                           introduced.get("input_layout", {}).get(layout), written_by)
        points = int(arrays["axis_points"])
        if points > MAX_AXIS_POINTS:
            raise _fail(path, f"its axis of {points} points is longer than any model's ({MAX_AXIS_POINTS})")
        axis = Axis(float(arrays["axis_start"]), float(arrays["axis_stop"]), points)
        classes = tuple(str(s) for s in arrays["class_names"])
        name = str(arrays["name"])
        chain = _chain(path, arrays, axis, introduced.get("preprocess", {}), written_by)
        if kind == "convolutional":
            if layout != INTENSITIES_LAYOUT:
                raise _fail(path, f"its convolutional network takes the layout {INTENSITIES_LAYOUT!r}, not {layout!r}")
            return _conv_bundle(path, card, arrays, name, classes, axis, chain, written_by)
        if "architecture" in arrays:
            raise _fail(path, "its network kind is 'dense', yet it stores a convolutional 'architecture'")
        prominence = 0.0
        if layout == INPUT_LAYOUT:
            features = tuple(str(s) for s in arrays["feature_names"])
            if features != FEATURE_NAMES:
                raise _fail(path, "its engineered features differ from this raman-edge's",
                            "re-export it with this release")
            prominence = float(arrays["prominence"])
        activations = [str(a) for a in arrays["layer_activations"]]
        layers = []
        for i, act in enumerate(activations):
            if act not in ACTIVATIONS:
                raise _fail(path, f"layer {i} has unknown activation {act!r}")
            layers.append(Dense(arrays[f"layer{i}_kernel"].astype(np.float64),
                                arrays[f"layer{i}_bias"].astype(np.float64), act))
        std = (Standardizer(arrays["scaler_mean"].astype(np.float64), arrays["scaler_scale"].astype(np.float64))
               if layout == INPUT_LAYOUT or "scaler_mean" in arrays else None)
        slope = float(arrays["leaky_slope"])
    except KeyError as exc:
        raise _fail(path, f"{NPZ_FILE} lacks the entry {exc}") from None
    except (TypeError, ValueError) as exc:
        raise _fail(path, f"{NPZ_FILE} holds a malformed entry ({exc})") from None
    width = axis.points + (len(FEATURE_NAMES) if layout == INPUT_LAYOUT else 0)
    if std is not None and (std.mean.shape != (width,) or std.scale.shape != (width,) or not np.all(std.scale > 0)):
        raise _fail(path, f"scaler statistics do not fit {width} inputs")
    for i, layer in enumerate(layers):
        if layer.kernel.ndim != 2 or layer.kernel.shape[0] != width or layer.bias.shape != (layer.kernel.shape[1],):
            raise _fail(path, f"layer {i} weights have shapes {layer.kernel.shape}, {layer.bias.shape}, "
                              f"which do not chain from {width} inputs")
        width = layer.kernel.shape[1]
    if not layers or width != len(classes) or layers[-1].activation != "softmax":
        raise _fail(path, f"the network must end in a softmax over the {len(classes)} classes")
    sha = card["files"][NPZ_FILE]["sha256"]
    return ModelBundle(path=path, card=card, name=name, model_id=f"{name}@{sha[:12]}", class_names=classes,
                       axis=axis, prominence=prominence, standardizer=std, layers=tuple(layers),
                       leaky_slope=slope, preprocess=chain, input_layout=layout, written_by=written_by)


def _chain(path: Path, arrays: dict, axis: Axis, introduced: dict, written_by: str | None) -> Chain:
    """The preprocessing chain of checked ``model.npz`` arrays: a ``preprocess`` spec, or a ``normalisation``.

    ``introduced`` maps the bundle's steps to the versions that introduced them, for the refusal of one
    this runtime does not know.
    """
    if "preprocess" not in arrays:
        normalisation = str(arrays["normalisation"]) if "normalisation" in arrays else "none"
        if normalisation not in NORMALISATIONS:
            raise _fail(path, f"unknown normalisation {normalisation!r}", "use the raman-edge release that wrote it")
        return Chain.parse(normalisation, axis.step)
    if "normalisation" in arrays:
        raise _fail(path, f"{NPZ_FILE} holds both a preprocessing chain and a normalisation")
    try:
        return Chain.from_arrays(arrays, axis.points)
    except UnknownStepError as exc:
        raise _unknown(path, "preprocessing step", exc.step, STEPS, introduced.get(exc.step), written_by) from None
    except KeyError as exc:
        raise _fail(path, f"{NPZ_FILE} lacks the preprocessing entry {exc}") from None
    except (TypeError, ValueError, AttributeError, RecursionError) as exc:
        raise _fail(path, f"its preprocessing chain is malformed ({exc})") from None


def _conv_bundle(path: Path, card: dict, arrays: dict, name: str, classes: tuple, axis: Axis,
                 chain: Chain, written_by: str | None) -> ModelBundle:
    """The convolutional network of a bundle whose inputs are the preprocessed intensities."""
    try:
        spec = json.loads(str(arrays["architecture"]))
        net = from_arrays(spec, {k[4:]: v for k, v in arrays.items() if k.startswith("net.")})
        _check_fits(net, axis.points)
    except KeyError as exc:
        raise _fail(path, f"{NPZ_FILE} lacks the entry {exc}") from None
    except (TypeError, ValueError, AttributeError, IndexError, OverflowError, RecursionError) as exc:
        raise _fail(path, f"its convolutional network is malformed ({exc})") from None
    if net.head_bias.size != len(classes):
        raise _fail(path, f"the network must end in a softmax over the {len(classes)} classes")
    sha = card["files"][NPZ_FILE]["sha256"]
    return ModelBundle(path=path, card=card, name=name, model_id=f"{name}@{sha[:12]}", class_names=classes,
                       axis=axis, prominence=0.0, standardizer=None, layers=(), leaky_slope=0.0,
                       preprocess=chain, convnet=net, input_layout=INTENSITIES_LAYOUT, network_kind="convolutional",
                       written_by=written_by)


def _ceil_div(a: int, b: int) -> int:
    return -(-a // b)


def _check_fits(net: ConvNet, points: int) -> None:
    """Check what :func:`device.inference.convnet.from_arrays` cannot: that the network runs on ``points`` inputs.

    Raises
    ------
    ValueError
        A stride or pool size longer than the axis, residual branches of different lengths,
        Squeeze-and-Excitation biases that do not fit their weights, no points left for the global
        average, or a head bias that is not a vector.
    """
    length = points
    for i, op in enumerate(net.body):
        if isinstance(op, MaxPool):
            steps, length = [op.size], length // op.size
        elif isinstance(op, Conv):
            steps, length = [op.stride], _ceil_div(length, op.stride)
        else:
            steps = [c.stride for c in (op.conv1, op.conv2, op.shortcut) if c is not None]
            main = _ceil_div(_ceil_div(length, op.conv1.stride), op.conv2.stride)
            side = _ceil_div(length, op.shortcut.stride) if op.shortcut is not None else length
            if main != side:
                raise ValueError(f"operation {i}: its branches give {main} and {side} points")
            se = op.se
            if se is not None and (se.w1.ndim != 2 or se.b1.shape != (se.w1.shape[1],)
                                   or se.b2.shape != (se.w2.shape[1],)):
                raise ValueError(f"operation {i}: its squeeze-excitation biases do not fit its weights")
            length = main
        if max(steps) > points:
            raise ValueError(f"operation {i} has a stride or pool size longer than the {points}-point axis")
    if length < 1:
        raise ValueError(f"it pools the {points}-point axis down to nothing")
    if net.head_bias.ndim != 1:
        raise ValueError(f"the head's bias has shape {net.head_bias.shape}, not (classes,)")


def write_bundle(path, *, name: str, class_names, axis: Axis, tflite: bytes, card: dict,
                 prominence: float = 0.0, standardizer: Standardizer | None = None, layers=(),
                 leaky_slope: float = 0.0, convnet: ConvNet | None = None, ood: OODDetector | None = None,
                 examples: list[tuple[str, bytes, str]] = (), normalisation="none",
                 input_layout: str | None = None) -> ModelBundle:
    """Write a bundle directory, then load it back through :func:`load_bundle`.

    Parameters
    ----------
    path : path-like
        Bundle directory; an existing bundle there is replaced only once the new one is complete.
    name : str
        Model name, the first part of the model id.
    class_names : sequence of str
    axis : Axis
    prominence, standardizer, layers, leaky_slope
        A dense network: feature peak threshold, input statistics (None: inputs not standardised; only
        for the layout ``intensities``), dense layers, Leaky ReLU slope.
    convnet : ConvNet, optional
        A convolutional network instead (the dense network's arguments are then not used).
    input_layout : str, optional
        One of :data:`INPUT_LAYOUTS`; default ``intensities+features`` for dense layers, ``intensities``
        for a convolutional network (the only layout it takes).
    ood : OODDetector, optional
        The out-of-distribution detector to store with the model.
    normalisation : Chain or str
        The preprocessing chain (:mod:`device.inference.preprocess`), or its text: ``none`` (default), ``snv``, or
        e.g. ``asls:1e5:0.01,snv`` (Savitzky-Golay steps are designed for the axis step here).
    tflite : bytes
        The TFLite flatbuffer of the same network.
    card : dict
        Model card fields; ``schema_version``, ``id``, ``format`` (network kind, versions), ``files`` and
        ``examples`` are filled in here.
    examples : sequence of (file name, bytes, expected label)
        Example spectra stored under ``examples/``.

    Returns
    -------
    ModelBundle
    """
    path = Path(path)
    arrays = {
        "schema_version": np.array(SCHEMA_VERSION), "name": np.array(name), "class_names": np.array(list(class_names)),
        "axis_start": np.array(axis.start), "axis_stop": np.array(axis.stop), "axis_points": np.array(axis.points),
    }
    chain = as_chain(normalisation, axis)
    arrays.update({"normalisation": np.array(chain.text)} if chain.is_normalisation else chain.to_arrays())
    layout = input_layout or (INTENSITIES_LAYOUT if convnet is not None else INPUT_LAYOUT)
    if layout not in INPUT_LAYOUTS or (convnet is not None and layout != INTENSITIES_LAYOUT) \
            or (layout == INPUT_LAYOUT and standardizer is None):
        raise ValueError(f"input layout {layout!r} does not fit the network given")
    kind = "convolutional" if convnet is not None else "dense"
    introduced = {"network_kind": {kind: NETWORK_KINDS[kind]}, "input_layout": {layout: INPUT_LAYOUTS[layout]},
                  "preprocess": {step.name: step.introduced_in for step in chain.steps}}
    fmt = {"network_kind": kind, "introduced_in": introduced, "written_by": _runtime_version()}
    arrays.update({"input_layout": np.array(layout), "network_kind": np.array(kind),
                   "introduced_in": np.array(json.dumps(introduced)), "written_by": np.array(fmt["written_by"])})
    if convnet is not None:
        spec, weights = to_arrays(convnet)
        arrays.update({"architecture": np.array(json.dumps(spec)), **{f"net.{k}": v for k, v in weights.items()}})
    else:
        if layout == INPUT_LAYOUT:
            arrays.update({"feature_names": np.array(FEATURE_NAMES), "prominence": np.array(float(prominence))})
        if standardizer is not None:
            arrays.update({"scaler_mean": np.asarray(standardizer.mean, np.float64),
                           "scaler_scale": np.asarray(standardizer.scale, np.float64)})
        arrays.update({"leaky_slope": np.array(float(leaky_slope)),
                       "layer_activations": np.array([layer.activation for layer in layers])})
        for i, layer in enumerate(layers):
            arrays[f"layer{i}_kernel"] = np.asarray(layer.kernel, np.float32)
            arrays[f"layer{i}_bias"] = np.asarray(layer.bias, np.float32)
    if ood is not None:
        arrays.update(ood.to_arrays())
    contents = {NPZ_FILE: arrays, TFLITE_FILE: tflite, **{f"examples/{f}": data for f, data, _ in examples}}
    listed = [{"file": f"examples/{f}", "label": label} for f, _, label in examples]

    def full_card(files: dict) -> dict:
        return {"schema_version": SCHEMA_VERSION, "id": f"{name}@{files[NPZ_FILE]['sha256'][:12]}", **card,
                "format": fmt, "files": files, "examples": listed}

    write_sealed(path, CARD_FILE, full_card, contents)
    return load_bundle(path)
