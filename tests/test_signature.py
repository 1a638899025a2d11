"""Signed bundles and libraries: keys made here, every refusal against a good signature that is accepted.

Each refusal is a negative control of the same check (unsigned, another key, a card byte or a signature
byte changed, a file added, a signature of another card), and each is refused where signatures are
required: loading, update-model, update-library, the service's start and RELOAD; nothing changes on disk.
"""
import base64
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import shipped_variant as variant

from device.errors import BundleError, LibraryError, SignatureError, SigningKeyError
from device.inference.bundle import load_bundle
from device.inference.library import load_library
from device.inference.signature import SIGNATURE_FILE, key_id, load_public_keys
from device.service.config import parse_config
from device.service.measurement import Service
from device.service.update import LIBRARY, MODEL, UpdateError, rollback, update
from trainer.signing import PRIVATE_FILE, PUBLIC_FILE, SigningError, keygen, load_private_key, sign

ROOT = Path(__file__).resolve().parents[1]
SHIPPED_LIBRARY = ROOT / "models" / "libraries" / "sers-pesticides"
BIN = Path(sys.executable).parent


@pytest.fixture(scope="module")
def fleet(tmp_path_factory):
    """(private key, public key file) of the fleet."""
    out = tmp_path_factory.mktemp("fleet-key")
    keygen(out)
    return load_private_key(out / PRIVATE_FILE), out / PUBLIC_FILE


@pytest.fixture(scope="module")
def other(tmp_path_factory):
    """(private key, public key file) of someone else."""
    out = tmp_path_factory.mktemp("other-key")
    keygen(out)
    return load_private_key(out / PRIVATE_FILE), out / PUBLIC_FILE


def signed_copy(src: Path, dest: Path, key) -> Path:
    shutil.copytree(src, dest)
    sign(dest, key)
    return dest


def tree(path: Path) -> dict:
    """Every file under ``path`` with its bytes."""
    return {p.relative_to(path).as_posix(): p.read_bytes() for p in sorted(path.rglob("*")) if p.is_file()}


def test_a_good_signature_is_accepted_and_has_the_documented_form(tmp_path, fleet, shipped_bundle):
    key, public = fleet
    bundle = signed_copy(shipped_bundle.path, tmp_path / "b", key)
    keys = load_public_keys(public)
    assert load_bundle(bundle, keys).model_id == shipped_bundle.model_id  # signing leaves the card as it was
    record = json.loads((bundle / SIGNATURE_FILE).read_text())
    assert set(record) == {"schema", "algorithm", "key_id", "card", "signature"}
    assert record["schema"] == 1 and record["algorithm"] == "ed25519" and record["card"] == "model.json"
    assert record["key_id"] == key_id(key.public_key()) and list(keys) == [record["key_id"]]
    assert len(base64.b64decode(record["signature"])) == 64
    library = signed_copy(SHIPPED_LIBRARY, tmp_path / "lib", key)
    assert json.loads((library / SIGNATURE_FILE).read_text())["card"] == "library.json"
    assert load_library(library, keys).library_id == load_library(SHIPPED_LIBRARY).library_id


def _flip_card_byte(d: Path) -> None:
    card = d / "model.json"
    card.write_bytes(card.read_bytes().replace(b"sers-pesticides", b"Sers-pesticides", 1))


def _flip_signature_byte(d: Path) -> None:
    record = json.loads((d / SIGNATURE_FILE).read_text())
    raw = bytearray(base64.b64decode(record["signature"]))
    raw[10] ^= 1
    record["signature"] = base64.b64encode(bytes(raw)).decode()
    (d / SIGNATURE_FILE).write_text(json.dumps(record))


def _edit_signature(d: Path, **fields) -> None:
    record = json.loads((d / SIGNATURE_FILE).read_text())
    (d / SIGNATURE_FILE).write_text(json.dumps({**record, **fields}))


