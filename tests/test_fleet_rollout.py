"""Signed rollouts through a real Mosquitto to a device whose service runs on a simulator.

The fleet administrator publishes a bundle; the device's uplink assembles it, checks the archive, the
signature and every hash, and installs it through ``raman-device update-model`` (self-test, atomic
exchange, RELOAD): the running service then measures with the new model. Every refusal leaves the
installed model serving and is reported in the device's status with its reason: an unsigned bundle, one
signed by another key, one changed after signing, a chunk damaged on the way, a model that fails its
self-test.
"""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from fleet_servers import broker, pki  # noqa: F401
from helpers import OutputLines, wait_ready
from helpers import shipped_variant as variant

from device.inference.bundle import load_bundle
from device.service.config import load_config
from device.service.control import SOCKET_FILE, send_command
from device.uplink import messages
from device.uplink.rollout import Rollouts
from device.uplink.uplink import Uplink
from fleet.rollout import RolloutError, archive, chunks, roll_out
from trainer.signing import keygen, load_private_key, sign

pytestmark = pytest.mark.slow
BIN = Path(sys.executable).parent
TIMEOUT = 60.0


@pytest.fixture
def device(tmp_path, broker, shipped_bundle):
    """A device pi-001: its service on a simulated OBP unit serving a signed copy of the shipped model, its uplink."""
    keygen(tmp_path / "keys")
    key = load_private_key(tmp_path / "keys" / "fleet-signing.key")
    installed = tmp_path / "data" / "models" / "current"
    shutil.copytree(shipped_bundle.path, installed)
    sign(installed, key)
    cert, cert_key = broker.pki.files("pi-001")
    config_path = tmp_path / "raman-edge.toml"
    config_path.write_text(f"""
[spectrometer]
protocol = "obp"
port = "sim://obp?paced=0&seed=4"
laser_nm = 785.0
integration_s = 0.05
[model]
bundle = "{installed}"
[signatures]
required = true
public_key = "{tmp_path / 'keys' / 'fleet-signing.pub'}"
[data]
directory = "{tmp_path / 'data'}"
[uplink]
broker = "{broker.host}"
port = {broker.port}
device_id = "pi-001"
ca = "{broker.pki.ca}"
certificate = "{cert}"
key = "{cert_key}"
""")
    service = subprocess.Popen([str(BIN / "raman-device"), "run", "--config", str(config_path)],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert wait_ready(OutputLines(service)).startswith("ready: ready")
    config = load_config(config_path)
    uplink = Uplink(config, log=lambda _: None, rollouts=Rollouts(config, config_path, log=lambda _: None))
    thread = threading.Thread(target=uplink.run, daemon=True)
    thread.start()
    yield {"tmp": tmp_path, "key": key, "socket": tmp_path / "data" / SOCKET_FILE, "installed": installed}
    uplink.stop()
    thread.join(TIMEOUT)
    service.terminate()
    service.wait(TIMEOUT)


def admin(broker) -> dict:
    cert, key = broker.pki.files("fleet-admin")
    return {"broker": broker.host, "port": broker.port, "ca": broker.pki.ca, "certificate": cert, "key": key}


def serving(device) -> str:
    return send_command(device["socket"], "MODEL")["model"]


def test_a_signed_model_is_installed_and_served(device, broker, shipped_bundle):
    new = variant(shipped_bundle, device["tmp"] / "out" / "sers-pesticides-v2", "sers-pesticides-v2")
    sign(new.path, device["key"])
    outcomes = roll_out(new.path, ["pi-001"], wait_s=TIMEOUT, log=lambda _: None, **admin(broker))
    assert outcomes["pi-001"]["result"] == "installed", outcomes
    assert outcomes["pi-001"]["bundle"] == new.model_id
    assert serving(device) == new.model_id
    measured = send_command(device["socket"], "MEASURE")
    assert measured["ok"] and measured["model"] == new.model_id
    assert load_bundle(device["installed"]).model_id == new.model_id  # on disk: a restart serves it too


def refused(device, broker, bundle: Path) -> str:
    """Roll ``bundle`` out; the reason the device gives, once it is sure the installed model still serves."""
    before = serving(device)
    outcomes = roll_out(bundle, ["pi-001"], wait_s=TIMEOUT, log=lambda _: None, **admin(broker))
    assert outcomes["pi-001"]["result"] == "refused", outcomes
    assert serving(device) == before and load_bundle(device["installed"]).model_id == before
    return outcomes["pi-001"]["reason"]


def test_a_bundle_signed_by_another_key_is_refused(device, broker, shipped_bundle):
    keygen(device["tmp"] / "other")
    new = variant(shipped_bundle, device["tmp"] / "out" / "other-key", "other-key")
    sign(new.path, load_private_key(device["tmp"] / "other" / "fleet-signing.key"))
    assert "not by the fleet's" in refused(device, broker, new.path)


def test_a_bundle_changed_after_signing_is_refused(device, broker, shipped_bundle):
    new = variant(shipped_bundle, device["tmp"] / "out" / "tampered", "tampered")
    sign(new.path, device["key"])
    card = json.loads((new.path / "model.json").read_text())
    card["description"] = "changed after signing"
    (new.path / "model.json").write_text(json.dumps(card))
    assert "signature does not match" in refused(device, broker, new.path)


def test_a_model_failing_its_self_test_is_refused_on_the_device(device, broker, shipped_bundle):
    new = variant(shipped_bundle, device["tmp"] / "out" / "relabelled", "relabelled", relabel=True)
    sign(new.path, device["key"])
    assert "self-test" in refused(device, broker, new.path)


def test_a_rollout_to_all_reaches_the_device(device, broker, shipped_bundle):
    new = variant(shipped_bundle, device["tmp"] / "out" / "for-all", "for-all")
    sign(new.path, device["key"])
    outcome = publish_raw(device, broker, chunks("r-all", "model", "for-all", archive(new.path)), target="all")
    assert outcome["result"] == "installed" and serving(device) == new.model_id


def test_an_unsigned_bundle_is_refused_by_the_publisher_and_by_the_device(device, broker, shipped_bundle):
    new = variant(shipped_bundle, device["tmp"] / "out" / "unsigned", "unsigned")
    with pytest.raises(RolloutError, match="not signed"):
        roll_out(new.path, ["pi-001"], wait_s=0, **admin(broker))
    # published anyway, chunk by chunk, by someone holding the administrator's certificate but not the key
    outcome = publish_raw(device, broker, chunks("r-unsigned", "model", "unsigned", archive(new.path)))
    assert outcome["result"] == "refused" and "not signed" in outcome["reason"]


def test_a_chunk_damaged_on_the_way_is_refused(device, broker, shipped_bundle):
    new = variant(shipped_bundle, device["tmp"] / "out" / "damaged", "damaged")
    sign(new.path, device["key"])
    payloads = chunks("r-damaged", "model", "damaged", archive(new.path), size=64 * 1024)
    last = json.loads(payloads[-1])
    last["data"] = last["data"][:-8] + "AAAAAAA="
    outcome = publish_raw(device, broker, payloads[:-1] + [json.dumps(last).encode()])
    assert outcome["result"] == "refused" and "does not match its SHA-256" in outcome["reason"]


def publish_raw(device, broker, payloads: list[bytes], target: str = "pi-001") -> dict:
    """Publish rollout payloads to ``target`` as the administrator; the outcome pi-001 then reports."""
    rollout = json.loads(payloads[0])["rollout"]
    client = broker.connect("fleet-admin")
    client.subscribe(messages.status_topic("pi-001"))
    for p in payloads:
        assert not client.publish(messages.rollout_topic(target, rollout), p).is_failure
    while True:
        message = client.receive(messages.status_topic("pi-001"), timeout=TIMEOUT)
        assert message is not None, "no status with the rollout's outcome"
        outcome = json.loads(message.payload).get("rollout") or {}
        if outcome.get("id") == rollout and outcome.get("result") != "receiving":
            return outcome
