"""``raman-edge-uplink``: every recorded measurement to the fleet's broker, at least once, and the status.

The record is the queue. The uplink reads the measurements the service has committed (SQLite in WAL mode
lets it read beside the writer), publishes each with QoS 1, and moves a durable cursor (``uplink.json``
in the data directory) past a measurement only once the broker has acknowledged it and every one before
it. After a power cut, a broker outage or a lost network it sends again from the cursor: delivery is at
least once, and the collector stores each measurement once by its ``(device, store, id)``.

The status is retained on the device's status topic, refreshed every ``uplink.status_every_s`` and when
a rollout changes it; the broker publishes the last will, ``online: false``, when the device falls
silent, and the uplink publishes the same itself on a clean stop. Rollouts (:mod:`device.uplink.rollout`)
arrive on a persistent session, so a device that was offline receives them when it comes back.
"""
from __future__ import annotations

import json
import os
import queue
import threading
import time

from device import __version__
from device.errors import RamanEdgeError
from device.fileio import write_replacing
from device.service.config import Config
from device.service.control import SOCKET_FILE, send_command
from device.service.record import RECORD_FILE, RecordStore
from device.service.systemd import sd_notify, watchdog_interval
from device.uplink import messages
from device.uplink.connection import connect_async, tls_client

CURSOR_FILE = "uplink.json"
#: Most measurements published and not yet acknowledged at once: each is held until the broker has it
#: (a measurement with its evidence is some 70 kB), and 20 keep a link of 10 ms round trip at 2,000/s.
WINDOW = 20
#: How often the record is looked at for new measurements, s (the delay a measurement may wait).
POLL_S = 0.1
#: How long the status waits for the service's answer to MODEL (it answers between measurements), s.
STATUS_TIMEOUT_S = 2.0


class UplinkError(RamanEdgeError):
    """The uplink cannot start: a missing ``[uplink]`` section or key file."""


def read_cursor(path, store: str) -> int:
    """The id up to which the broker acknowledged every measurement of record ``store`` (0: none yet).

    A cursor of another record file (the record was replaced) counts as none.
    """
    try:
        cursor = json.loads(path.read_text())
        return int(cursor["sent"]) if cursor.get("store") == store else 0
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return 0  # none yet, or a damaged one: everything again, which the collector stores once


def write_cursor(path, store: str, sent: int) -> None:
    """Replace the cursor atomically (synced before it is renamed into place)."""
    write_replacing(path, json.dumps({"store": store, "sent": sent}).encode(), mode=0o640)


