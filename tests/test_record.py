"""The measurement record: durable, queryable, exportable as training data; analyses and their evidence."""
import io
import json
import shutil
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from helpers import OutputLines

from device.inference.spectrum import Axis
from device.service.export import ExportError, export
from device.service.record import Record, RecordError, RecordStore, analysis_summary, history_entry
from firmware_bridge.jcamp import read_jcamp
from trainer.data.dataset import load_dataset

pytestmark = pytest.mark.device  # needs only the device extra

BIN = Path(sys.executable).parent


def sample(i, verdict="Oxamyl_present"):
    shift = np.linspace(400, 2100, 300)
    return Record(trigger="button", device={"protocol": "obp", "serial": "STS04211", "integration_s": 0.1},
                  raw=np.arange(300.0) + i, shift=shift, intensity=np.sin(shift / 50) + i, model="m@abc",
                  model_files={"model.npz": "ab" * 32}, probabilities={verdict: 0.9, "other": 0.1},
                  verdict=verdict, confidence=0.9, time=1_790_000_000.0 + 60 * i)


def test_round_trip_and_queries(tmp_path):
    store = RecordStore(tmp_path / "data" / "record.db")
    ids = [store.add(sample(i, "A" if i % 2 else "B")) for i in range(5)]
    store.add(Record(trigger="control-port", device={}, error="no spectrometer", time=1_790_000_500.0))
    assert ids == [1, 2, 3, 4, 5] and store.count() == 6
    last = store.last()
    assert last.error == "no spectrometer" and last.verdict is None and last.raw is None
    r = store.query(verdict="A", newest_first=False)
    assert [x.id for x in r] == [2, 4]
    np.testing.assert_array_equal(r[0].raw, np.arange(300.0) + 1)
    assert r[0].device["serial"] == "STS04211" and r[0].probabilities == {"A": 0.9, "other": 0.1}
    assert [x.id for x in store.query(since=1_790_000_060.0, until=1_790_000_180.0)] == [3, 2]
    assert store.integrity_ok()
    mode = store._db.execute("PRAGMA journal_mode").fetchone()[0]
    sync = store._db.execute("PRAGMA synchronous").fetchone()[0]
    assert mode == "wal" and sync == 2  # FULL


