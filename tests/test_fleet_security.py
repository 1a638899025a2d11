"""The broker's security, on a real Mosquitto with the fleet's configuration and real TLS (docs/fleet.md).

Each refusal has its negative control: the same client doing what it may, which gets through. A message that
must not arrive is proved absent by the control published after it: the broker delivers to one subscriber in
the order it handled the publishes (each acknowledged before the next is sent), so whatever the subscriber
receives before the control is everything it was given.
"""
from __future__ import annotations

import base64
import json

import pytest
from fleet_servers import Broker, broker, make_pki, pki  # noqa: F401

from fleet import pki as fleet_pki
from fleet.broker import MESSAGE_SIZE_LIMIT

pytestmark = pytest.mark.slow

DEVICES, ROLLOUT = "raman-edge/v1/devices", "raman-edge/v1/rollout"


def received_until(client, last_topic: str) -> list:
    """The topics ``client`` receives up to and including the first of ``last_topic`` (which must come)."""
    topics = []
    while not topics or topics[-1] != last_topic:
        message = client.receive()
        assert message is not None, f"{last_topic} never arrived (got {topics})"
        topics.append(message.topic)
    return topics


def forged(broker, identity: str, topic: str):
    """Publish as ``identity`` where it may not: the PUBACK's reason code; the broker then closes the connection."""
    client = broker.connect(identity)
    reason = client.publish(topic, b'{"schema": 1}')
    assert client.disconnected.wait(10), "the broker kept a client that published where it may not"
    client.close()
    return reason


def test_a_device_cannot_publish_as_another_device(broker):
    collector = broker.connect("collector")
    assert not collector.subscribe(f"{DEVICES}/#")[0].is_failure
    for topic in (f"{DEVICES}/pi-001/measurements", f"{DEVICES}/pi-001/status", f"{DEVICES}/collector/status"):
        reason = forged(broker, "pi-002", topic)
        assert reason.is_failure and reason.getName() == "Not authorized", topic
    own = f"{DEVICES}/pi-002/measurements"
    assert not broker.connect("pi-002").publish(own, b'{"schema": 1}').is_failure
    assert received_until(collector, own) == [own]


def test_a_device_reads_only_its_own_and_the_all_devices_rollouts(broker):
    other = broker.connect("pi-002")
    other.publish(f"{DEVICES}/pi-002/status", b'{"online": true}', retain=True)
    device = broker.connect("pi-001")
    for topic in ("#", f"{DEVICES}/#", f"{DEVICES}/pi-002/#", f"{DEVICES}/+/status", f"{ROLLOUT}/#",
                  f"{ROLLOUT}/pi-002/#", f"{ROLLOUT}/pi-001/#", f"{ROLLOUT}/all/#"):
        assert device.subscribe(topic) is not None, topic
    other.publish(f"{DEVICES}/pi-002/measurements", b"{}")
    admin = broker.connect("fleet-admin")
    for topic in (f"{ROLLOUT}/pi-002/r-1", f"{ROLLOUT}/all/r-2", f"{ROLLOUT}/pi-001/r-3"):
        assert not admin.publish(topic, b"{}").is_failure
    topics = received_until(device, f"{ROLLOUT}/pi-001/r-3")
    assert set(topics) == {f"{ROLLOUT}/all/r-2", f"{ROLLOUT}/pi-001/r-3"}, topics


def test_devices_and_the_collector_cannot_publish_rollouts(broker):
    device = broker.connect("pi-003")
    device.subscribe(f"{ROLLOUT}/pi-003/#")
    device.subscribe(f"{ROLLOUT}/all/#")
    for identity in ("pi-001", "pi-002", "collector"):
        for topic in (f"{ROLLOUT}/all/r-1", f"{ROLLOUT}/pi-003/r-1", f"{ROLLOUT}/{identity}/r-1"):
            assert forged(broker, identity, topic).getName() == "Not authorized", (identity, topic)
    assert forged(broker, "collector", f"{DEVICES}/pi-003/measurements").is_failure
    control = f"{ROLLOUT}/pi-003/r-2"
    assert not broker.connect("fleet-admin").publish(control, b"{}").is_failure
    assert received_until(device, control) == [control]


