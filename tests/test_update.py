"""Model update: a new bundle is verified and self-tested, installed atomically, and the service switches.

A corrupt, tampered or failing bundle is refused and the old model keeps serving.
"""
import json
import shutil
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest
from helpers import OutputLines, wait_ready
from helpers import shipped_variant as variant

from device.errors import BundleError
from device.inference.bundle import load_bundle
from device.service.config import parse_config
from device.service.control import SOCKET_FILE, send_command
from device.service.measurement import Service
from device.service.update import UpdateError, update_model

BIN = Path(sys.executable).parent


@pytest.fixture
def setup(tmp_path, shipped_bundle):
    installed = tmp_path / "models" / "current"
    shutil.copytree(shipped_bundle.path, installed)
    cfg_path = tmp_path / "raman-edge.toml"
    cfg_path.write_text(f'[spectrometer]\nprotocol = "obp"\nport = "sim://obp?paced=0&seed=4"\nlaser_nm = 785.0\n'
                        f'integration_s = 0.05\n[model]\nbundle = "{installed}"\n'
                        f'[data]\ndirectory = "{tmp_path / "data"}"\n')
    return tmp_path, cfg_path, parse_config(cfg_path.read_text(), cfg_path)


@pytest.mark.slow
def test_update_without_a_running_service(setup, shipped_bundle):
    tmp, _, cfg = setup
    new = variant(shipped_bundle, tmp / "new", "sers-pesticides-v2")
    reply = update_model(cfg, new.path, log=lambda m: None)
    assert reply == {"ok": True, "service": "not running", "model": new.model_id}
    assert load_bundle(cfg.model.bundle).model_id == new.model_id
    assert sorted(p.name for p in cfg.model.bundle.parent.iterdir()) == ["current", "current.previous"]
    assert load_bundle(cfg.model.bundle.parent / "current.previous").model_id == shipped_bundle.model_id


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


@pytest.mark.slow
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


