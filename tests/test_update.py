"""Model update: a new bundle is verified and self-tested, installed atomically, and the service switches;
a corrupt, tampered or failing bundle is refused and the old model keeps serving."""
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from device.bundle import load_bundle, write_bundle
from device.config import parse_config
from device.errors import BundleError
from device.runner import SOCKET_FILE, send_command
from device.service import Service
from device.update import UpdateError, update_model

BIN = Path(sys.executable).parent


def variant(shipped, path: Path, name: str, relabel: bool = False):
    """The shipped network under another name (so another model id), its examples optionally mislabelled."""
    labels = list(shipped.class_names)
    examples = [(p.relative_to(shipped.path / "examples").as_posix(), p.read_bytes(),
                 labels[(labels.index(label) + 1) % len(labels)] if relabel else label) for p, label in shipped.examples]
    return write_bundle(path, name=name, class_names=shipped.class_names, axis=shipped.axis,
                        tflite=shipped.tflite_path.read_bytes(), card={"name": name}, prominence=shipped.prominence,
                        standardizer=shipped.standardizer, layers=shipped.layers, leaky_slope=shipped.leaky_slope,
                        normalisation=shipped.normalisation, examples=examples)


@pytest.fixture
def setup(tmp_path, shipped_bundle):
    installed = tmp_path / "models" / "current"
    shutil.copytree(shipped_bundle.path, installed)
    cfg_path = tmp_path / "raman-edge.toml"
    cfg_path.write_text(f'[spectrometer]\nprotocol = "obp"\nport = "sim://obp?paced=0&seed=4"\nlaser_nm = 785.0\n'
                        f'integration_s = 0.05\n[model]\nbundle = "{installed}"\n[data]\ndirectory = "{tmp_path / "data"}"\n')
    return tmp_path, cfg_path, parse_config(cfg_path.read_text(), cfg_path)


def test_update_without_a_running_service(setup, shipped_bundle):
    tmp, _, cfg = setup
    new = variant(shipped_bundle, tmp / "new", "sers-pesticides-v2")
    reply = update_model(cfg, new.path, log=lambda m: None)
    assert reply == {"ok": True, "service": "not running", "model": new.model_id}
    assert load_bundle(cfg.model.bundle).model_id == new.model_id
    assert sorted(p.name for p in cfg.model.bundle.parent.iterdir()) == ["current"]  # nothing left aside


def test_refused_bundles_change_nothing(setup, shipped_bundle):
    tmp, _, cfg = setup
    before = load_bundle(cfg.model.bundle).model_id
    tampered = variant(shipped_bundle, tmp / "tampered", "t")
    data = bytearray((tampered.path / "model.npz").read_bytes())
    data[-100] ^= 1
    (tampered.path / "model.npz").write_bytes(bytes(data))
    with pytest.raises(BundleError, match="does not match its SHA-256"):
        update_model(cfg, tampered.path, log=lambda m: None)
    failing = variant(shipped_bundle, tmp / "failing", "f", relabel=True)
    with pytest.raises(UpdateError, match="failed its self-test"):
        update_model(cfg, failing.path, log=lambda m: None)
    assert load_bundle(cfg.model.bundle).model_id == before
    assert sorted(p.name for p in cfg.model.bundle.parent.iterdir()) == ["current"]


def test_reload_refuses_a_damaged_configured_bundle_and_keeps_serving(setup):
    _, _, cfg = setup
    svc = Service(cfg)
    old = svc.bundle.model_id
    (cfg.model.bundle / "model.tflite").write_bytes(b"damaged")
    r = svc.reload()
    assert not r["ok"] and f"still serving {old}" in r["error"] and "model.tflite" in r["error"]
    m = svc.measure("command")
    assert m["ok"] and m["model"] == old
    svc.close()


def test_update_switches_the_running_service(setup, shipped_bundle):
    tmp, cfg_path, cfg = setup
    proc = subprocess.Popen([str(BIN / "raman-device"), "run", "--config", str(cfg_path)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().startswith("ready: ready")
        old = send_command(tmp / "data" / SOCKET_FILE, "MODEL")["model"]
        new = variant(shipped_bundle, tmp / "new", "sers-pesticides-v3")
        r = subprocess.run([str(BIN / "raman-device"), "update-model", "--config", str(cfg_path), str(new.path)],
                           capture_output=True, text=True)
        assert r.returncode == 0, r.stderr
        reply = json.loads(r.stdout.splitlines()[-1])
        assert reply["ok"] and reply["model"] == new.model_id and reply["previous"] == old
        measured = send_command(tmp / "data" / SOCKET_FILE, "MEASURE")
        assert measured["ok"] and measured["model"] == new.model_id
        bad = subprocess.run([str(BIN / "raman-device"), "update-model", "--config", str(cfg_path), str(tmp)],
                             capture_output=True, text=True)
        assert bad.returncode == 2 and "error: model bundle" in bad.stderr
        assert send_command(tmp / "data" / SOCKET_FILE, "MODEL")["model"] == new.model_id
    finally:
        proc.terminate()
        proc.wait(timeout=30)
