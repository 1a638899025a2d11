"""The fleet's payloads and its central database: round trips, refusals, one row per measurement, export.

Payloads are built from real records (:class:`device.service.record.Record`, the shipped model's example
spectra) and read back as the collector reads them; the database is SQLite here and PostgreSQL in
tests/test_fleet_delivery.py. The export is read back by the trainer's own loader.
"""
import base64
import json

import numpy as np
import pytest
from helpers import payload_of

from device.inference.bundle import load_bundle
from device.inference.readers import read_spectra
from device.service.record import Record, RecordStore
from device.uplink import messages
from fleet.database import FleetDatabase, decode_measurement

pytest.importorskip("paho.mqtt")
SHIPPED = load_bundle("models/sers-pesticides")
STORE = "0123456789abcdef0123456789abcdef"


def example_records(n: int = 6) -> list[Record]:
    """Records of the shipped model's example spectra, labelled with their folder, with evidence."""
    out = []
    for i, (path, label) in enumerate(SHIPPED.examples[:n]):
        s = read_spectra(path)[0]
        out.append(Record("button", {"protocol": "obp", "serial": "S1"}, None, s.shift, s.intensity, SHIPPED.model_id,
                          {}, {label: 0.9}, label, 0.9, None,
                          {"mode": "classify", "bands": [{"shift": 1001.0, "weight": 1.0}]},
                          {"axis": s.shift, "sample": s.intensity / s.intensity.max()}, 1796000000.0 + i, i + 1))
    return out


def received(rec: Record, device="pi-001", store=STORE) -> tuple[dict, bytes]:
    """What the collector stores of a record's payload: its fields (arrays left encoded) and the payload."""
    payload = payload_of(rec, device, store)
    return messages.read_measurement(payload, device), payload


def f4(values) -> dict:
    return {"f4": base64.b64encode(np.asarray(values, "<f4").tobytes()).decode()}


def test_a_measurement_survives_the_trip_to_float32():
    rec = example_records(1)[0]
    m = decode_measurement(payload_of(rec), "pi-001")
    assert (m["device"], m["store"], m["id"], m["verdict"], m["trigger"]) == ("pi-001", STORE, 1, rec.verdict, "button")
    np.testing.assert_allclose(m["spectrum"]["intensity"], rec.intensity, rtol=1e-6)
    np.testing.assert_allclose(m["evidence"]["sample"], rec.evidence["sample"], rtol=1e-6)
    assert m["analysis"] == rec.analysis and m["instrument"] == rec.device


def tampered(field, value) -> bytes:
    payload = json.loads(payload_of(example_records(1)[0]))
    payload[field] = value
    return json.dumps(payload).encode()


@pytest.mark.parametrize("payload, problem", [
    (b"not json", "not JSON"),
    (b"[1, 2]", "not a JSON object"),
    (tampered("schema", 2), "schema 2"),
    (tampered("device", "pi-002"), "arrived on 'pi-001'"),
    (tampered("id", "7"), "id is of the wrong type"),
    (tampered("store", "x" * 32), "store or id is malformed"),
    (tampered("time", None), "lacks time"),
    (tampered("spectrum", {"shift": {"f4": "!!"}, "intensity": {"f4": "AAAA"}}), "not base64 of 1 to"),
    (tampered("evidence", {"axis": [1, 2]}), "evidence.axis is not an array"),
])
def test_a_malformed_measurement_is_refused_by_name(payload, problem):
    with pytest.raises(messages.PayloadError, match=problem):
        messages.read_measurement(payload, "pi-001")


@pytest.mark.parametrize("payload, problem", [
    (tampered("spectrum", {"shift": {"f4": "!!!!"}, "intensity": {"f4": "AAAA"}}), "not valid base64"),
    (tampered("spectrum", {"shift": f4([np.nan]), "intensity": f4([1])}), "not finite"),
    (tampered("spectrum", {"shift": f4([1, 2]), "intensity": f4([1])}), "differ in length"),
])
def test_array_values_are_checked_when_decoded(payload, problem):
    messages.read_measurement(payload, "pi-001")  # the form is right: the collector stores it
    with pytest.raises(messages.PayloadError, match=problem):
        decode_measurement(payload, "pi-001")


def test_topics_are_parsed_and_others_refused():
    assert messages.parse_device_topic(messages.measurements_topic("pi-7")) == ("pi-7", "measurements")
    assert messages.parse_device_topic(messages.status_topic("pi-7")) == ("pi-7", "status")
    for topic in ("raman-edge/v1/devices/pi-7/other", "raman-edge/v2/devices/pi-7/status", "raman-edge/v1/devices/+/x"):
        with pytest.raises(messages.PayloadError):
            messages.parse_device_topic(topic)


def test_each_measurement_is_stored_once_however_often_it_arrives(tmp_path):
    db = FleetDatabase(tmp_path / "fleet.db")
    recs = example_records()
    assert db.store([received(r) for r in recs], [], 1796000100.0) == len(recs)
    assert db.store([received(r) for r in recs[:3]], [], 1796000200.0) == 0  # delivered again: nothing new
    assert db.store([received(recs[0], store="f" * 32)], [], 1796000300.0) == 1  # another record file, same id
    assert db.store([received(recs[0], device="pi-002")], [], 1796000300.0) == 1  # another device, same id
    assert db.count() == len(recs) + 2
    first = db.measurement(1)
    assert first["received"] == 1796000100.0  # the first arrival's, kept
    np.testing.assert_allclose(first["shift"], recs[0].shift, rtol=1e-6)


