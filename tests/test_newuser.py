"""The path a new user takes, from a default fit to a model the running service measures with.

A model trained the README's way, with defaults only, is installed with ``raman-device update-model``
into a running service, which switches to it and measures with it.
"""
import json
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import OutputLines, wait_ready

from device.inference.bundle import load_bundle

pytestmark = pytest.mark.slow

BIN = Path(sys.executable).parent


def test_a_default_fit_is_deployable(tmp_path, raw_subset, shipped_bundle):
    fit = subprocess.run([str(BIN / "raman-train"), "fit", str(raw_subset), "--out", str(tmp_path / "mine")],
                         capture_output=True, text=True, timeout=900)
    assert fit.returncode == 0, fit.stderr
    mine = load_bundle(tmp_path / "mine")
    assert mine.examples, "a default fit must carry the examples its self-test needs"

    installed = tmp_path / "models" / "current"
    shutil.copytree(shipped_bundle.path, installed)
    cfg = tmp_path / "raman-edge.toml"
    cfg.write_text(f'[spectrometer]\nprotocol = "obp"\nport = "sim://obp?paced=0&seed=4"\nlaser_nm = 785.0\n'
                   f'integration_s = 0.05\n[model]\nbundle = "{installed}"\n'
                   f'[data]\ndirectory = "{tmp_path / "data"}"\n')
    service = subprocess.Popen([str(BIN / "raman-device"), "run", "--config", str(cfg)], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
    try:
        assert wait_ready(OutputLines(service)).startswith("ready: ready")
        update = subprocess.run([str(BIN / "raman-device"), "update-model", "--config", str(cfg),
                                 str(tmp_path / "mine")], capture_output=True, text=True, timeout=120)
        assert update.returncode == 0, update.stdout + update.stderr
        status = json.loads(subprocess.run([str(BIN / "raman-device"), "measure", "--config", str(cfg),
                                            "--command", "STATUS"], capture_output=True, text=True).stdout)
        assert status["state"] == "ready" and status["model"] == mine.model_id, status
        measured = json.loads(subprocess.run([str(BIN / "raman-device"), "measure", "--config", str(cfg)],
                                             capture_output=True, text=True, timeout=120).stdout)
        assert measured["ok"] and measured["model"] == mine.model_id, measured
        assert measured["label"] in (*mine.class_names, "unknown")
    finally:
        service.send_signal(signal.SIGTERM)
        service.wait(timeout=30)
        service.stderr.close()
