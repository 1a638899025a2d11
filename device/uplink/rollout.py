"""Rollouts on the device: a signed bundle from the broker, in chunks, checked whole, then installed.

Chunks are kept on disk as they arrive (``rollouts/ID/`` in the data directory), so a rollout survives a
restart of the uplink half-way. When every chunk is there, the archive's SHA-256 is checked, it is
unpacked (only plain files and directories inside it), and handed to ``raman-device update-model`` (or
``update-library``) ``--require-signature`` in a process of its own: the bundle must be signed by the
fleet's key (``signatures.public_key``: a rollout is refused without one, whatever
``signatures.required`` says) and match every hash of its card, then self-test, atomic exchange, RELOAD
of the running service, and the previous bundle back if the service refuses it. The uplink itself loads
no model (and no NumPy). The outcome is kept (``rollouts/last.json``) and
reported in the device's status; a rollout that arrives again after its outcome is ignored.
"""
from __future__ import annotations

import hashlib
import io
import json
import shutil
import subprocess
import sys
import tarfile
import time
from pathlib import Path, PurePosixPath

from device.errors import RamanEdgeError
from device.fileio import write_replacing, write_synced
from device.uplink.messages import PayloadError, read_chunk

ROLLOUT_DIRECTORY = "rollouts"
#: Most bytes an unpacked bundle may take (the shipped ones take well under 1 MB).
MAX_BUNDLE_BYTES = 256 * 2**20
#: How many finished rollouts are remembered, so that one delivered again is not installed again.
REMEMBERED = 100


class RolloutError(RamanEdgeError):
    """A rollout that is refused; the message is the reason reported in the status."""


def unpack(archive: bytes, into: Path) -> None:
    """Unpack a tar archive of plain files and directories into ``into``.

    Raises
    ------
    RolloutError
        For anything else: links, devices, absolute paths or ``..``, more than :data:`MAX_BUNDLE_BYTES`.
    """
    try:
        with tarfile.open(fileobj=io.BytesIO(archive), mode="r:") as tar:
            members = tar.getmembers()
            total = 0
            for m in members:
                inside = PurePosixPath(m.name)
                if inside.is_absolute() or ".." in inside.parts or not (m.isfile() or m.isdir()):
                    raise RolloutError(f"the archive holds {m.name[:100]!r}, which is not a plain file inside it")
                total += m.size
            if total > MAX_BUNDLE_BYTES:
                raise RolloutError(f"the archive unpacks to {total / 2**20:.0f} MB, more than a bundle takes")
            for m in members:
                target = into.joinpath(*PurePosixPath(m.name).parts)
                if m.isdir():
                    target.mkdir(parents=True, exist_ok=True)
                else:
                    target.parent.mkdir(parents=True, exist_ok=True)
                    target.write_bytes(tar.extractfile(m).read())
    except tarfile.TarError as exc:
        raise RolloutError(f"the archive is not a readable tar archive ({exc})") from None


class Rollouts:
    """The rollouts of one device.

    Parameters
    ----------
    config : Config
        The device's configuration (its data directory, its ``[signatures]`` key).
    config_path : path-like
        The configuration file, handed to ``raman-device update-model`` / ``update-library``.
    log : callable
        Where progress and refusals go.
    """

    def __init__(self, config, config_path, log=print):
        self.config, self.config_path, self.log = config, Path(config_path), log
        self.directory = config.data_directory / ROLLOUT_DIRECTORY
        self.directory.mkdir(parents=True, exist_ok=True)
        self._last_path = self.directory / "last.json"
        try:
            kept = json.loads(self._last_path.read_text())
        except (OSError, ValueError):
            kept = {}
        self.last = kept.get("last")
        self._done = list(kept.get("done", []))

    def _keep(self, outcome: dict) -> None:
        self.last = outcome
        if outcome["result"] != "receiving":
            self._done = (self._done + [outcome["id"]])[-REMEMBERED:]
        write_replacing(self._last_path, json.dumps({"last": self.last, "done": self._done}).encode(), mode=0o640)

    def receive(self, payload: bytes) -> bool:
        """Take one chunk; True when the outcome reported in the status changed."""
        try:
            chunk = read_chunk(payload)
        except PayloadError as exc:
            self.log(f"uplink: left out a rollout message: {exc}")
            return False
        rollout = chunk["rollout"]
        if rollout in self._done:
            return False
        stage = self.directory / rollout
        manifest = {k: chunk[k] for k in ("kind", "name", "count", "archive_sha256")}
        manifest_path = stage / "manifest.json"
        changed = False
        if not manifest_path.is_file():
            stage.mkdir(parents=True, exist_ok=True)
            write_synced(manifest_path, json.dumps(manifest).encode())
            self.log(f"uplink: receiving rollout {rollout}: {chunk['kind']} {chunk['name']} in {chunk['count']} chunks")
            self._keep({"id": rollout, "bundle": chunk["name"], "result": "receiving", "reason": None,
                        "time": time.time()})
            changed = True
        elif json.loads(manifest_path.read_text()) != manifest:
            return self._finish(rollout, chunk["name"], RolloutError("its chunks describe different archives"))
        write_synced(stage / f"{chunk['index']:05d}.part", chunk["data"])
        if len(list(stage.glob("*.part"))) == chunk["count"]:
            try:
                installed = self._install(stage, manifest)
            except RolloutError as exc:
                return self._finish(rollout, chunk["name"], exc)
            return self._finish(rollout, installed, None)
        return changed

    def _finish(self, rollout: str, bundle: str, error: RolloutError | None) -> bool:
        shutil.rmtree(self.directory / rollout, ignore_errors=True)
        if error is None:
            self.log(f"uplink: rollout {rollout}: installed {bundle}")
        else:
            self.log(f"uplink: rollout {rollout} refused: {error}")
        self._keep({"id": rollout, "bundle": bundle, "result": "refused" if error else "installed",
                    "reason": None if error is None else str(error), "time": time.time()})
        return True

    def _install(self, stage: Path, manifest: dict) -> str:
        """Check, unpack, verify and install a complete rollout; the installed id, or RolloutError."""
        archive = b"".join(p.read_bytes() for p in sorted(stage.glob("*.part")))
        if hashlib.sha256(archive).hexdigest() != manifest["archive_sha256"]:
            raise RolloutError("the archive does not match its SHA-256: a chunk was damaged or replaced")
        bundle = stage / "bundle" / manifest["name"]
        bundle.mkdir(parents=True)
        unpack(archive, bundle)
        command = "update-model" if manifest["kind"] == "model" else "update-library"
        done = subprocess.run([sys.executable, "-m", "device.cli", command, "--config", str(self.config_path),
                               "--require-signature", str(bundle)], capture_output=True, text=True)
        if done.returncode:
            lines = (done.stderr or done.stdout).strip().splitlines()
            raise RolloutError(lines[-1].removeprefix("error: ") if lines
                               else f"raman-device {command} failed ({done.returncode})")
        reply = json.loads(done.stdout.strip().splitlines()[-1])
        return reply.get(manifest["kind"])