@pytest.mark.slow
def test_update_switches_the_running_service(setup, shipped_bundle):
    tmp, cfg_path, cfg = setup
    proc = subprocess.Popen([str(BIN / "raman-device"), "run", "--config", str(cfg_path)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        assert OutputLines(proc).read_until().startswith("ready: ready")
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


def run_service(cfg_path):
    """``raman-device run`` on the configuration, once it has said it is ready."""
    proc = subprocess.Popen([str(BIN / "raman-device"), "run", "--config", str(cfg_path)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    line = wait_ready(OutputLines(proc))
    assert line.startswith("ready: ready"), line
    return proc


def update(cfg_path, *args):
    return subprocess.run([str(BIN / "raman-device"), "update-model", "--config", str(cfg_path), *map(str, args)],
                          capture_output=True, text=True)


@pytest.mark.slow
def test_update_keeps_the_previous_model_and_rollback_brings_it_back(setup, shipped_bundle):
    tmp, cfg_path, cfg = setup
    socket_path = tmp / "data" / SOCKET_FILE
    proc = run_service(cfg_path)
    try:
        old = send_command(socket_path, "MODEL")["model"]
        new = variant(shipped_bundle, tmp / "new", "sers-pesticides-v4")
        assert update(cfg_path, new.path).returncode == 0
        assert send_command(socket_path, "MEASURE")["model"] == new.model_id
        back = update(cfg_path, "--rollback")
        assert back.returncode == 0, back.stderr
        reply = json.loads(back.stdout.splitlines()[-1])
        assert reply["ok"] and reply["model"] == old and reply["previous"] == new.model_id
        measured = send_command(socket_path, "MEASURE")
        assert measured["ok"] and measured["model"] == old
        assert load_bundle(cfg.model.bundle).model_id == old  # on disk too: a restart serves it
        assert load_bundle(cfg.model.bundle.parent / "current.previous").model_id == new.model_id
        forward = update(cfg_path, "--rollback")  # and a second rollback goes forward again
        assert forward.returncode == 0 and send_command(socket_path, "MODEL")["model"] == new.model_id
    finally:
        proc.terminate()
        proc.wait(timeout=30)


@pytest.mark.slow
def test_rollback_without_a_previous_model_is_a_clear_error(setup):
    _, cfg_path, cfg = setup
    r = update(cfg_path, "--rollback")
    assert r.returncode == 2 and r.stderr.startswith("error: no previous model to go back to")
    assert "current.previous does not exist" in r.stderr and "Traceback" not in r.stderr
    assert sorted(p.name for p in cfg.model.bundle.parent.iterdir()) == ["current"]


def test_a_bundle_without_examples_is_refused_with_the_fix(setup, shipped_bundle):
    tmp, cfg_path, cfg = setup
    bare = variant(shipped_bundle, tmp / "bare", "bare", examples=False)
    r = update(cfg_path, bare.path)
    assert r.returncode == 2 and "no example spectra" in r.stderr
    assert "raman-train fit" in r.stderr and "--examples DIR" in r.stderr
    assert load_bundle(cfg.model.bundle).model_id == shipped_bundle.model_id


@pytest.mark.slow
def test_the_service_refuses_a_model_its_spectrometer_cannot_cover(setup, shipped_bundle):
    """The simulated STS unit covers -82..3563 cm-1 at 785 nm; a model on -601..897 cm-1 cannot be served."""
    tmp, cfg_path, cfg = setup
    socket_path = tmp / "data" / SOCKET_FILE
    shifted = variant(shipped_bundle, tmp / "shifted", "shifted", shift_cm1=-1102.0)
    proc = run_service(cfg_path)
    try:
        r = update(cfg_path, shifted.path)
        assert r.returncode == 2 and "Traceback" not in r.stderr
        assert f"the running service refused {shifted.model_id}" in r.stderr
        assert "axis -601..897 cm-1 is outside what the spectrometer covers, -82..3563 cm-1 with laser 785 nm" \
            in r.stderr
        assert send_command(socket_path, "STATUS")["state"] == "ready"
        measured = send_command(socket_path, "MEASURE")
        assert measured["ok"] and measured["model"] == shipped_bundle.model_id
        assert load_bundle(cfg.model.bundle).model_id == shipped_bundle.model_id  # the old one, on disk too
        assert sorted(p.name for p in cfg.model.bundle.parent.iterdir()) == ["current"]
        fits = variant(shipped_bundle, tmp / "fits", "fits", shift_cm1=-500.0)  # 1..1499 cm-1: covered
        assert update(cfg_path, fits.path).returncode == 0
        assert send_command(socket_path, "MODEL")["model"] == fits.model_id
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_update_into_a_directory_it_cannot_write_is_a_clear_error(setup, shipped_bundle, tmp_path):
    _, _, cfg = setup
    new = variant(shipped_bundle, tmp_path / "new", "sers-pesticides-v5")
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    elsewhere = replace(cfg, model=replace(cfg.model, bundle=blocker / "models" / "current"))
    with pytest.raises(UpdateError, match=f"cannot install into {blocker / 'models'} .*nothing was changed"):
        update_model(elsewhere, new.path, log=lambda m: None)


@pytest.mark.slow
def test_a_rollback_the_service_refuses_is_swapped_back(setup, shipped_bundle):
    tmp, cfg_path, cfg = setup
    shifted = variant(shipped_bundle, tmp / "shifted", "shifted", shift_cm1=-1102.0)  # not covered at 785 nm
    shutil.copytree(shifted.path, tmp / "models" / "current.previous")
    proc = run_service(cfg_path)
    try:
        r = update(cfg_path, "--rollback")
        assert r.returncode == 2 and f"the running service refused {shifted.model_id}" in r.stderr
        assert "-82..3563 cm-1 with laser 785 nm" in r.stderr and "the model it replaced is back at" in r.stderr
        assert send_command(tmp / "data" / SOCKET_FILE, "MODEL")["model"] == shipped_bundle.model_id
        assert load_bundle(cfg.model.bundle).model_id == shipped_bundle.model_id
        assert load_bundle(tmp / "models" / "current.previous").model_id == shifted.model_id
    finally:
        proc.terminate()
        proc.wait(timeout=30)
