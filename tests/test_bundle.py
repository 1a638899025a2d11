"""Model bundles: writing, loading, integrity checks, kinds and versions, and the shipped models' self-tests."""
import json
import shutil

import numpy as np
import pytest
from conftest import ROOT, SHIPPED_MODELS
from helpers import make_bundle

import device
from device.errors import BundleError
from device.fileio import sha256_file
from device.inference.bundle import CARD_FILE, NPZ_FILE, TFLITE_FILE, load_bundle, write_bundle
from device.inference.classifier import Classifier
from device.inference.convnet import Conv, ConvNet
from device.inference.spectrum import Axis
from device.service.measurement import self_test


@pytest.fixture(scope="module")
def good(tmp_path_factory):
    path = tmp_path_factory.mktemp("b") / "tiny"
    make_bundle(path, examples=[("a/one.csv", b"500,1\n600,2\n550,3\n", "a")])
    return path


@pytest.fixture
def copy(good, tmp_path):
    dst = tmp_path / "bundle"
    shutil.copytree(good, dst)
    return dst


def _rehash(path):
    card = json.loads((path / CARD_FILE).read_text())
    for rel in card["files"]:
        card["files"][rel]["sha256"] = sha256_file(path / rel)
    (path / CARD_FILE).write_text(json.dumps(card))


@pytest.mark.slow
def test_round_trip(good):
    b = load_bundle(good)
    assert b.class_names == ("a", "b", "c") and b.axis.points == 101 and b.input_size == 123
    assert b.model_id.startswith("tiny@") and len(b.model_id) == 17
    assert b.card["files"][NPZ_FILE]["sha256"] == sha256_file(good / NPZ_FILE)
    assert b.examples == [(good / "examples/a/one.csv", "a")]
    with np.load(good / NPZ_FILE, allow_pickle=False) as z:
        assert {"schema_version", "class_names", "feature_names", "scaler_mean", "leaky_slope",
                "layer0_kernel", "layer1_bias", "layer_activations"} <= set(z.files)


def test_missing_directory(tmp_path):
    with pytest.raises(BundleError, match="not found or not a directory"):
        load_bundle(tmp_path / "nope")


@pytest.mark.parametrize("victim", [CARD_FILE, NPZ_FILE, TFLITE_FILE, "examples/a/one.csv"])
def test_missing_file(copy, victim):
    (copy / victim).unlink()
    with pytest.raises(BundleError, match="missing"):
        load_bundle(copy)


