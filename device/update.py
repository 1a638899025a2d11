"""``raman-device update-model``: install a new model bundle atomically, and switch the service to it.

1. The new bundle is verified (every hash) and self-tested (its example spectra must come back with
   their labels) where it is; a corrupt, tampered or failing bundle is refused and nothing changes.
2. It is copied beside the configured bundle directory and verified again there (the copy itself may
   fail: a full or failing card).
3. The copy replaces the configured directory in one atomic step (:func:`device.fileio.publish_directory`).
4. A running service is told to RELOAD: it loads and self-tests the configured bundle again and switches
   to it between measurements, or keeps its old model in memory and says why.
"""
from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from .bundle import load_bundle
from .classifier import Classifier
from .config import Config
from .errors import RamanEdgeError
from .fileio import publish_directory
from .runner import SOCKET_FILE, send_command
from .service import self_test


class UpdateError(RamanEdgeError):
    """The new model bundle was refused; the installed one is unchanged."""


def _checked(path: Path, backend: str):
    bundle = load_bundle(path)
    test = self_test(bundle, Classifier(bundle, backend))
    if not test["passed"]:
        raise UpdateError(f"model bundle {path} failed its self-test ({test['reason']}); nothing was changed")
    return bundle


def update_model(config: Config, new: Path, log=print) -> dict:
    """Install the bundle ``new`` at the configured bundle path and switch a running service to it.

    Returns the running service's RELOAD reply, or ``{"ok": True, "service": "not running"}``.
    Raises ``BundleError`` or :class:`UpdateError` (nothing changed) for a bundle that is refused.
    """
    target = config.model.bundle
    bundle = _checked(Path(new), config.model.backend)
    log(f"verified {bundle.model_id}: every file's hash and {len(bundle.examples)} example spectra")
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        shutil.copytree(new, tmp, dirs_exist_ok=True)
        copied = _checked(tmp, config.model.backend)
        if copied.model_id != bundle.model_id:
            raise UpdateError("the copy differs from the bundle it was made from; nothing was changed")
        publish_directory(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    log(f"installed at {target}")
    try:
        return send_command(config.data_directory / SOCKET_FILE, "RELOAD")
    except (FileNotFoundError, ConnectionRefusedError):
        return {"ok": True, "service": "not running", "model": bundle.model_id}
