"""``raman-fleet collect``: every device's measurements and status from the broker into the fleet database.

The collector holds a persistent session (the broker keeps what arrives while it is away) and
acknowledges a message only after the transaction that stores it has committed: killed at any point,
it loses nothing, and what it had stored but not acknowledged arrives again and is stored once
(:class:`fleet.database.FleetDatabase` keys measurements by ``(device, store, id)``). Messages are
stored in batches, one transaction each, which is what makes thousands per second possible.

The broker queues messages only for subscriptions that exist: a collector's first start, which makes
its session, comes before the devices' first measurements (the session then outlives any absence of
the collector shorter than :data:`device.uplink.connection.SESSION_EXPIRY_S`).

A message that is not a payload of the schema (a device with another raman-edge release, or a damaged
one) is logged and acknowledged: it is not a measurement, and it would come back for ever otherwise.
"""
from __future__ import annotations

import queue
import threading
import time

from device.uplink import messages
from device.uplink.connection import connect_async, tls_client
from fleet.database import FleetDatabase

#: Most messages stored in one transaction.
BATCH = 1000
#: How long a batch waits for more messages once it has one, s.
LINGER_S = 0.02


class Collector:
    """The collector: the broker's device topics into ``database``.

    Parameters
    ----------
    database : FleetDatabase
        Where measurements and statuses go.
    broker : str
        The broker's host name; ``port`` its TLS port.
    ca, certificate, key : path-like
        The fleet CA's certificate and the collector's own certificate and key (``raman-fleet pki``).
    log : callable
        Where progress and problems go.
    """

    def __init__(self, database: FleetDatabase, broker: str, port: int, ca, certificate, key, log=print):
        self.database, self.broker, self.port, self.log = database, broker, port, log
        self.topic = messages.DEVICES_FILTER
        self._inbox: queue.Queue = queue.Queue()
        self._generation = 0  # of the connection a message came on: acknowledgements go on that one only
        self._stop = threading.Event()
        self.connected = threading.Event()
        self.subscribed = threading.Event()
        self.seen = self.stored = self.rejected = 0  # measurements received, of them new; messages left out
        self.client = tls_client("collector", ca, certificate, key, manual_ack=True)  # the broker names it so
        self.client.on_connect, self.client.on_disconnect = self._on_connect, self._on_disconnect
        self.client.on_message, self.client.on_subscribe = self._on_message, self._on_subscribe

    def _on_connect(self, client, userdata, flags, reason_code, properties) -> None:
        if reason_code.is_failure:
            self.log(f"collect: the broker {self.broker}:{self.port} refused the connection ({reason_code}); check "
                     "the collector's certificate and the broker's access list")
            return
        self._generation += 1
        client.subscribe(self.topic, qos=1)
        self.log(f"collect: connected to {self.broker}:{self.port}, storing into {self.database.shown_url()}")
        self.connected.set()

    def _on_subscribe(self, client, userdata, mid, reason_codes, properties) -> None:
        if any(code.is_failure for code in reason_codes):
            self.log(f"collect: the broker refused the subscription to {self.topic} ({reason_codes[0]}); the "
                     "collector's certificate must be the fleet's 'collector' identity")
            return
        self.log(f"collect: subscribed to {self.topic}")
        self.subscribed.set()

    def _on_disconnect(self, client, userdata, flags, reason_code, properties) -> None:
        if self.connected.is_set():
            self.log(f"collect: disconnected from the broker ({reason_code}); reconnecting")
        self.connected.clear()

    def _on_message(self, client, userdata, message) -> None:
        self._inbox.put((self._generation, message))

    def _batch(self) -> list:
        """The next messages: waits for one (until stopped), then takes what comes within :data:`LINGER_S`."""
        batch = []
        while not batch and not self._stop.is_set():
            try:
                batch.append(self._inbox.get(timeout=0.2))
            except queue.Empty:
                continue
        deadline = time.monotonic() + LINGER_S
        while batch and len(batch) < BATCH:
            try:
                batch.append(self._inbox.get(timeout=max(0.0, deadline - time.monotonic())))
            except queue.Empty:
                break
        return batch

    def store(self, batch: list) -> None:
        """Store one batch of ``(generation, message)`` in one transaction, then acknowledge each message."""
        found, statuses = [], {}
        for _, message in batch:
            try:
                device, kind = messages.parse_device_topic(message.topic)
                if kind == "measurements":
                    found.append((messages.read_measurement(message.payload, device), message.payload))
                else:
                    statuses[device] = messages.read_status(message.payload, device)  # the latest one counts
            except messages.PayloadError as exc:
                self.rejected += 1
                self.log(f"collect: left out a message on {message.topic[:120]}: {exc}")
        self.seen += len(found)
        self.stored += self.database.store(found, list(statuses.values()), time.time())
        for generation, message in batch:
            if generation == self._generation and message.qos:
                self.client.ack(message.mid, message.qos)

    def run(self) -> int:
        """Collect until :meth:`stop`; returns the exit status (0)."""
        connect_async(self.client, self.broker, self.port)
        self.client.loop_start()
        try:
            while not self._stop.is_set():
                batch = self._batch()
                if batch:
                    self.store(batch)
        finally:
            self.client.disconnect()
            self.client.loop_stop()
        return 0

    def stop(self) -> None:
        """Ask :meth:`run` to finish after the batch it is storing."""
        self._stop.set()
