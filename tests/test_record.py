"""The measurement record: durable, queryable, exportable as training data."""
import json
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from helpers import OutputLines

from device.inference.spectrum import Axis
from device.service.record import ExportError, Record, RecordError, RecordStore, export
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
        "    rid = s.add(Record('button', {}, shift=np.arange(10.0), intensity=np.ones(10), verdict='x'))\n"
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