REFUSALS = {
    "unsigned": (lambda d, other: (d / SIGNATURE_FILE).unlink(), SignatureError,
                 "it is not signed \\(no signature.json\\).*raman-train sign"),
    "another key": (lambda d, other: sign(d, other), SignatureError, "it is signed by the key [0-9a-f]{16}, not by "
                    "the fleet's \\([0-9a-f]{16}\\)"),
    "a card byte": (lambda d, other: _flip_card_byte(d), SignatureError,
                    "its signature does not match model.json: the card or the signature was changed after signing"),
    "a signature byte": (lambda d, other: _flip_signature_byte(d), SignatureError,
                         "its signature does not match model.json"),
    "an added file": (lambda d, other: (d / "notes.txt").write_text("hello"), BundleError,
                      "notes.txt is not listed in model.json"),
    "another card's signature": (lambda d, other: _edit_signature(d, card="library.json"), SignatureError,
                                 "signature.json is malformed \\(it signs 'library.json', not 'model.json'\\)"),
    "not JSON": (lambda d, other: (d / SIGNATURE_FILE).write_text("{"), SignatureError,
                 "signature.json is malformed \\(not valid JSON"),
    "a short signature": (lambda d, other: _edit_signature(d, signature="AAAA"), SignatureError,
                          "signature.json is malformed \\(its signature has 3 bytes, not 64\\)"),
}


@pytest.mark.parametrize("damage", REFUSALS)
def test_each_refusal_has_its_message(tmp_path, fleet, other, shipped_bundle, damage):
    change, error, message = REFUSALS[damage]
    bundle = signed_copy(shipped_bundle.path, tmp_path / "b", fleet[0])
    change(bundle, other[0])
    with pytest.raises(error, match=f"^model bundle {bundle}: {message}") as exc:
        load_bundle(bundle, load_public_keys(fleet[1]))
    assert str(exc.value).endswith(".")


def test_without_required_signatures_nothing_is_checked(tmp_path, fleet, shipped_bundle):
    bundle = signed_copy(shipped_bundle.path, tmp_path / "b", fleet[0])
    assert load_bundle(bundle).model_id == shipped_bundle.model_id
    (bundle / SIGNATURE_FILE).write_text("not a signature")
    assert load_bundle(bundle).model_id == shipped_bundle.model_id


def test_a_card_cannot_list_the_signature(tmp_path, fleet, shipped_bundle):
    bundle = signed_copy(shipped_bundle.path, tmp_path / "b", fleet[0])
    card = json.loads((bundle / "model.json").read_text())
    card["files"][SIGNATURE_FILE] = {"sha256": "0" * 64, "bytes": 0}
    (bundle / "model.json").write_text(json.dumps(card))
    with pytest.raises(BundleError, match="model.json lists signature.json, the card's signature, which no card"):
        load_bundle(bundle)


def test_a_library_signature_is_checked_likewise(tmp_path, fleet, other):
    library = signed_copy(SHIPPED_LIBRARY, tmp_path / "lib", other[0])
    with pytest.raises(SignatureError, match=f"^reference library {library}: it is signed by the key "
                                             f"{key_id(other[0].public_key())}"):
        load_library(library, load_public_keys(fleet[1]))


def test_key_files_that_cannot_be_used_are_named_with_the_fix(tmp_path, fleet):
    with pytest.raises(SigningKeyError, match=f"public key {tmp_path / 'none.pub'}: cannot be read"):
        load_public_keys(tmp_path / "none.pub")
    with pytest.raises(SigningKeyError, match="holds no PEM public key.*fleet-signing.pub from raman-train keygen"):
        load_public_keys(fleet[1].with_name(PRIVATE_FILE))
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    ec_key = ec.generate_private_key(ec.SECP256R1()).public_key()
    (tmp_path / "ec.pub").write_bytes(ec_key.public_bytes(serialization.Encoding.PEM,
                                                          serialization.PublicFormat.SubjectPublicKeyInfo))
    with pytest.raises(SigningKeyError, match="key, not Ed25519"):
        load_public_keys(tmp_path / "ec.pub")
    with pytest.raises(SigningKeyError, match="not an unencrypted PEM private key.*fleet-signing.key"):
        load_private_key(fleet[1])


def test_a_key_file_may_hold_two_keys_for_a_rotation(tmp_path, fleet, other, shipped_bundle):
    both = tmp_path / "both.pub"
    both.write_bytes(fleet[1].read_bytes() + other[1].read_bytes())
    keys = load_public_keys(both)
    assert len(keys) == 2
    for name, (key, _) in (("a", fleet), ("b", other)):
        assert load_bundle(signed_copy(shipped_bundle.path, tmp_path / name, key), keys).model_id \
            == shipped_bundle.model_id


def test_without_cryptography_the_message_names_the_extra(monkeypatch, fleet):
    monkeypatch.setitem(sys.modules, "cryptography.hazmat.primitives", None)
    with pytest.raises(SigningKeyError, match=r"install the uplink extra \(pip install 'raman-edge\[uplink\]'\)"):
        load_public_keys(fleet[1])


