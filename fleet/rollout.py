"""``raman-fleet rollout``: publish a signed bundle to devices, and wait for what each one reports.

The bundle directory is packed into a tar archive (sorted, owner and times cleared, so the same bundle
gives the same archive), cut into chunks and published with QoS 1 on the rollout topic of each device
named, or once on ``all`` (docs/fleet.md). Devices hold persistent sessions: one that is offline gets
the rollout when it comes back. The outcome is each device's own, in its status: ``installed`` or
``refused`` with the reason.
"""
from __future__ import annotations

import hashlib
import io
import tarfile
import threading
import time
from datetime import datetime, timezone
from pathlib import Path

from device.errors import RamanEdgeError
from device.inference.bundle import CARD_FILE as MODEL_CARD
from device.inference.library import CARD_FILE as LIBRARY_CARD
from device.inference.signature import SIGNATURE_FILE
from device.service.config import DEVICE_ID
from device.uplink import messages
from device.uplink.connection import connect_async

#: Bytes of the archive per chunk.
CHUNK_BYTES = 192 * 1024


class RolloutError(RamanEdgeError):
    """A rollout that cannot be published; the message says why."""


def bundle_kind(path: Path) -> str:
    """``model`` or ``library``, by the card the directory holds; RolloutError if it holds neither or no signature."""
    kind = "model" if (path / MODEL_CARD).is_file() else "library" if (path / LIBRARY_CARD).is_file() else None
    if kind is None:
        raise RolloutError(f"{path} holds neither {MODEL_CARD} nor {LIBRARY_CARD}: give a model bundle or a "
                           "reference library directory")
    if not (path / SIGNATURE_FILE).is_file():
        raise RolloutError(f"{path} is not signed (no {SIGNATURE_FILE}), and devices refuse an unsigned rollout: "
                           "sign it with raman-train sign first")
    return kind


def archive(path: Path) -> bytes:
    """The directory as a reproducible tar archive: its files in sorted order, no owners, no times."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for f in sorted(p for p in path.rglob("*") if p.is_file()):
            info = tarfile.TarInfo(f.relative_to(path).as_posix())
            data = f.read_bytes()
            info.size, info.mode = len(data), 0o644
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def chunks(rollout: str, kind: str, name: str, data: bytes, size: int = CHUNK_BYTES) -> list[bytes]:
    """The payloads of a rollout of the archive ``data``."""
    digest = hashlib.sha256(data).hexdigest()
    parts = [data[i:i + size] for i in range(0, len(data), size)] or [b""]
    return [messages.chunk_payload(rollout, kind, name, i, len(parts), digest, part) for i, part in enumerate(parts)]


def new_rollout_id(now: float | None = None) -> str:
    """A rollout id from the time (UTC, to the millisecond): ``r-20261204T101502123``."""
    t = datetime.fromtimestamp(time.time() if now is None else now, timezone.utc)
    return "r-" + t.strftime("%Y%m%dT%H%M%S") + f"{t.microsecond // 1000:03d}"


class Rollout:
    """Publishing one rollout with a connected client of the fleet administrator's identity.

    Parameters
    ----------
    client : paho.mqtt.client.Client
        Made by :func:`device.uplink.connection.tls_client` with the ``fleet-admin`` certificate.
    bundle : path-like
        A signed model bundle or reference library.
    devices : list of str or None
        The devices to roll out to; None: every device (the ``all`` topic).
    """

    def __init__(self, client, bundle, devices: list[str] | None):
        self.bundle = Path(bundle)
        self.kind = bundle_kind(self.bundle)
        bad = [d for d in devices or [] if not DEVICE_ID.fullmatch(d)]
        if bad:
            raise RolloutError(f"not a device id: {', '.join(map(repr, bad))} (1-64 letters, digits, '.', '_', '-')")
        if not DEVICE_ID.fullmatch(self.bundle.name):
            raise RolloutError(f"the bundle's directory name {self.bundle.name!r} is not a plain name (letters, "
                               "digits, '.', '_', '-'); rename the directory")
        self.client, self.devices, self.id = client, devices, new_rollout_id()
        self.outcomes: dict[str, dict] = {}
        self._changed = threading.Condition()
        client.on_message = self._on_status

    def _on_status(self, client, userdata, message) -> None:
        try:
            device, kind = messages.parse_device_topic(message.topic)
            status = messages.read_status(message.payload, device) if kind == "status" else None
        except messages.PayloadError:
            return
        rollout = (status or {}).get("rollout") or {}
        if rollout.get("id") == self.id and rollout.get("result") in ("installed", "refused"):
            with self._changed:
                self.outcomes[device] = rollout
                self._changed.notify_all()

    def publish(self, timeout: float = 60.0) -> int:
        """Subscribe to the devices' statuses, then publish every chunk and wait until the broker has each.

        Returns the number of messages published. Raises RolloutError when the broker does not take them
        within ``timeout`` s.
        """
        self.client.subscribe([(messages.status_topic(d), 1) for d in self.devices] if self.devices
                              else [(messages.status_topic("+"), 1)])
        payloads = chunks(self.id, self.kind, self.bundle.name, archive(self.bundle))
        infos = [self.client.publish(messages.rollout_topic(target, self.id), p, qos=1)
                 for target in (self.devices or ["all"]) for p in payloads]
        deadline = time.monotonic() + timeout
        for info in infos:
            info.wait_for_publish(max(0.0, deadline - time.monotonic()))
            if not info.is_published():
                raise RolloutError(f"the broker did not take rollout {self.id} within {timeout:g} s; check that it "
                                   "runs and that this identity may publish rollouts")
        return len(infos)

    def wait(self, timeout: float) -> dict[str, dict]:
        """Wait up to ``timeout`` s for an outcome from every device named (with ``--all``: the whole time).

        Returns device -> its reported outcome (``result``, ``reason``, ``bundle``), for those that reported.
        """
        deadline = time.monotonic() + timeout
        with self._changed:
            while not (self.devices and set(self.devices) <= set(self.outcomes)):
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self._changed.wait(left)
            return dict(self.outcomes)


def roll_out(bundle, devices: list[str] | None, broker: str, port: int, ca, certificate, key, wait_s: float,
             log=print) -> dict[str, dict]:
    """Publish ``bundle`` to ``devices`` (None: all) as the identity of ``certificate``; the outcomes reported."""
    from device.uplink.connection import tls_client

    client = tls_client(f"rollout-{time.time_ns()}", ca, certificate, key)
    connected = threading.Event()
    client.on_connect = lambda c, u, f, rc, p: connected.set() if not rc.is_failure else None
    rollout = Rollout(client, bundle, devices)
    connect_async(client, broker, port, persistent=False)
    client.loop_start()
    try:
        if not connected.wait(30):
            raise RolloutError(f"cannot connect to the broker {broker}:{port} within 30 s; check that it runs and "
                               "that the administrator's certificate is the fleet's")
        n = rollout.publish()
        log(f"rollout {rollout.id}: {rollout.kind} {rollout.bundle.name} published in {n} messages to "
            + (", ".join(devices) if devices else "every device"))
        return rollout.wait(wait_s) if wait_s > 0 else {}
    finally:
        client.disconnect()
        client.loop_stop()