def test_devices_list_status_counts_and_last_verdict(tmp_path):
    db = FleetDatabase(tmp_path / "fleet.db")
    recs = example_records()
    status = messages.read_status(messages.status_payload("pi-001", 1796000000.0, model=SHIPPED.model_id,
                                                          free_mb=100.0, records=6, sent=6), "pi-001")
    db.store([received(r) for r in recs], [status], 1796000100.0)
    db.store([received(recs[0], device="pi-002")], [], 1796000200.0)
    (one, two) = db.devices()
    assert (one["device"], one["online"], one["model"], one["measurements"]) == ("pi-001", True, SHIPPED.model_id, 6)
    assert one["last_verdict"] == recs[-1].verdict and two["measurements"] == 1 and two["status"] is None
    offline = messages.read_status(messages.offline_payload("pi-001", 1796000300.0), "pi-001")
    db.store([], [offline], 1796000300.0)
    gone = db.devices()[0]
    assert gone["online"] is False and gone["model"] == SHIPPED.model_id
    assert gone["status"]["free_mb"] == 100.0 and gone["status"]["time"] == 1796000300.0  # the rest kept


def test_filters_by_device_verdict_and_time(tmp_path):
    db = FleetDatabase(tmp_path / "fleet.db")
    recs = example_records()
    db.store([received(r) for r in recs] + [received(recs[0], device="pi-002")], [], 1796000100.0)
    assert [m["device"] for m in db.measurements(device="pi-002")] == ["pi-002"]
    assert {m["verdict"] for m in db.measurements(verdict=recs[2].verdict)} == {recs[2].verdict}
    window = db.measurements(since=recs[1].time, until=recs[3].time)
    assert sorted(m["record_id"] for m in window) == [2, 3]
    assert [m["time"] for m in db.measurements()] == sorted((m["time"] for m in db.measurements()), reverse=True)
    assert len(db.measurements(limit=2, offset=5)) == 2


def test_fleet_export_is_training_data_the_trainer_reads(tmp_path):
    from device.service.export import export
    from trainer.data.dataset import load_dataset

    db = FleetDatabase(tmp_path / "fleet.db")
    recs = example_records()
    db.store([received(r) for r in recs], [], 1796000100.0)
    n = export(db.records(), tmp_path / "fleet.csv", SHIPPED.axis, "csv")
    data = load_dataset(tmp_path / "fleet.csv")
    assert n == len(recs) == len(data.y)
    assert sorted(data.class_names[i] for i in data.y) == sorted(r.verdict for r in recs)
    # the same spectra as the device's own export of its own record
    store = RecordStore(tmp_path / "record.db")
    for r in example_records():
        r.id = None
        store.add(r)
    export(store.query(newest_first=False), tmp_path / "device.csv", SHIPPED.axis, "csv")
    np.testing.assert_allclose(data.X, load_dataset(tmp_path / "device.csv").X, rtol=1e-5, atol=1e-6)


def test_a_record_file_has_its_own_store_id_kept_across_opens(tmp_path):
    a = RecordStore(tmp_path / "a.db")
    b = RecordStore(tmp_path / "b.db")
    assert a.store_id != b.store_id and len(a.store_id) == 32
    a.close()
    assert RecordStore(tmp_path / "a.db").store_id == a.store_id


def test_float32_conversion_without_numpy_agrees_with_numpy():
    values = np.random.default_rng(3).normal(0, 1e4, 1000)
    assert messages.float32_bytes(values.astype("<f8").tobytes()) == values.astype("<f4").tobytes()


def test_evidence_npz_is_read_without_numpy_as_numpy_reads_it(tmp_path):
    import io

    rng = np.random.default_rng(4)
    arrays = {"axis": np.linspace(400, 1800, 700), "hit.0": rng.normal(size=700), "component.1": rng.normal(size=700)}
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    read = messages.npz_float64(buffer.getvalue())
    assert sorted(read) == sorted(arrays)
    for name, values in arrays.items():
        assert np.array_equal(np.frombuffer(read[name], "<f8"), values)
    for bad in ({"axis": np.zeros(5, "<f4")}, {"axis": np.zeros((2, 3))}):  # negative controls
        buffer = io.BytesIO()
        np.savez(buffer, **bad)
        with pytest.raises(ValueError, match="not a 1-D little-endian float64"):
            messages.npz_float64(buffer.getvalue())
    with pytest.raises(ValueError, match="not an .npz"):
        messages.npz_float64(b"not a zip")


def test_the_payload_is_kept_as_received_and_bad_arrays_are_named_when_read(tmp_path):
    db = FleetDatabase(tmp_path / "fleet.db")
    rec = example_records(1)[0]
    good = payload_of(rec)
    db.store([received(rec)], [], 1796000100.0)
    (stored,) = db._transaction(lambda cur: cur.execute("SELECT payload FROM measurements").fetchone())
    assert bytes(stored) == good
    bad = json.loads(good)
    bad["id"] = 2
    bad["spectrum"]["intensity"] = {"f4": "!!!!" * (len(bad["spectrum"]["intensity"]["f4"]) // 4)}  # form, not base64
    payload = json.dumps(bad).encode()
    db.store([(messages.read_measurement(payload, "pi-001"), payload)], [], 1796000200.0)
    assert db.measurement(1)["problem"] is None
    broken = db.measurement(2)
    assert "not valid base64" in broken["problem"] and broken["intensity"] is None and broken["verdict"] == rec.verdict


@pytest.mark.parametrize("value", [{"f4": "AAA"}, {"f2": "AAAA"}, {"f4": "AAAA", "f8": "AAAA"}, "AAAA",
                                   {"f4": "A" * 4 * (messages.MAX_POINTS * 4 // 3 + 4)}])
def test_an_array_of_the_wrong_form_is_refused_without_decoding(value):
    with pytest.raises(messages.PayloadError):
        messages.check_array(value, "x")
    messages.check_array({"f4": "AAAA"}, "x")  # the control: one float32 of the right form