def test_keygen_writes_a_private_key_for_its_owner_only_and_replaces_none_unasked(tmp_path):
    first = keygen(tmp_path)
    assert os.stat(tmp_path / PRIVATE_FILE).st_mode & 0o777 == 0o600
    assert list(load_public_keys(tmp_path / PUBLIC_FILE)) == [first]
    with pytest.raises(SigningError, match=f"{tmp_path / PRIVATE_FILE} already exists; give --force"):
        keygen(tmp_path)
    assert list(load_public_keys(tmp_path / PUBLIC_FILE)) == [first]
    assert keygen(tmp_path, force=True) != first
    assert os.stat(tmp_path / PRIVATE_FILE).st_mode & 0o777 == 0o600


def test_sign_refuses_a_corrupt_bundle_and_re_signing_replaces_the_signature(tmp_path, fleet, other, shipped_bundle):
    bundle = tmp_path / "b"
    shutil.copytree(shipped_bundle.path, bundle)
    data = bytearray((bundle / "model.npz").read_bytes())
    data[-100] ^= 1
    (bundle / "model.npz").write_bytes(bytes(data))
    with pytest.raises(BundleError, match="model.npz does not match its SHA-256"):
        sign(bundle, fleet[0])
    assert not (bundle / SIGNATURE_FILE).exists()
    with pytest.raises(SigningError, match="not a model bundle \\(model.json\\) or a reference library"):
        sign(tmp_path, fleet[0])
    good = signed_copy(shipped_bundle.path, tmp_path / "good", other[0])
    sign(good, fleet[0])
    assert load_bundle(good, load_public_keys(fleet[1])).model_id == shipped_bundle.model_id


# -- where signatures are required -------------------------------------------------------------------------


@pytest.fixture
def device(tmp_path, fleet, shipped_bundle):
    """A configuration requiring the fleet's signature, with a signed model and library installed."""
    installed = signed_copy(shipped_bundle.path, tmp_path / "models" / "current", fleet[0])
    library = signed_copy(SHIPPED_LIBRARY, tmp_path / "libraries" / "current", fleet[0])
    cfg_path = tmp_path / "raman-edge.toml"
    cfg_path.write_text(f'[spectrometer]\nprotocol = "obp"\nport = "sim://obp?paced=0&seed=4"\nlaser_nm = 785.0\n'
                        f'integration_s = 0.05\n[model]\nbundle = "{installed}"\n[library]\npath = "{library}"\n'
                        f'[signatures]\nrequired = true\npublic_key = "{fleet[1]}"\n'
                        f'[data]\ndirectory = "{tmp_path / "data"}"\n')
    return cfg_path, parse_config(cfg_path.read_text(), cfg_path)


@pytest.mark.parametrize("kind", [MODEL, LIBRARY], ids=["update-model", "update-library"])
@pytest.mark.parametrize("damage", ["unsigned", "another key", "a card byte"])
def test_updates_refuse_and_change_nothing(tmp_path, device, fleet, other, shipped_bundle, kind, damage):
    _, cfg = device
    target = kind.target(cfg)
    before = tree(target.parent)
    new = signed_copy(shipped_bundle.path if kind is MODEL else SHIPPED_LIBRARY, tmp_path / "new", other[0])
    if damage == "unsigned":
        (new / SIGNATURE_FILE).unlink()
    elif damage == "a card byte":
        sign(new, fleet[0])
        card = new / ("model.json" if kind is MODEL else "library.json")
        card.write_bytes(card.read_bytes().replace(b"sers-pesticides", b"Sers-pesticides", 1))
    message = {"unsigned": "it is not signed", "another key": f"signed by the key {key_id(other[0].public_key())}",
               "a card byte": "its signature does not match"}[damage]
    with pytest.raises(SignatureError, match=message):
        update(kind, cfg, new, log=lambda m: None)
    assert tree(target.parent) == before


@pytest.mark.slow
def test_a_signed_update_is_installed_and_a_rollback_to_an_unsigned_one_refused(tmp_path, device, fleet,
                                                                               shipped_bundle):
    _, cfg = device
    new = variant(shipped_bundle, tmp_path / "new", "sers-pesticides-signed")
    sign(new.path, fleet[0])
    assert update(MODEL, cfg, new.path, log=lambda m: None)["model"] == new.model_id
    (cfg.model.bundle.parent / "current.previous" / SIGNATURE_FILE).unlink()  # what it replaced: now unsigned
    before = tree(cfg.model.bundle.parent)
    with pytest.raises(SignatureError, match="current.previous: it is not signed"):
        rollback(MODEL, cfg, log=lambda m: None)
    assert tree(cfg.model.bundle.parent) == before