class Uplink:
    """The uplink of one device.

    Parameters
    ----------
    config : Config
        The device's configuration; its ``[uplink]`` section names the broker and this device's identity.
    log : callable
        Where progress and problems go (one line each; journald under systemd).
    rollouts : device.uplink.rollout.Rollouts or None
        What receives rollout chunks; None: rollouts are not subscribed to.
    """

    def __init__(self, config: Config, log=print, rollouts=None):
        if config.uplink is None:
            raise UplinkError("the configuration has no [uplink] section; add one naming the broker and this device "
                              "(docs/fleet.md)")
        for name in ("ca", "certificate", "key"):
            path = getattr(config.uplink, name)
            if not os.access(path, os.R_OK):
                raise UplinkError(f"uplink.{name}: {path} cannot be read by this user; install the file "
                                  "(raman-fleet pki issue) and make it readable by the service's user")
        self.config, self.settings, self.log, self.rollouts = config, config.uplink, log, rollouts
        self.device = self.settings.device_id
        self.record = RecordStore(config.data_directory / RECORD_FILE)
        if self.record.store_id is None:
            raise UplinkError(f"the record {self.record.path} cannot be given its fleet id: its file system is "
                              "read-only; check or replace the storage card, then start the service and the uplink")
        self.cursor_path = config.data_directory / CURSOR_FILE
        self.sent = read_cursor(self.cursor_path, self.record.store_id)
        self._inflight: list[tuple[int, int]] = []  # (record id, message id), in the order published
        self._acks: dict[int, object] = {}  # message id -> the broker's reason code
        self._connected = threading.Event()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._chunks: queue.Queue = queue.Queue()
        client = tls_client(self.device, self.settings.ca, self.settings.certificate, self.settings.key)
        client.will_set(messages.status_topic(self.device), messages.offline_payload(self.device, time.time()),
                        qos=1, retain=True)
        client.on_connect, client.on_disconnect = self._on_connect, self._on_disconnect
        client.on_publish, client.on_message = self._on_publish, self._on_message
        self.client = client

    # --- the network thread's callbacks -------------------------------------------------------------
    def _on_connect(self, client, userdata, flags, reason_code, properties) -> None:
        if reason_code.is_failure:
            self.log(f"uplink: the broker {self.settings.broker}:{self.settings.port} refused the connection "
                     f"({reason_code}); check the device's certificate and the broker's access list")
            return
        self.log(f"uplink: connected to {self.settings.broker}:{self.settings.port} as {self.device}")
        if self.rollouts is not None:
            client.subscribe([(f, 1) for f in messages.rollout_filters(self.device)])
        self._connected.set()
        self._wake.set()

    def _on_disconnect(self, client, userdata, flags, reason_code, properties) -> None:
        if self._connected.is_set():
            self.log(f"uplink: disconnected from the broker ({reason_code}); measurements wait in the record")
        self._connected.clear()

    def _on_publish(self, client, userdata, mid, reason_code, properties) -> None:
        self._acks[mid] = reason_code
        self._wake.set()

    def _on_message(self, client, userdata, message) -> None:
        self._chunks.put(message.payload)
        self._wake.set()

    # --- the main thread ----------------------------------------------------------------------------
    def served(self) -> dict:
        """What the measuring service serves (its MODEL reply): ``service``, ``model``, ``libraries``."""
        try:
            reply = send_command(self.config.data_directory / SOCKET_FILE, "MODEL", timeout=STATUS_TIMEOUT_S)
        except (OSError, ValueError):  # not running, or busy past the timeout: said as it is
            return {"service": "not running", "model": None, "libraries": []}
        library = reply.get("library") or {}
        return {"service": "running", "model": reply.get("model"),
                "libraries": [library["id"]] if library.get("id") else []}

    def status(self) -> dict:
        """The status fields of docs/fleet.md, as they stand."""
        st = os.statvfs(self.config.data_directory)
        last = self.record.last_summary()
        return {"software": __version__, **self.served(),
                "free_mb": round(st.f_bavail * st.f_frsize / 1e6, 1), "records": self.record.count(),
                "sent": self.sent, "rollout": self.rollouts.last if self.rollouts else None, "last": last}

    def publish_status(self) -> None:
        """Publish the retained status (when connected)."""
        payload = messages.status_payload(self.device, time.time(), **self.status())
        self.client.publish(messages.status_topic(self.device), payload, qos=1, retain=True)

    def _send_more(self) -> None:
        """Publish the next measurements after those in flight, up to :data:`WINDOW` unacknowledged."""
        room = WINDOW - len(self._inflight)
        if room <= 0:
            return
        after = self._inflight[-1][0] if self._inflight else self.sent
        for stored in self.record.stored_after(after, room):
            info = self.client.publish(messages.measurements_topic(self.device),
                                       messages.measurement_payload(self.device, self.record.store_id, stored), qos=1)
            self._inflight.append((stored["id"], info.mid))

    def _advance(self) -> None:
        """Move the cursor past every measurement acknowledged in order; a refused one stops it, said once."""
        sent = self.sent
        while self._inflight and self._inflight[0][1] in self._acks:
            rec_id, mid = self._inflight[0]
            code = self._acks.pop(mid)
            if code.is_failure:
                self.log(f"uplink: the broker refused measurement {rec_id} ({code}); is uplink.device_id "
                         f"{self.device!r} the common name of this device's certificate? It stays in the record "
                         "and is sent again on the next connection")
                self._inflight.clear()
                self._acks.clear()
                self.client.disconnect()
                break
            self._inflight.pop(0)
            sent = rec_id
        tracked = {mid for _, mid in self._inflight}
        for mid in [m for m in self._acks if m not in tracked]:  # the status's own acknowledgements
            del self._acks[mid]
        if sent != self.sent:
            write_cursor(self.cursor_path, self.record.store_id, sent)
            self.sent = sent

    def run(self) -> int:
        """Publish until :meth:`stop`; returns the exit status (0)."""
        connect_async(self.client, self.settings.broker, self.settings.port, self.settings.keepalive_s)
        self.client.loop_start()
        sd_notify(f"READY=1\nSTATUS=sending to {self.settings.broker}:{self.settings.port}")
        watchdog = watchdog_interval()
        next_status = 0.0
        was_connected = False
        try:
            while not self._stop.is_set():
                self._wake.wait(POLL_S)
                self._wake.clear()
                connected = self._connected.is_set()
                if connected and not was_connected:
                    next_status = 0.0  # what was in flight the client sends again itself
                was_connected = connected
                self._advance()
                if connected:
                    self._send_more()
                    self._take_chunks()
                    if time.monotonic() >= next_status:
                        self.publish_status()
                        next_status = time.monotonic() + self.settings.status_every_s
                if watchdog:
                    sd_notify("WATCHDOG=1")
        finally:
            self._close()
        return 0

    def _take_chunks(self) -> None:
        changed = False
        while True:
            try:
                payload = self._chunks.get_nowait()
            except queue.Empty:
                break
            changed |= self.rollouts.receive(payload)
        if changed:
            self.publish_status()

    def stop(self) -> None:
        """Ask :meth:`run` to finish (from a signal handler or another thread)."""
        self._stop.set()
        self._wake.set()

    def _close(self) -> None:
        if self._connected.is_set():
            info = self.client.publish(messages.status_topic(self.device),
                                       messages.offline_payload(self.device, time.time()), qos=1, retain=True)
            info.wait_for_publish(timeout=5)
            self._advance()
        self.client.disconnect()
        self.client.loop_stop()
        self.record.close()
