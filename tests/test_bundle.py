import json
import shutil

import numpy as np
import pytest

from device.bundle import CARD_FILE, NPZ_FILE, TFLITE_FILE, load_bundle, sha256_file
from device.errors import BundleError

from helpers import make_bundle


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


def test_rewrite_replaces_whole_bundle(tmp_path):
    path = tmp_path / "m"
    first = make_bundle(path, seed=1)
    second = make_bundle(path, seed=2)
    assert first.model_id != second.model_id and load_bundle(path).model_id == second.model_id
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m"]
