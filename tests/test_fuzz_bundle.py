"""Fuzz tests of model bundles (device.inference.bundle): card and array tampering, convolutional specs."""
from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from fuzzing import DTYPES, MUTATIONS, NO_UNPICKLING, SHIPPED, WATCH, Payload, fuzz_settings, mutate, npz_bytes, zip_npz
from hypothesis import example, given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from device.errors import BundleError
from device.inference import bundle as bundle_module
from device.inference.bundle import load_bundle
from device.inference.classifier import Classifier
from device.inference.convnet import Conv, ConvNet, MaxPool, Residual, SqueezeExcitation, to_arrays
from device.inference.spectrum import Spectrum

pytestmark = pytest.mark.device  # needs only the device extra

BASE_ARRAYS = dict(np.load(SHIPPED / "model.npz", allow_pickle=False))
BASE_CARD_BYTES = (SHIPPED / "model.json").read_bytes()
BASE_CARD = json.loads(BASE_CARD_BYTES)


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    """A copy of the shipped bundle whose model.json and model.npz each example rewrites."""
    path = tmp_path_factory.mktemp("bundle") / "sers-pesticides"
    shutil.copytree(SHIPPED, path)
    return path


def _write(path: Path, *, card=None, card_bytes: bytes | None = None, arrays=None, npz: bytes | None = None):
    """Rewrite the bundle at ``path``; a new model.npz is signed into the card, so content checks run."""
    if arrays is not None:
        npz = npz_bytes(**arrays)
    elif npz is None:
        npz = (SHIPPED / "model.npz").read_bytes()
    (path / "model.npz").write_bytes(npz)
    if card_bytes is None:
        card = json.loads(json.dumps(BASE_CARD if card is None else card))
        if isinstance(card.get("files"), dict) and isinstance(card["files"].get("model.npz"), dict):
            card["files"]["model.npz"]["sha256"] = hashlib.sha256(npz).hexdigest()
        card_bytes = json.dumps(card).encode()
    (path / "model.json").write_bytes(card_bytes)


def _bundle_or_error(path: Path):
    """load_bundle's result, None for a BundleError; a loaded bundle must classify without an exception."""
    with WATCH.only(NO_UNPICKLING):
        try:
            b = load_bundle(path)
        except BundleError:
            return None
    assert b.class_names and all(isinstance(c, str) for c in b.class_names)
    assert all(isinstance(f, Path) and isinstance(label, str) for f, label in b.examples)
    x = b.axis.values
    with np.errstate(all="ignore"):
        p = Classifier(b).probabilities([Spectrum(x, 1.0 + np.sin(x / 40.0))])
    assert p.shape == (1, len(b.class_names))
    return b


def test_shipped_bundle_passes_the_checks(workdir):
    _write(workdir)
    assert _bundle_or_error(workdir) is not None


@pytest.mark.slow
@fuzz_settings(100)
@given(st.one_of(st.binary(max_size=300), MUTATIONS.map(lambda ops: mutate(BASE_CARD_BYTES, ops))))
def test_bundle_card_bytes(workdir, data):
    _write(workdir, card_bytes=data)
    _bundle_or_error(workdir)


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=10)
    | st.sampled_from([10**400, "../../etc/hostname", "/etc/hostname", "a" * 300, "model.npz"]),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=8)
CARD_PATHS = [("schema_version",), ("files",), ("files", "model.npz"), ("files", "model.npz", "sha256"),
              ("files", "model.tflite"), ("examples",), ("examples", 0), ("examples", 0, "file"),
              ("examples", 0, "label"), ("files", "../model.json"), ("files", "/etc/hostname"), ("files", "a" * 300)]


@pytest.mark.slow
@fuzz_settings(150)
@given(st.sampled_from(CARD_PATHS), JSON_VALUES)
def test_bundle_card_type_confusion(workdir, where, value):
    card = json.loads(json.dumps(BASE_CARD))
    node = card
    for key in where[:-1]:
        node = node[key]
    node[where[-1]] = value
    _write(workdir, card_bytes=json.dumps(card).encode())  # the npz hash stays as it was
    _bundle_or_error(workdir)


@pytest.mark.slow
@fuzz_settings(100)
@given(MUTATIONS)
def test_bundle_npz_bytes_resigned(workdir, ops):
    _write(workdir, npz=mutate((SHIPPED / "model.npz").read_bytes(), ops))
    _bundle_or_error(workdir)


