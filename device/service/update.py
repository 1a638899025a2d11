"""``raman-device update-model``: install a new model bundle atomically, and switch the service to it.

1. The new bundle is verified (every hash) and self-tested (its example spectra must come back with
   their labels) where it is; a corrupt, tampered or failing bundle is refused and nothing changes.
2. It is copied beside the configured bundle directory and verified again there (the copy itself may
   fail: a full or failing card).
3. The copy replaces the configured directory in one atomic step (:func:`device.fileio.publish_directory`);
   the bundle it replaces is kept beside it, as ``<bundle>.previous`` (replacing an older one there).
4. A running service is told to RELOAD: it loads and self-tests the configured bundle again, checks that
   its spectrometer covers the model's axis, and switches to it between measurements. If it refuses, the
   previous bundle is swapped back into place, so the configuration names the model still serving.

``--rollback`` swaps the configured bundle and ``<bundle>.previous`` in the same atomic step and tells the
service to RELOAD (after a verification and self-test of the previous bundle); a second rollback goes
forward again.
"""
from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from device.errors import RamanEdgeError
from device.fileio import exchange_directories, publish_directory
from device.inference.bundle import load_bundle
from device.inference.classifier import Classifier
from device.service.config import Config
from device.service.measurement import self_test
from device.service.runner import SOCKET_FILE, send_command


class UpdateError(RamanEdgeError):
    """The new model bundle was refused; the installed one is unchanged."""


def previous_path(target: Path) -> Path:
    """Where the bundle replaced by the last update of ``target`` is kept."""
    return target.with_name(f"{target.name}.previous")


def _checked(path: Path, backend: str):
    bundle = load_bundle(path)
    test = self_test(bundle, Classifier(bundle, backend))
    if not test["passed"]:
        raise UpdateError(f"model bundle {path} failed its self-test ({test['reason']}); nothing was changed")
    return bundle


def _reload(config: Config, installed, undo) -> dict:
    """Tell a running service to RELOAD; if it refuses, ``undo()`` the change on disk and raise UpdateError.

    ``undo()`` returns what it did, for the message.
    """
    try:
        reply = send_command(config.data_directory / SOCKET_FILE, "RELOAD")
    except (FileNotFoundError, ConnectionRefusedError):
        return {"ok": True, "service": "not running", "model": installed.model_id}
    if not reply.get("ok"):
        raise UpdateError(f"the running service refused {installed.model_id}: {reply.get('error')}; {undo()}")
    return reply


def update_model(config: Config, new: Path, log=print) -> dict:
    """Install the bundle ``new`` at the configured bundle path and switch a running service to it.

    Returns the running service's RELOAD reply, or ``{"ok": True, "service": "not running"}``.
    Raises ``BundleError`` or :class:`UpdateError` (nothing changed) for a bundle that is refused.
    """
    target = config.model.bundle
    bundle = _checked(Path(new), config.model.backend)
    log(f"verified {bundle.model_id}: every file's hash and {len(bundle.examples)} example spectra")
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    except OSError as exc:
        raise UpdateError(f"cannot install into {target.parent} ({exc.strerror or exc}); nothing was changed: run "
                          "it as a user who may write there (e.g. with sudo)") from None
    try:
        try:
            shutil.copytree(new, tmp, dirs_exist_ok=True)
        except OSError as exc:
            raise UpdateError(f"cannot copy {new} into {target.parent} ({exc}); nothing was changed") from None
        copied = _checked(tmp, config.model.backend)
        if copied.model_id != bundle.model_id:
            raise UpdateError("the copy differs from the bundle it was made from; nothing was changed")
        replacing = target.exists()
        publish_directory(tmp, target, keep=previous_path(target))
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    log(f"installed at {target}" + (f"; the model it replaced is kept at {previous_path(target)}" if replacing else ""))

    def undo() -> str:  # the refused bundle goes; the one it replaced comes back
        if not replacing:
            shutil.rmtree(target)
            return f"it was removed from {target} again"
        exchange_directories(previous_path(target), target)
        shutil.rmtree(previous_path(target))
        return f"the model it replaced is back at {target}"

    return _reload(config, bundle, undo)


def rollback_model(config: Config, log=print) -> dict:
    """Swap the configured bundle with the one the last update replaced, and switch a running service to it.

    Returns the RELOAD reply as :func:`update_model` does. Raises :class:`UpdateError` when there is no
    previous bundle, or it fails its self-test (nothing changed), or the service refuses it (swapped back).
    """
    target = config.model.bundle
    previous = previous_path(target)
    if not previous.is_dir():
        raise UpdateError(f"no previous model to go back to: {previous} does not exist (it is kept by "
                          "raman-device update-model BUNDLE)")
    if not target.is_dir():
        raise UpdateError(f"no model installed at {target} to swap with {previous}; install one with "
                          "raman-device update-model BUNDLE")
    bundle = _checked(previous, config.model.backend)
    exchange_directories(previous, target)
    log(f"rolled back to {bundle.model_id} at {target}; the model it replaced is kept at {previous}")

    def undo() -> str:
        exchange_directories(previous, target)
        return f"the model it replaced is back at {target}, and {bundle.model_id} at {previous}"

    return _reload(config, bundle, undo)