def test_a_client_without_a_certificate_is_refused(broker):
    with pytest.raises(ConnectionRefusedError):
        broker.connect(None)
    assert not broker.connect("pi-001").disconnected.is_set()


def test_a_certificate_of_another_ca_is_refused(broker, tmp_path):
    fleet_pki.make_ca(tmp_path)
    fleet_pki.issue_client(tmp_path, "pi-001")
    context = broker.pki.context(None)  # trusts the fleet's broker, presents the other CA's pi-001
    context.load_cert_chain(tmp_path / "pi-001.pem", tmp_path / "pi-001.key")
    with pytest.raises(ConnectionRefusedError):
        broker.connect("pi-001", context=context)
    assert not broker.connect("pi-001").disconnected.is_set()


def test_a_device_cannot_take_over_another_devices_session(broker):
    victim = broker.connect("pi-001", client_id="pi-001", clean_start=False)
    victim.subscribe(f"{ROLLOUT}/pi-001/#")
    broker.connect("pi-002", client_id="pi-001", clean_start=False)  # named as the victim's session
    rollout = f"{ROLLOUT}/pi-001/r-1"
    broker.connect("fleet-admin").publish(rollout, b"{}")
    assert received_until(victim, rollout) == [rollout]
    assert not victim.disconnected.is_set()
    broker.connect("pi-001", client_id="something-else", clean_start=False)  # control: its own identity takes over
    assert victim.disconnected.wait(10)


def test_a_revoked_certificate_is_refused_after_a_restart(tmp_path):
    own = make_pki(tmp_path / "pki")
    server = Broker(own, tmp_path / "broker")
    try:
        server.start()
        server.connect("pi-003").close()
        kept = own.context("pi-003")  # the revoked device still holds its certificate and key
        fleet_pki.revoke(own.path, "pi-003")
        assert not (own.path / "pi-003.pem").exists()
        server.stop()
        server.start()
        with pytest.raises(ConnectionRefusedError):
            server.connect("pi-003", context=kept)
        assert not server.connect("pi-002").disconnected.is_set()
    finally:
        server.close()


def test_a_rollout_chunk_fits_and_a_larger_message_does_not(broker):
    device = broker.connect("pi-001")
    device.subscribe(f"{ROLLOUT}/pi-001/#")
    chunk = json.dumps({"schema": 1, "rollout": "r-1", "kind": "model", "name": "m", "index": 0, "count": 1,
                        "archive_sha256": "0" * 64, "data": base64.b64encode(bytes(256 * 1024)).decode()}).encode()
    assert not broker.connect("fleet-admin").publish(f"{ROLLOUT}/pi-001/r-1", chunk).is_failure
    message = device.receive()
    assert message.topic == f"{ROLLOUT}/pi-001/r-1" and message.payload == chunk
    admin = broker.connect("fleet-admin")
    admin.paho.publish(f"{ROLLOUT}/pi-001/r-2", bytes(MESSAGE_SIZE_LIMIT + 1), qos=1)
    assert admin.disconnected.wait(10), "the broker took a message above its limit"


def test_a_clean_stop_keeps_what_is_queued_for_an_offline_session(broker):
    collector = broker.connect("collector", clean_start=False)
    collector.subscribe(f"{DEVICES}/#")
    collector.close()
    topic = f"{DEVICES}/pi-001/measurements"
    assert not broker.connect("pi-001").publish(topic, b'{"id": 1}').is_failure
    broker.stop()
    assert (broker.persistence / "mosquitto.db").is_file()
    broker.start()
    message = broker.connect("collector", clean_start=False).receive()
    assert message is not None and (message.topic, message.payload) == (topic, b'{"id": 1}')