def _array_change(arrays: dict, key: str, how: str, rng: np.random.Generator, value):
    a = arrays.get(key, np.zeros(3))
    changes = {
        "drop": lambda: None,
        "hostile": lambda: value,
        "float32": lambda: a.astype(np.float32) if a.dtype.kind in "iuf" else a,
        "text": lambda: a.astype(str),
        "complex": lambda: a.astype(complex) if a.dtype.kind in "iufc" else a,
        "transpose": lambda: a.T,
        "flatten": lambda: a.reshape(-1),
        "slice": lambda: a[..., :max(a.shape[-1] - 1, 0)] if a.ndim else a,
        "scalar": lambda: np.array(rng.normal()),
        "huge": lambda: a * 1e300 if a.dtype.kind in "iuf" else a,
        "nan": lambda: np.where(rng.random(a.shape) < 0.01, np.nan, a) if a.dtype.kind == "f" else a,
        "noise": lambda: rng.normal(size=a.shape) if a.dtype.kind in "iuf" else a,
        "code points": lambda: rng.integers(0xD000, 0x120000, 8).astype("<u4").view("<U2"),
    }
    with np.errstate(all="ignore"):
        new = changes[how]()
    if new is None:
        arrays.pop(key, None)
    else:
        arrays[key] = new


def changes(keys):
    """(entry, change, hostile array) for :func:`_array_change`."""
    return st.tuples(st.sampled_from(keys), st.sampled_from(
        ["drop", "hostile", "float32", "text", "complex", "transpose", "flatten", "slice", "scalar", "huge", "nan",
         "noise", "code points"]), hnp.arrays(DTYPES, hnp.array_shapes(min_dims=0, max_dims=3, max_side=4)))


@fuzz_settings(200)
@given(st.lists(changes([*BASE_ARRAYS, "layer2_kernel", "layer2_bias"]), min_size=1, max_size=3),
       st.integers(0, 2**32))
@pytest.mark.slow
@example([("axis_points", "hostile", np.array(10**9))], 0)  # an 8 GB axis was allocated before the fix
@example([("schema_version", "hostile", np.array(np.inf))], 0)  # OverflowError before the fix
def test_bundle_npz_content(workdir, edits, seed):
    arrays, rng = dict(BASE_ARRAYS), np.random.default_rng(seed)
    for key, how, value in edits:
        _array_change(arrays, key, how, rng, value)
    _write(workdir, arrays=arrays)
    _bundle_or_error(workdir)


def _small_convnet(seed: int) -> ConvNet:
    rng = np.random.default_rng(seed)

    def w(*shape):
        return rng.normal(0, 0.3, shape)

    return ConvNet((Conv(w(5, 1, 4), w(4), 2, "relu"), MaxPool(2),
                    Residual(Conv(w(3, 4, 6), w(6), 2, "relu"), Conv(w(3, 6, 6), w(6), 1, "linear"),
                             SqueezeExcitation(w(6, 2), w(2), w(2, 6), w(6)), Conv(w(1, 4, 6), w(6), 2, "linear"))),
                   w(6, 6), w(6))


def _conv_arrays(net: ConvNet, spec=None) -> dict:
    """The npz entries of a convolutional bundle on the shipped model's axis and classes."""
    base_spec, weights = to_arrays(net)
    arrays = {k: BASE_ARRAYS[k] for k in ("schema_version", "name", "class_names", "axis_start", "axis_stop",
                                          "axis_points")}
    arrays.update({"normalisation": np.array("snv"), "input_layout": np.array(bundle_module.INTENSITIES_LAYOUT),
                   "architecture": np.array(json.dumps(base_spec if spec is None else spec)),
                   **{f"net.{k}": v for k, v in weights.items()}})
    return arrays


def test_convolutional_bundle_passes_the_checks(workdir):
    _write(workdir, arrays=_conv_arrays(_small_convnet(0)))
    assert _bundle_or_error(workdir).convnet is not None


SPEC_EDITS = st.tuples(
    st.integers(0, 5), st.sampled_from(["op", "name", "stride", "activation", "size", "se", "shortcut",
                                        "shortcut_stride", "conv1", "conv2"]),
    JSON_VALUES | st.sampled_from([0, 1, 2, 7, 10**6, 10**30, 1e999, "relu", "linear", "maxpool", "conv", "residual"]))


@fuzz_settings(200)
@given(st.integers(0, 2**32), st.lists(SPEC_EDITS, max_size=3),
       st.lists(changes(list(_conv_arrays(_small_convnet(0)))), max_size=2))
@pytest.mark.slow
def test_convolutional_bundle_spec_and_weights(workdir, seed, edits, array_changes):
    net = _small_convnet(seed)
    spec, _ = to_arrays(net)
    for index, key, value in edits:  # conv1 and conv2 get a new stride, other keys a new value
        entry = spec[index % len(spec)]
        if key in ("conv1", "conv2") and isinstance(entry.get(key), dict):
            entry[key]["stride"] = value
        else:
            entry[key] = value
    arrays, rng = _conv_arrays(net, spec), np.random.default_rng(seed)
    for key, how, value in array_changes:
        _array_change(arrays, key, how, rng, value)
    _write(workdir, arrays=arrays)
    _bundle_or_error(workdir)


