"""``raman-device update-model`` and ``update-library``: install a new bundle atomically, and switch the service.

One procedure for both kinds of sealed directory (:data:`MODEL` at ``model.bundle``, :data:`LIBRARY` at
``library.path``):

1. The new one is verified (every hash, and the fleet's signature where ``[signatures] required`` is set)
   where it is; a model is also self-tested (its example spectra must come back with their labels), a
   library must have the configured ``library.expect`` entry. A corrupt, tampered, unsigned or failing one
   is refused and nothing changes.
2. It is copied beside the configured directory and verified again there (the copy itself may fail: a
   full or failing card).
3. The copy replaces the configured directory in one atomic step (:func:`device.fileio.publish_directory`);
   the one it replaces is kept beside it, as ``<path>.previous`` (replacing an older one there).
4. A running service is told to RELOAD: it loads and checks the configured model and library again (and
   that its spectrometer covers the model's axis), and switches to them between measurements. If it
   refuses, the previous one is swapped back into place, so the configuration names what is still serving.

``--rollback`` swaps the configured directory and ``<path>.previous`` in the same atomic step and tells the
service to RELOAD (after the same checks of the previous one, its signature included); a second rollback
goes forward again.
"""
from __future__ import annotations

import shutil
import tempfile
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable

from device.errors import RamanEdgeError
from device.fileio import exchange_directories, publish_directory
from device.inference.bundle import load_bundle
from device.inference.classifier import Classifier
from device.inference.library import load_library
from device.inference.signature import fleet_keys
from device.service.config import Config
from device.service.control import SOCKET_FILE, send_command
from device.service.measurement import self_test


class UpdateError(RamanEdgeError):
    """The new model bundle or library was refused; the installed one is unchanged."""


@dataclass(frozen=True)
class Kind:
    """What an update installs: a model bundle or a reference library.

    Attributes
    ----------
    noun : str
        ``model`` or ``library``, in messages and in the reply of an update without a running service.
    command : str
        The ``raman-device`` subcommand that installs it.
    target : callable
        ``target(config)`` -> the configured directory, or None when the configuration names none.
    checked : callable
        ``checked(path, config, keys)`` -> its id, once it is verified (signed by one of ``keys`` unless
        None) and checked; raises otherwise.
    """

    noun: str
    command: str
    target: Callable[[Config], Path | None]
    checked: Callable[[Path, Config, dict | None], str]


def _checked_model(path: Path, config: Config, keys: dict | None) -> str:
    bundle = load_bundle(path, keys)
    test = self_test(bundle, Classifier(bundle, config.model.backend))
    if not test["passed"]:
        raise UpdateError(f"model bundle {path} failed its self-test ({test['reason']}); nothing was changed")
    return bundle.model_id


def _checked_library(path: Path, config: Config, keys: dict | None) -> str:
    library = load_library(path, keys)
    if config.library.expect is not None:
        library.variation(config.library.expect)  # as the service checks it at start
    return library.library_id


MODEL = Kind("model", "update-model", lambda config: config.model.bundle, _checked_model)
LIBRARY = Kind("library", "update-library", lambda config: config.library.path, _checked_library)


def previous_path(target: Path) -> Path:
    """Where the directory replaced by the last update of ``target`` is kept."""
    return target.with_name(f"{target.name}.previous")


def _target(kind: Kind, config: Config) -> Path:
    target = kind.target(config)
    if target is None:
        raise UpdateError(f"the configuration names no {kind.noun}: set library.path to the directory it is to be "
                          f"installed at, then run raman-device {kind.command} again")
    return target


def _reload(config: Config, kind: Kind, installed: str, undo) -> dict:
    """Tell a running service to RELOAD; if it refuses, ``undo()`` the change on disk and raise UpdateError.

    ``undo()`` returns what it did, for the message.
    """
    try:
        reply = send_command(config.data_directory / SOCKET_FILE, "RELOAD")
    except (FileNotFoundError, ConnectionRefusedError):
        return {"ok": True, "service": "not running", kind.noun: installed}
    if not reply.get("ok"):
        raise UpdateError(f"the running service refused {installed}: {reply.get('error')}; {undo()}")
    return reply


def update(kind: Kind, config: Config, new: Path, log=print, require_signature: bool = False) -> dict:
    """Install ``new`` at the configured path of ``kind`` and switch a running service to it.

    ``require_signature``: the fleet's signature is checked even where ``[signatures] required`` is not
    set (a rollout is installed only signed, whatever the configuration says).

    Returns the running service's RELOAD reply, or ``{"ok": True, "service": "not running", NOUN: ID}``.
    Raises ``BundleError`` (``SignatureError``) or :class:`UpdateError` (nothing changed) for one that is
    refused.
    """
    new = Path(new)
    target = _target(kind, config)
    if require_signature and config.signatures.public_key is None:
        raise UpdateError("a signature is required, but the configuration names no fleet public key "
                          "(signatures.public_key); install it with raman-device install --signing-key")
    keys = fleet_keys(replace(config.signatures, required=True) if require_signature else config.signatures)
    installed = kind.checked(new, config, keys)
    log(f"verified {installed}: every file's hash" + (", its signature" if keys is not None else "")
        + (" and its example spectra" if kind is MODEL else ""))
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
        if kind.checked(tmp, config, keys) != installed:
            raise UpdateError(f"the copy differs from the {kind.noun} it was made from; nothing was changed")
        replacing = target.exists()
        publish_directory(tmp, target, keep=previous_path(target))
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    log(f"installed at {target}"
        + (f"; the {kind.noun} it replaced is kept at {previous_path(target)}" if replacing else ""))

    def undo() -> str:  # the refused one goes; the one it replaced comes back
        if not replacing:
            shutil.rmtree(target)
            return f"it was removed from {target} again"
        exchange_directories(previous_path(target), target)
        shutil.rmtree(previous_path(target))
        return f"the {kind.noun} it replaced is back at {target}"

    return _reload(config, kind, installed, undo)


def rollback(kind: Kind, config: Config, log=print) -> dict:
    """Swap the configured directory of ``kind`` with the one the last update replaced, and RELOAD.

    Returns the RELOAD reply as :func:`update` does. Raises :class:`UpdateError` when there is no previous
    one, or it is refused (nothing changed), or the service refuses it (swapped back).
    """
    target = _target(kind, config)
    previous = previous_path(target)
    if not previous.is_dir():
        raise UpdateError(f"no previous {kind.noun} to go back to: {previous} does not exist (it is kept by "
                          f"raman-device {kind.command} DIR)")
    if not target.is_dir():
        raise UpdateError(f"no {kind.noun} installed at {target} to swap with {previous}; install one with "
                          f"raman-device {kind.command} DIR")
    installed = kind.checked(previous, config, fleet_keys(config.signatures))
    exchange_directories(previous, target)
    log(f"rolled back to {installed} at {target}; the {kind.noun} it replaced is kept at {previous}")

    def undo() -> str:
        exchange_directories(previous, target)
        return f"the {kind.noun} it replaced is back at {target}, and {installed} at {previous}"

    return _reload(config, kind, installed, undo)


def update_model(config: Config, new: Path, log=print) -> dict:
    """Install the model bundle ``new`` at ``model.bundle`` (:func:`update` of :data:`MODEL`)."""
    return update(MODEL, config, new, log)


def rollback_model(config: Config, log=print) -> dict:
    """Go back to the model bundle the last update replaced (:func:`rollback` of :data:`MODEL`)."""
    return rollback(MODEL, config, log)