@pytest.mark.parametrize("victim", [NPZ_FILE, TFLITE_FILE, "examples/a/one.csv"])
def test_corrupt_file_fails_hash(copy, victim):
    data = bytearray((copy / victim).read_bytes())
    data[len(data) // 2] ^= 0xFF
    (copy / victim).write_bytes(bytes(data))
    with pytest.raises(BundleError, match=f"{victim} does not match its SHA-256"):
        load_bundle(copy)


def test_unlisted_file_refused(copy):
    (copy / "notes.txt").write_text("hello")
    with pytest.raises(BundleError, match="notes.txt is not listed"):
        load_bundle(copy)


def test_unknown_schema_version(copy):
    card = json.loads((copy / CARD_FILE).read_text())
    card["schema_version"] = 99
    (copy / CARD_FILE).write_text(json.dumps(card))
    with pytest.raises(BundleError, match="unknown bundle schema version 99"):
        load_bundle(copy)


def test_invalid_card(copy):
    (copy / CARD_FILE).write_text("{not json")
    with pytest.raises(BundleError, match="not valid JSON"):
        load_bundle(copy)


def test_pickled_npz_never_unpickled(copy):
    np.savez(copy / NPZ_FILE, schema_version=np.array([{"evil": 1}], dtype=object))
    _rehash(copy)
    with pytest.raises(BundleError, match="cannot be read"):
        load_bundle(copy)


def test_inconsistent_weights(copy):
    with np.load(copy / NPZ_FILE, allow_pickle=False) as z:
        arrays = {k: z[k] for k in z.files}
    arrays["layer0_kernel"] = arrays["layer0_kernel"][:-1]
    np.savez(copy / NPZ_FILE, **arrays)
    _rehash(copy)
    with pytest.raises(BundleError, match="do not chain"):
        load_bundle(copy)


def test_missing_entry(copy):
    with np.load(copy / NPZ_FILE, allow_pickle=False) as z:
        arrays = {k: z[k] for k in z.files if k != "leaky_slope"}
    np.savez(copy / NPZ_FILE, **arrays)
    _rehash(copy)
    with pytest.raises(BundleError, match="lacks the entry 'leaky_slope'"):
        load_bundle(copy)


@pytest.mark.slow
def test_rewrite_replaces_whole_bundle(tmp_path):
    path = tmp_path / "m"
    first = make_bundle(path, seed=1)
    second = make_bundle(path, seed=2)
    assert first.model_id != second.model_id and load_bundle(path).model_id == second.model_id
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m"]


def _arrays(path):
    with np.load(path / NPZ_FILE, allow_pickle=False) as z:
        return {k: z[k] for k in z.files}


def test_every_bundle_records_its_kind_and_versions(good, tmp_path):
    arrays, card = _arrays(good), json.loads((good / CARD_FILE).read_text())
    introduced = {"network_kind": {"dense": "0.1.0"}, "input_layout": {"intensities+features": "0.1.0"},
                  "preprocess": {}}
    assert (str(arrays["network_kind"]), json.loads(str(arrays["introduced_in"])), str(arrays["written_by"])) \
        == ("dense", introduced, device.__version__)
    assert card["format"] == {"network_kind": "dense", "introduced_in": introduced, "written_by": device.__version__}
    b = load_bundle(good)
    assert (b.network_kind, b.written_by) == ("dense", device.__version__)
    rng = np.random.default_rng(0)
    net = ConvNet((Conv(rng.normal(size=(5, 1, 4)), rng.normal(size=4), 2, "relu"),), rng.normal(size=(4, 3)),
                  rng.normal(size=3))
    conv = write_bundle(tmp_path / "conv", name="conv", class_names=("a", "b", "c"), axis=Axis(500, 600, 101),
                        tflite=b"", card={}, convnet=net, normalisation="asls:1e5:0.01,snv")
    assert conv.network_kind == "convolutional" and conv.card["format"]["introduced_in"] == {
        "network_kind": {"convolutional": "0.1.0"}, "input_layout": {"intensities": "0.1.0"},
        "preprocess": {"asls": "0.1.0", "snv": "0.1.0"}}


def _as_future_exporter(path, change, introduced: dict, written_by="0.9.2"):
    """Rewrite a bundle as a later release's exporter would write it.

    ``change(arrays)`` is applied to ``model.npz``, which then records the versions that release would;
    the card gets that release's format, hashes and id.
    """
    arrays = _arrays(path)
    change(arrays)
    table = json.loads(str(arrays["introduced_in"]))
    for part, names in introduced.items():
        table[part].update(names)
    arrays.update(introduced_in=np.array(json.dumps(table)), written_by=np.array(written_by))
    np.savez(path / NPZ_FILE, **arrays)
    card = json.loads((path / CARD_FILE).read_text())
    card["format"] = {"network_kind": str(arrays["network_kind"]), "introduced_in": table, "written_by": written_by}
    card["files"][NPZ_FILE]["sha256"] = sha256_file(path / NPZ_FILE)
    card["id"] = f"{card['id'].split('@')[0]}@{card['files'][NPZ_FILE]['sha256'][:12]}"
    (path / CARD_FILE).write_text(json.dumps(card))


def _chain_with(step: dict):
    def change(arrays):
        del arrays["normalisation"]
        arrays["preprocess"] = np.array(json.dumps([{"step": "snv"}, step]))
    return change


@pytest.mark.parametrize("change, introduced, what, known", [
    (lambda a: a.update(network_kind=np.array("transformer")), {"network_kind": {"transformer": "0.7.0"}},
     "network kind 'transformer'", "network kinds: dense, convolutional"),
    (lambda a: a.update(input_layout=np.array("intensities+derivative")),
     {"input_layout": {"intensities+derivative": "0.7.0"}}, "input layout 'intensities+derivative'",
     "input layouts: intensities+features, intensities"),
    (_chain_with({"step": "wavelet", "level": 3}), {"preprocess": {"snv": "0.1.0", "wavelet": "0.7.0"}},
     "preprocessing step 'wavelet'", "preprocessing steps: snv, savgol, asls"),
])
def test_a_kind_from_a_later_release_is_refused_by_name(copy, change, introduced, what, known):
    _as_future_exporter(copy, change, introduced)
    with pytest.raises(BundleError) as err:
        load_bundle(copy)
    this = device.__version__
    assert str(err.value) == (
        f"model bundle {copy}: its {what} was introduced in raman-edge 0.7.0 (the bundle was written by "
        f"raman-edge 0.9.2), and this runtime, raman-edge {this}, does not know it; update raman-edge on the "
        f"device to 0.7.0 or later, or re-export the model with what raman-edge {this} knows ({known}).")


@pytest.mark.parametrize("change, introduced, chain", [
    (lambda a: None, {}, "none"),
    (lambda a: a.update(network_kind=np.array("dense")), {"network_kind": {"dense": "0.1.0"}}, "none"),
    (_chain_with({"step": "snv"}), {"preprocess": {"snv": "0.1.0"}}, "snv,snv"),
])
def test_the_same_rewrite_with_known_kinds_loads(copy, change, introduced, chain):
    _as_future_exporter(copy, change, introduced)
    b = load_bundle(copy)
    assert (b.network_kind, b.written_by, b.normalisation) == ("dense", "0.9.2", chain)


def test_bundles_without_the_entries_load_with_the_kind_inferred(good, copy):
    arrays = {k: v for k, v in _arrays(copy).items() if k not in ("network_kind", "introduced_in", "written_by")}
    np.savez(copy / NPZ_FILE, **arrays)
    _rehash(copy)
    old, new = load_bundle(copy), load_bundle(good)
    assert (old.network_kind, old.written_by, old.architecture) == ("dense", None, "compact")
    Y = np.random.default_rng(2).normal(size=(4, 101))
    assert np.array_equal(Classifier(old).probabilities_on_axis(Y), Classifier(new).probabilities_on_axis(Y))


@pytest.mark.parametrize("change, message", [
    (lambda a: a.update(introduced_in=np.array("{not json")), "'introduced_in' is not a JSON object"),
    (lambda a: a.update(introduced_in=np.array('{"network_kind": {"dense": 1}}')), "'introduced_in' is not a JSON"),
    (lambda a: a.update(architecture=np.array("[]")), "network kind is 'dense', yet it stores a convolutional"),
    (lambda a: a.update(network_kind=np.array("convolutional"), input_layout=np.array("intensities")),
     "lacks the entry 'architecture'"),
])
def test_inconsistent_kind_entries_are_refused(copy, change, message):
    arrays = _arrays(copy)
    change(arrays)
    np.savez(copy / NPZ_FILE, **arrays)
    _rehash(copy)
    with pytest.raises(BundleError, match=message):
        load_bundle(copy)


@pytest.mark.device
def test_the_list_of_shipped_models_is_complete():
    assert sorted(p.parent.name for p in (ROOT / "models").glob("*/model.json")) == sorted(SHIPPED_MODELS)


@pytest.mark.device
@pytest.mark.parametrize("backend", ["numpy", "tflite"])
@pytest.mark.parametrize("name", SHIPPED_MODELS)
def test_every_shipped_bundle_passes_its_self_test(name, backend):
    b = load_bundle(ROOT / "models" / name)
    result = self_test(b, Classifier(b, backend))
    assert result["passed"] and result["examples"] >= len(b.class_names), result["reason"]