def test_update_library_installs_keeps_the_previous_and_rolls_back(tmp_path, device, fleet):
    _, cfg = device
    old = load_library(cfg.library.path).library_id
    new = signed_copy(ROOT / "models" / "libraries" / "microplastics", tmp_path / "new", fleet[0])
    reply = update(LIBRARY, cfg, new, log=lambda m: None)
    assert reply == {"ok": True, "service": "not running", "library": load_library(new).library_id}
    assert load_library(cfg.library.path).library_id == reply["library"]
    assert load_library(cfg.library.path.parent / "current.previous").library_id == old
    assert rollback(LIBRARY, cfg, log=lambda m: None)["library"] == old
    assert load_library(cfg.library.path).library_id == old


def test_update_library_without_a_configured_library_says_what_to_set(tmp_path, fleet, shipped_bundle):
    cfg = parse_config(f'[spectrometer]\nprotocol = "obp"\nport = "sim://obp"\nlaser_nm = 785.0\n'
                       f'[model]\nbundle = "{shipped_bundle.path}"\n[data]\ndirectory = "{tmp_path}"\n')
    with pytest.raises(UpdateError, match="the configuration names no library: set library.path"):
        update(LIBRARY, cfg, SHIPPED_LIBRARY, log=lambda m: None)


def test_a_library_refused_by_library_expect_is_not_installed(tmp_path, device, fleet):
    _, cfg = device
    from dataclasses import replace

    expecting = replace(cfg, library=replace(cfg.library, expect="no-such-entry"))
    with pytest.raises(LibraryError, match="no-such-entry"):
        update(LIBRARY, expecting, signed_copy(SHIPPED_LIBRARY, tmp_path / "new", fleet[0]), log=lambda m: None)


@pytest.mark.slow
def test_the_service_starts_only_with_signed_bundles_and_reload_keeps_the_old_model(device):
    _, cfg = device
    svc = Service(cfg)
    try:
        model = svc.bundle.model_id
        (cfg.model.bundle / SIGNATURE_FILE).unlink()
        r = svc.reload()
        assert not r["ok"] and r["error"].startswith(f"refused, still serving {model}: model bundle ")
        assert "it is not signed" in r["error"] and svc.bundle.model_id == model
    finally:
        svc.close()
    with pytest.raises(SignatureError, match="it is not signed"):
        Service(cfg)


@pytest.mark.slow
def test_run_refuses_an_unsigned_library_as_not_configured(device):
    cfg_path, cfg = device
    (cfg.library.path / SIGNATURE_FILE).unlink()
    r = subprocess.run([str(BIN / "raman-device"), "run", "--config", str(cfg_path)], capture_output=True,
                       text=True, timeout=120)
    assert r.returncode == 6 and "Traceback" not in r.stderr
    assert r.stderr.startswith(f"error: reference library {cfg.library.path}: it is not signed")


@pytest.mark.slow
def test_the_command_lines(tmp_path, device, shipped_bundle):
    cfg_path, cfg = device
    keys = tmp_path / "keys"
    r = subprocess.run([str(BIN / "raman-train"), "keygen", "--out", str(keys)], capture_output=True, text=True)
    assert r.returncode == 0 and "key id" in r.stdout
    again = subprocess.run([str(BIN / "raman-train"), "keygen", "--out", str(keys)], capture_output=True, text=True)
    assert again.returncode == 2 and "already exists; give --force" in again.stderr
    new = tmp_path / "new"
    shutil.copytree(SHIPPED_LIBRARY, new)
    s = subprocess.run([str(BIN / "raman-train"), "sign", str(new), "--key", str(keys / PRIVATE_FILE)],
                       capture_output=True, text=True)
    assert s.returncode == 0 and s.stdout.startswith(f"signed {new}: sers-pesticides@")
    u = subprocess.run([str(BIN / "raman-device"), "update-library", "--config", str(cfg_path), str(new)],
                       capture_output=True, text=True)
    assert u.returncode == 2 and u.stderr.startswith(f"error: reference library {new}: it is signed by the key ")
    assert "Traceback" not in u.stderr and not cfg.library.path.with_name("current.previous").exists()