def test_unusable_location_is_a_clear_error(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(RecordError, match="cannot open the record .*permissions and free space"):
        RecordStore(tmp_path / "file" / "record.db")
    bad = tmp_path / "not-a-db"
    bad.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(RecordError):
        RecordStore(bad)


def test_a_stored_record_survives_sigkill(tmp_path):
    db = tmp_path / "record.db"
    code = (
        "import sys, os, numpy as np\n"
        "from device.service.record import Record, RecordStore\n"
        f"s = RecordStore({str(db)!r})\n"
        "for i in range(1000):\n"
        "    rid = s.add(Record('button', {}, shift=np.arange(10.0), intensity=np.ones(10), verdict='x',\n"
        "                       analysis={'mode': 'identify', 'hits': [{'name': 'PET', 'hqi': float(i)}]},\n"
        "                       evidence={'axis': np.arange(10.0), 'sample': np.full(10, float(i))}))\n"
        "    print(rid, flush=True)\n"
    )
    p = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    output = OutputLines(p)
    reported = [int(output.read_until()) for _ in range(25)]
    p.send_signal(signal.SIGKILL)
    p.wait()
    store = RecordStore(db)
    assert store.integrity_ok()
    assert store.count() >= reported[-1]  # every id reported before the kill is on disk
    assert {r.id for r in store.query()} >= set(reported)
    for rid in reported:  # the analysis and its evidence are on disk with the row
        r = store.get(rid)
        assert r.analysis["hits"][0]["hqi"] == rid - 1
        np.testing.assert_array_equal(r.evidence["sample"], np.full(10, rid - 1.0))


def test_export_feeds_the_trainer(tmp_path):
    store = RecordStore(tmp_path / "r.db")
    for i in range(6):
        store.add(sample(i, "A" if i % 2 else "B"))
    store.add(sample(9, "uncertain"))
    narrow = sample(10)
    narrow.shift = np.linspace(900, 1000, 300)
    store.add(narrow)
    axis = Axis(500, 2000, 751)
    assert export(store.query(), tmp_path / "x.npz", axis, "npz") == 6
    assert export(store.query(), tmp_path / "x.csv", axis, "csv") == 6
    a, b = load_dataset(tmp_path / "x.npz"), load_dataset(tmp_path / "x.csv")
    assert a.class_names == b.class_names == ("A", "B") and str(a.axis) == "500:2000:751"
    np.testing.assert_allclose(a.X, b.X, rtol=1e-5)


@pytest.mark.slow
def test_history_and_export_commands(tmp_path, shipped_bundle):
    store = RecordStore(tmp_path / "r.db")
    x = shipped_bundle.axis.values
    for i in range(3):
        rec = sample(i, shipped_bundle.class_names[i])
        rec.shift, rec.intensity = x, np.cos(x / 40) + i
        store.add(rec)
    r = subprocess.run([str(BIN / "raman-device"), "history", "--db", str(tmp_path / "r.db"), "--limit", "2"],
                       capture_output=True, text=True)
    rows = [json.loads(line) for line in r.stdout.splitlines()]
    assert r.returncode == 0 and [row["id"] for row in rows] == [3, 2] and rows[0]["time"].startswith("2026")
    r = subprocess.run([str(BIN / "raman-device"), "export", "--db", str(tmp_path / "r.db"), "--model",
                        str(shipped_bundle.path), "--format", "npz", "--out", str(tmp_path / "e.npz"),
                        "--since", "2026-09-21T12:00"], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert "wrote" in r.stdout and load_dataset(tmp_path / "e.npz").X.shape[1] == shipped_bundle.axis.points
    r = subprocess.run([str(BIN / "raman-device"), "history", "--db", str(tmp_path / "none.db")],
                       capture_output=True, text=True)
    assert r.returncode == 2 and "no record at" in r.stderr
    r = subprocess.run([str(BIN / "raman-device"), "history", "--db", str(tmp_path / "r.db"), "--since", "yesterday"],
                       capture_output=True, text=True)
    assert r.returncode == 2 and "ISO" not in r.stderr and "expected a date" in r.stderr


def test_export_with_nothing_to_write_says_why(tmp_path):
    axis = Axis(500, 2000, 751)
    out = tmp_path / "x.npz"
    with pytest.raises(ExportError, match="no measurement matches the filters"):
        export([], out, axis, "npz")
    store = RecordStore(tmp_path / "r.db")
    store.add(Record(trigger="button", device={}, error="PortGoneError: cannot open /dev/ttyUSB0"))
    store.add(Record(trigger="button", device={}, shift=np.linspace(400, 2100, 300), intensity=np.ones(300),
                     error="rejected: flat spectrum"))
    store.add(sample(1, "uncertain"))
    store.add(sample(2, "unknown"))
    narrow = sample(3)
    narrow.shift = np.linspace(900, 1000, 300)
    store.add(narrow)
    with pytest.raises(ExportError) as exc:
        export(store.query(), out, axis, "npz")
    assert str(exc.value) == ("none of the 5 matching measurements has a spectrum with a class verdict to export "
                              "(2 failed or refused, 2 uncertain or unknown, 1 not covering the model's axis "
                              "500..2000 cm-1); nothing was written")
    assert not out.exists()
    store.add(sample(4))  # one that can be exported
    assert export(store.query(), out, axis, "npz") == 1


def test_export_command_with_nothing_to_write_fails(tmp_path, shipped_bundle):
    store = RecordStore(tmp_path / "r.db")
    store.add(sample(0, shipped_bundle.class_names[0]))
    out = tmp_path / "e.csv"
    r = subprocess.run([str(BIN / "raman-device"), "export", "--db", str(tmp_path / "r.db"), "--model",
                        str(shipped_bundle.path), "--format", "csv", "--out", str(out), "--label", "nothing-like-it"],
                       capture_output=True, text=True)
    assert r.returncode == 2 and r.stdout == "" and not out.exists()
    assert r.stderr == "error: no measurement matches the filters (--since, --until, --label); nothing was written\n"


@pytest.mark.slow
def test_export_never_replaces_a_file_unasked(tmp_path, shipped_bundle):
    store = RecordStore(tmp_path / "r.db")
    rec = sample(0, shipped_bundle.class_names[0])
    rec.shift = shipped_bundle.axis.values
    rec.intensity = np.cos(rec.shift / 40)
    store.add(rec)
    out = tmp_path / "mine.csv"
    out.write_text("a user's own table\n")
    argv = [str(BIN / "raman-device"), "export", "--db", str(tmp_path / "r.db"), "--model", str(shipped_bundle.path),
            "--format", "csv", "--out", str(out)]
    r = subprocess.run(argv, capture_output=True, text=True)
    assert r.returncode == 2
    assert r.stderr == f"error: {out} already exists; give --force to replace it, or choose another --out\n"
    assert out.read_text() == "a user's own table\n"
    r = subprocess.run([*argv, "--force"], capture_output=True, text=True)
    assert r.returncode == 0 and load_dataset(out).class_names == (shipped_bundle.class_names[0],)
    # npz goes to exactly the path given (NumPy alone would append .npz to a name without it)
    assert export(store.query(), tmp_path / "plain", shipped_bundle.axis, "npz") == 1
    with np.load(tmp_path / "plain", allow_pickle=False) as z:
        assert z["X"].shape == (1, shipped_bundle.axis.points)
    assert not (tmp_path / "plain.npz").exists()


#: A record written by raman-edge's version-1 RecordStore (before the analysis columns): a measurement with a
#: verdict (50 points, 400..2100 cm-1) and a failed one.
SCHEMA_1_RECORD = Path(__file__).parent / "data" / "record-schema-1.db"

IDENTIFIED = {"mode": "identify", "library": "polymers@0123456789ab",
              "hits": [{"name": "PET", "hqi": 93.14}, {"name": "PBT", "hqi": 81.0}], "match": True,
              "no_match_below": 70.0,
              "mixture": {"components": [{"name": "PE", "fraction": 0.62}, {"name": "PP", "fraction": 0.38}],
                          "residual": 0.031, "statistic": 12.5, "threshold": 4.0, "is_mixture": True}}


def version_1_record(path: Path) -> Path:
    """A copy of :data:`SCHEMA_1_RECORD` at ``path``."""
    shutil.copyfile(SCHEMA_1_RECORD, path)
    return path


def columns(path: Path) -> list[str]:
    db = sqlite3.connect(str(path))
    try:
        return [row[1] for row in db.execute("PRAGMA table_info(measurements)")]
    finally:
        db.close()


def schema_version(path: Path) -> str:
    db = sqlite3.connect(str(path))
    try:
        return db.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()[0]
    finally:
        db.close()


def test_analysis_and_evidence_round_trip(tmp_path):
    store = RecordStore(tmp_path / "r.db")
    axis = np.linspace(200.0, 3200.0, 7)
    evidence = {"axis": axis, "sample": np.cos(axis), "hit.0": np.sin(axis), "hit.1": axis / 3200,
                "fit": np.cos(axis) * 0.9, "background": np.full(7, 0.1), "residual": np.cos(axis) * 0.1,
                "component.0": np.cos(axis) * 0.5, "component.1": np.cos(axis) * 0.4}
    rec = sample(0)
    rec.analysis, rec.evidence = IDENTIFIED, evidence
    rid = store.add(rec)
    store.add(sample(1))  # a measurement without them
    store.close()
    store = RecordStore(tmp_path / "r.db")
    got = store.get(rid)
    assert got.analysis == IDENTIFIED  # stored exactly as given
    assert set(got.evidence) == set(evidence)
    for k, a in evidence.items():
        assert got.evidence[k].dtype == np.float64
        np.testing.assert_array_equal(got.evidence[k], a)
    plain = store.get(rid + 1)
    assert plain.analysis is None and plain.evidence is None and store.get(99) is None
    raw = store._db.execute("SELECT evidence FROM measurements WHERE id = ?", (rid,)).fetchone()[0]
    with np.load(io.BytesIO(raw), allow_pickle=False) as z:  # an .npz any NumPy reads
        np.testing.assert_array_equal(z["hit.1"], axis / 3200)


@pytest.mark.parametrize("evidence, named", [({"sample": np.ones(3)}, "needs its axis"),
                                             ({"axis": np.array(5.0)}, "needs its axis"),
                                             ({"axis": np.ones(3), "sample": np.ones(4)}, "sample"),
                                             ({"axis": np.ones(3), "hits": np.ones(3)}, "hits"),
                                             ({"axis": np.ones(3), "fit": np.ones((1, 3))}, "fit")])
def test_malformed_evidence_is_refused_and_nothing_is_written(tmp_path, evidence, named):
    store = RecordStore(tmp_path / "r.db")
    rec = sample(0)
    rec.evidence = evidence
    with pytest.raises(ValueError, match=named):
        store.add(rec)
    assert store.count() == 0
    rec.evidence = {"axis": np.ones(3), "hit.12": np.ones(3), "component.0": np.ones(3)}  # control: well formed
    assert store.add(rec) == 1


def test_a_version_1_record_is_brought_to_version_2(tmp_path):
    path = version_1_record(tmp_path / "old.db")
    assert "analysis" not in columns(path) and schema_version(path) == "1"
    store = RecordStore(path)
    assert schema_version(path) == "2" and columns(path)[-2:] == ["analysis", "evidence"]
    failed, old = store.query()
    assert failed.error == "no spectrometer" and failed.analysis is None and failed.evidence is None
    assert old.verdict == "A" and old.device == {"protocol": "obp", "serial": "S1"} and old.confidence == 0.9
    assert old.probabilities == {"A": 0.9, "B": 0.1} and old.analysis is None and old.evidence is None
    np.testing.assert_array_equal(old.shift, np.linspace(400.0, 2100.0, 50))
    np.testing.assert_array_equal(old.intensity, np.sin(np.linspace(400.0, 2100.0, 50) / 50))
    rec = sample(1)
    rec.analysis = {"mode": "verify", "expected": "PS", "p_value": 0.41, "alpha": 0.05, "result": "PASS"}
    rec.evidence = {"axis": np.arange(4.0), "sample": np.ones(4), "hit.0": np.zeros(4)}
    rid = store.add(rec)
    store.close()
    again = RecordStore(path)  # opening a version-2 record changes nothing
    assert again.get(rid).analysis["result"] == "PASS" and again.count() == 3 and again.integrity_ok()
    np.testing.assert_array_equal(again.get(rid).evidence["hit.0"], np.zeros(4))


def test_a_failed_migration_leaves_the_record_as_it_was(tmp_path):
    path = version_1_record(tmp_path / "odd.db")
    db = sqlite3.connect(str(path))  # a version-1 file with an evidence column already: the second ALTER fails
    db.execute("ALTER TABLE measurements ADD COLUMN evidence BLOB")
    db.commit()
    db.close()
    with pytest.raises(RecordError, match="from schema version 1 to 2: duplicate column name: evidence; "
                                          "the record is unchanged"):
        RecordStore(path)
    assert schema_version(path) == "1" and "analysis" not in columns(path)  # the first ALTER was rolled back
    db = sqlite3.connect(str(path))
    assert db.execute("SELECT verdict FROM measurements ORDER BY id").fetchall() == [("A",), (None,)]
    db.close()


def test_history_shows_a_short_analysis():
    verified = {"mode": "verify", "expected": "PS", "p_value": 0.4123, "alpha": 0.05, "result": "PASS",
                "t2": 3.2, "q": 0.01}
    assert analysis_summary(IDENTIFIED) == "identify: PET (HQI 93.1); mixture PE 0.62 + PP 0.38"
    assert analysis_summary(verified) == "verify PS: PASS p=0.41"
    assert analysis_summary({**verified, "result": "FAIL", "p_value": 0.0012}) == "verify PS: FAIL p=0.0012"
    single = {**IDENTIFIED, "mixture": {**IDENTIFIED["mixture"], "is_mixture": False}, "match": False}
    assert analysis_summary(single) == "identify: no match (best PET, HQI 93.1 below 70)"
    assert analysis_summary({"mode": "classify", "bands": [{"shift": 1001.4, "weight": 1.0},
                                                           {"shift": 1602.0, "weight": 0.5}]}) == \
        "classify: bands 1001, 1602 cm-1"
    assert analysis_summary(None) is None
    rec = sample(0)
    rec.analysis, rec.id = verified, 5
    entry = history_entry(rec)
    assert entry == {"id": 5, "time": "2026-09-21T14:13:20+00:00", "trigger": "button", "verdict": "Oxamyl_present",
                     "confidence": 0.9, "model": "m@abc", "analysis": "verify PS: PASS p=0.41", "error": None}
    json.dumps(entry)  # one JSON line


def test_exports_carry_the_full_analysis(tmp_path):
    store = RecordStore(tmp_path / "r.db")
    single = {**IDENTIFIED, "mixture": {**IDENTIFIED["mixture"], "is_mixture": False}}
    named = {**single, "hits": [{"name": "PE $$ grade 2", "hqi": 90.0}]}  # '$$' starts a JCAMP-DX comment
    for i, analysis in enumerate((single, None, named)):
        rec = sample(i, "A")
        rec.analysis = analysis
        store.add(rec)
    axis = Axis(500, 2000, 751)
    assert export(store.query(newest_first=False), tmp_path / "x.jsonl", axis, "jsonl") == 3
    lines = [json.loads(line) for line in (tmp_path / "x.jsonl").read_text().splitlines()]
    assert [line["analysis"] for line in lines] == [single, None, named]
    assert [line["record_id"] for line in lines] == [1, 2, 3] and lines[0]["label"] == "A"
    assert len(lines[0]["shift"]) == len(lines[0]["intensity"]) == 751
    assert export(store.query(newest_first=False), tmp_path / "x.jdx", axis, "jcamp") == 3
    blocks = read_jcamp((tmp_path / "x.jdx").read_bytes())
    assert [json.loads(b.labels["$RAMANEDGEANALYSIS"]) if "$RAMANEDGEANALYSIS" in b.labels else None
            for b in blocks] == [single, None, named]
    text = (tmp_path / "x.jdx").read_text()
    assert text.count("##$RAMAN EDGE ANALYSIS={") == 2 and "$$" not in text
    assert export(store.query(), tmp_path / "x.csv", axis, "csv") == 3  # the training table is unchanged
    assert load_dataset(tmp_path / "x.csv").class_names == ("A",)


def test_export_leaves_out_what_names_no_one_material(tmp_path):
    verified = {"mode": "verify", "expected": "PS", "p_value": 0.41, "alpha": 0.05, "result": "PASS"}
    no_match = {**IDENTIFIED, "match": False, "mixture": {**IDENTIFIED["mixture"], "is_mixture": False}}
    store, records = RecordStore(tmp_path / "r.db"), []
    for i, (verdict, analysis) in enumerate((("PASS", verified), ("no match", no_match),
                                             ("mixture of PE + PP", IDENTIFIED))):
        rec = sample(i, verdict)
        rec.analysis = analysis
        store.add(rec)
        records.append(rec)
    with pytest.raises(ExportError,
                       match=r"\(3 verifications, suitability tests, no match or mixtures\); nothing was written"):
        export(records, tmp_path / "x.npz", Axis(500, 2000, 751), "npz")
    records[1].analysis = {**no_match, "match": True}  # control: a match that is one material is a label
    records[1].verdict = "PET"
    assert export(records, tmp_path / "x.npz", Axis(500, 2000, 751), "npz") == 1
    assert load_dataset(tmp_path / "x.npz").class_names == ("PET",)