@pytest.mark.parametrize("spec_edit, replaced, words", [
    (lambda s: s[2]["conv2"].update(stride=2), {}, "branches give"),  # loaded, then failed to classify
    (lambda s: s[2].update(shortcut_stride=1), {}, "branches give"),  # loaded, then failed to classify
    (lambda s: s[1].update(size=10**6), {}, "longer than the 1499-point axis"),  # loaded, NaN probabilities
    (lambda s: s[0].update(stride=10**30), {}, "longer than the 1499-point axis"),  # loaded, NaN probabilities
    (lambda s: s[1].update(size=float("inf")), {}, "malformed"),  # OverflowError
    (None, {"net.op2.se.b1": np.zeros(3)}, "squeeze-excitation biases"),  # loaded, then failed to classify
    (None, {"net.op2.se.w1": np.zeros(())}, "malformed"),  # IndexError
    (None, {"net.head.bias": np.zeros((6, 1))}, "head's bias"),  # six rows of probabilities per spectrum
])
def test_convolutional_bundle_regressions(workdir, spec_edit, replaced, words):
    net = _small_convnet(0)
    spec, _ = to_arrays(net)
    if spec_edit is not None:
        spec_edit(spec)
    _write(workdir, arrays={**_conv_arrays(net, spec), **replaced})
    with pytest.raises(BundleError, match=words):
        load_bundle(workdir)


def test_npz_object_array_in_a_bundle_is_never_unpickled(workdir):
    arrays = dict(BASE_ARRAYS, class_names=np.array([Payload()] * 6, dtype=object))
    _write(workdir, arrays=arrays)
    with WATCH.only(NO_UNPICKLING), pytest.raises(BundleError, match="cannot be read"):
        load_bundle(workdir)


@pytest.mark.parametrize("edit, words", [
    (lambda c: c["files"].update({"a" * 300: {"sha256": "0"}}), "cannot be read"),  # OSError before the fix
    (lambda c: c["files"].update({"/etc/hostname": {"sha256": "0"}}), "not a file inside the directory"),
    (lambda c: c["files"].update({"../sers-pesticides/model.npz": {"sha256": "0"}}), "not a file inside"),
    (lambda c: c.update(examples=5), "examples"),  # TypeError when the service read the examples
    (lambda c: c.update(examples=[{"file": [1], "label": "x"}]), "examples"),
])
def test_bundle_card_regressions(workdir, edit, words):
    card = json.loads(json.dumps(BASE_CARD))
    edit(card)
    _write(workdir, card=card)
    with pytest.raises(BundleError, match=words):
        load_bundle(workdir)


@pytest.mark.parametrize("text", ["[" * 100_000, "1" * 5000])  # RecursionError, ValueError before the fix
def test_bundle_card_of_hostile_json(workdir, text):
    _write(workdir, card_bytes=text.encode())
    with pytest.raises(BundleError, match="thousands"):
        load_bundle(workdir)


@pytest.mark.parametrize("key, value, words", [
    ("axis_points", np.array(10**9), "longer than any model"),
    ("schema_version", np.array(np.inf), "finite numbers"),
    ("layer0_kernel", np.full((1521, 5), np.nan), "finite numbers"),
    ("scaler_mean", np.full(1521, "1.0"), "finite numbers"),
    ("feature_names", np.full(22 * 12, 0x110000, "<u4").view("<U12"), "does not hold text"),  # SystemError
    ("class_names", np.full(6, 0xD800, "<u4").view("<U1"), "does not hold text"),  # lone surrogates
    ("name", np.array(5), "does not hold text"),
])
def test_bundle_npz_regressions(workdir, key, value, words):
    _write(workdir, arrays=dict(BASE_ARRAYS, **{key: value}))
    with pytest.raises(BundleError, match=words):
        load_bundle(workdir)


def test_bundle_npz_that_unpacks_too_large_is_refused_unread(workdir, monkeypatch):
    monkeypatch.setattr(bundle_module, "MAX_NPZ_BYTES", 1 << 20)
    _write(workdir, npz=zip_npz({**BASE_ARRAYS, "padding": np.zeros(1 << 18)}))
    with pytest.raises(BundleError, match="unpacks to"):
        load_bundle(workdir)


def test_bundle_npz_entry_without_npy_header_is_refused(workdir):  # AttributeError before the fix
    arrays = {k: v for k, v in BASE_ARRAYS.items() if k != "layer0_bias"}
    _write(workdir, npz=zip_npz(arrays, {"layer0_bias": b"\xc5\xc4"}))
    with pytest.raises(BundleError, match="'layer0_bias' is not a NumPy array"):
        load_bundle(workdir)
