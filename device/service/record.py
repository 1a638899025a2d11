"""The measurement record: every measurement, durable before it is reported (SQLite, WAL, full sync).

One row per measurement: when, what triggered it, the device and its settings, the raw counts and the
calibrated spectrum, the model and its file hashes, the probabilities, the verdict, or the error that
stopped it, and (schema version 2) the analysis and its evidence. :meth:`RecordStore.add` returns only
after the row is on disk, so a verdict shown to the operator survives a power cut. A record of an older
schema is brought up to date when opened, in one transaction (all of it or nothing).

The ``analysis`` column is JSON, NULL for rows written before version 2; a key is absent when it does not
apply, and the dict is stored exactly as given::

    {"mode": "classify" | "identify" | "verify",
     "library": "NAME@hash12",                              # when a reference library was used
     "hits": [{"name": str, "hqi": float}, ...],            # identify: best first, HQI = 100 x correlation
     "match": bool, "no_match_below": float,                # identify: the best HQI reached the threshold?
     "expected": str, "p_value": float, "alpha": float,     # verify: the material expected, the test ...
     "result": "PASS" | "FAIL", "t2": float, "q": float,    # ... its outcome and statistics
     "mixture": {"components": [{"name": str, "fraction": float}, ...], "residual": float,
                 "statistic": float, "threshold": float, "is_mixture": bool},  # any mode, with a library
     "bands": [{"shift": float, "weight": float}, ...]}     # classify: the top bands of relevance, cm-1

The ``evidence`` column holds the arrays that draw it (``raman-train report``), an ``.npz`` of float64
arrays all of shape (P,) on one axis (:data:`EVIDENCE_ARRAYS`): ``axis`` (cm-1, always), ``sample`` (the
sample as matched: preprocessed, on the library's or the model's axis), ``hit.0`` .. ``hit.N`` (the
references of ``hits`` in their order, same space; in verify ``hit.0`` is the expected material's),
``fit``, ``background``, ``residual`` (the unmixing), ``component.0`` .. (each component's contribution,
in the order of ``mixture.components``), ``relevance`` (the model's relevance map; resampled onto ``axis``
when a library's arrays set it). The names of hits and components are those of ``analysis``.
"""
from __future__ import annotations

import io
import json
import os
import re
import sqlite3
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING

from device.errors import RamanEdgeError

if TYPE_CHECKING:  # NumPy is imported where arrays are: the uplink reads the record without it
    import numpy as np

#: The record's file in the data directory.
RECORD_FILE = "record.db"

SCHEMA_VERSION = 2
_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS measurements (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    time REAL NOT NULL,               -- seconds since the epoch (UTC)
    trigger TEXT NOT NULL,            -- button, control-port, socket, ...
    device TEXT NOT NULL,             -- JSON: identity and settings
    raw BLOB,                         -- float64 counts as the device sent them
    shift BLOB,                       -- float64 Raman shift of the calibrated spectrum, cm-1
    intensity BLOB,                   -- float64 calibrated intensities
    model TEXT,                       -- model id
    model_files TEXT,                 -- JSON: file -> SHA-256
    probabilities TEXT,               -- JSON: class -> probability
    verdict TEXT,                     -- a class, 'uncertain', 'unknown', or NULL when the measurement failed
    confidence REAL,                  -- the most probable class's probability; NULL for 'unknown'
    error TEXT,                       -- what went wrong, or NULL
    analysis TEXT,                    -- JSON: identification, verification, mixture, bands (module docstring)
    evidence BLOB                     -- .npz of the arrays that draw the analysis
);
CREATE INDEX IF NOT EXISTS measurements_time ON measurements (time);
CREATE INDEX IF NOT EXISTS measurements_verdict ON measurements (verdict);
"""
#: The statements that bring a record of schema version v (the key) to v + 1.
_MIGRATIONS = {1: ("ALTER TABLE measurements ADD COLUMN analysis TEXT",
                   "ALTER TABLE measurements ADD COLUMN evidence BLOB")}
_COLUMNS = ("id, time, trigger, device, raw, shift, intensity, model, model_files, probabilities, verdict, confidence, "
            "error, analysis, evidence")
#: The names an evidence array may have.
EVIDENCE_ARRAYS = re.compile(r"axis|sample|fit|background|residual|relevance|(hit|component)\.\d+")


class RecordError(RamanEdgeError):
    """The record cannot be opened or written."""


def iso_time(t: float) -> str:
    """Seconds since the epoch -> ISO 8601 in UTC to the second (``2026-11-22T14:30:05+00:00``), as shown."""
    return datetime.fromtimestamp(t, timezone.utc).isoformat(timespec="seconds")


@dataclass
class Record:
    """One measurement as stored (arrays float64; ``id`` and ``time`` set when stored).

    ``analysis`` and ``evidence`` are described in the module docstring; None for a measurement recorded
    without them (and for every row written before schema version 2).
    """

    trigger: str
    device: dict
    raw: np.ndarray | None = None
    shift: np.ndarray | None = None
    intensity: np.ndarray | None = None
    model: str | None = None
    model_files: dict = field(default_factory=dict)
    probabilities: dict = field(default_factory=dict)
    verdict: str | None = None
    confidence: float | None = None
    error: str | None = None
    analysis: dict | None = None
    evidence: dict[str, np.ndarray] | None = None
    time: float | None = None
    id: int | None = None


def _blob(a):
    import numpy as np

    return None if a is None else np.ascontiguousarray(a, dtype="<f8").tobytes()


def _array(b):
    import numpy as np

    return None if b is None else np.frombuffer(b, dtype="<f8").copy()


def _evidence_blob(evidence: dict | None) -> bytes | None:
    """Evidence arrays -> ``.npz`` bytes, checked against the module docstring's names and shapes."""
    if evidence is None:
        return None
    import numpy as np

    arrays = {k: np.asarray(v, dtype="<f8") for k, v in evidence.items()}
    axis = arrays.get("axis")
    if axis is None or axis.ndim != 1 or not axis.size:
        raise ValueError(f"evidence needs its axis, of shape (P,); got {', '.join(sorted(arrays)) or 'nothing'}")
    bad = [k for k, a in arrays.items() if not EVIDENCE_ARRAYS.fullmatch(k) or a.shape != axis.shape]
    if bad:
        raise ValueError(f"evidence arrays must be named as in device/service/record.py and of the axis's shape "
                         f"{axis.shape}; not so: {', '.join(bad)}")
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return buffer.getvalue()


def _evidence(blob: bytes | None) -> dict[str, np.ndarray] | None:
    if blob is None:
        return None
    import numpy as np

    with np.load(io.BytesIO(blob), allow_pickle=False) as z:
        return {k: z[k] for k in z.files}


def analysis_summary(analysis: dict | None) -> str | None:
    """A short line for ``analysis`` (``identify: PET (HQI 93.1)``, ``verify PS: PASS p=0.41``), or None."""
    if not analysis:
        return None
    mode, parts = analysis.get("mode"), []
    if mode == "identify":
        hits = analysis.get("hits") or []
        if not hits:
            parts.append("identify: no reference")
        elif analysis.get("match", True):
            parts.append(f"identify: {hits[0]['name']} (HQI {hits[0]['hqi']:.1f})")
        else:
            parts.append(f"identify: no match (best {hits[0]['name']}, HQI {hits[0]['hqi']:.1f} below "
                         f"{analysis['no_match_below']:g})")
    elif mode == "verify":
        parts.append(f"verify {analysis['expected']}: {analysis['result']} p={analysis['p_value']:.2g}")
    elif mode == "sst":
        located = [b for b in analysis.get("bands", []) if b.get("found") is not None]
        worst = max((abs(b["error"]) for b in located), default=None)
        parts.append(f"sst {analysis.get('standard')}: {analysis.get('result')}"
                     + (f", worst band {worst:.1f} cm-1 off" if worst is not None else ""))
    elif analysis.get("bands"):
        parts.append(f"{mode}: bands " + ", ".join(f"{b['shift']:.0f}" for b in analysis["bands"][:3]) + " cm-1")
    mixture = analysis.get("mixture")
    if mixture and mixture.get("is_mixture"):
        parts.append("mixture " + " + ".join(f"{c['name']} {c['fraction']:.2f}" for c in mixture["components"]))
    return "; ".join(parts) or mode


def history_entry(rec: Record) -> dict:
    """What ``raman-device history`` shows of a measurement: one JSON object, without spectra and evidence."""
    return {"id": rec.id, "time": iso_time(rec.time), "trigger": rec.trigger, "verdict": rec.verdict,
            "confidence": rec.confidence, "model": rec.model, "analysis": analysis_summary(rec.analysis),
            "error": rec.error}


def storage_problem(directory: Path, reserve_bytes: float) -> str | None:
    """Why records cannot be written safely in ``directory`` now, or None.

    A read-only file system (an SD card the kernel remounted read-only after errors), a directory this
    user may not write, or less than ``reserve_bytes`` free for this user.
    """
    try:
        st = os.statvfs(directory)
    except OSError as exc:
        return f"the data directory {directory} cannot be examined ({exc.strerror}); check that it exists"
    if st.f_flag & os.ST_RDONLY:
        return (f"the data directory {directory} is on a read-only file system (often a storage card the "
                "kernel remounted read-only after errors); check or replace the card, then restart the service")
    if not os.access(directory, os.W_OK):
        return f"the data directory {directory} is not writable by this user; fix its owner or permissions"
    free = st.f_bavail * st.f_frsize
    if free < reserve_bytes:
        return (f"disk full: {free / 1e6:.1f} MB free in {directory}, below the reserve of "
                f"{reserve_bytes / 1e6:.0f} MB (data.reserve_mb); export and remove old records or free space")
    return None


class RecordStore:
    """The SQLite record of a device.

    Parameters
    ----------
    path : path-like
        Database file; created with its directory if missing.

    Attributes
    ----------
    store_id : str or None
        The record file's random identifier (32 hex digits), made when the file is first opened: with a
        measurement's id it names the measurement across a fleet (None: see :meth:`_store_id`).

    Raises
    ------
    RecordError
        If the file cannot be opened or created, is not a raman-edge record, or is of a newer schema.
    """

    def __init__(self, path):
        self.path = Path(path)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(str(self.path), isolation_level=None, check_same_thread=False)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.executescript(_SCHEMA)
            version = self._db.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()
            if version is None:
                self._db.execute("INSERT INTO meta VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),))
            elif int(version[0]) > SCHEMA_VERSION:
                raise RecordError(f"record {self.path} has schema version {version[0]}, newer than this raman-edge "
                                  f"({SCHEMA_VERSION}); upgrade raman-edge")
            elif int(version[0]) < SCHEMA_VERSION:
                self._migrate(int(version[0]))
            self.store_id = self._store_id()
        except (sqlite3.Error, OSError) as exc:
            raise RecordError(f"cannot open the record {self.path}: {exc}; check the data directory's "
                              "permissions and free space") from None

    def _store_id(self) -> str | None:
        """The record file's own name, made once (its measurements' ids are unique only within it: docs/fleet.md).

        None for a record of an older release on a file system that cannot be written.
        """
        row = self._db.execute("SELECT value FROM meta WHERE key='store'").fetchone()
        if row is not None:
            return row[0]
        try:
            self._db.execute("INSERT OR IGNORE INTO meta VALUES ('store', ?)", (uuid.uuid4().hex,))
        except sqlite3.OperationalError:  # read-only: the service says so when it is asked to measure
            return None
        return self._db.execute("SELECT value FROM meta WHERE key='store'").fetchone()[0]

    def _migrate(self, found: int) -> None:
        """Bring the record up to :data:`SCHEMA_VERSION` in one transaction: all of it, or nothing changed.

        Raises
        ------
        RecordError
            If a statement fails (the record is then as it was).
        """
        self._db.execute("BEGIN IMMEDIATE")  # another process may be migrating: wait for it, then look again
        try:
            version = int(self._db.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()[0])
            for v in range(version, SCHEMA_VERSION):
                for statement in _MIGRATIONS[v]:
                    self._db.execute(statement)
            self._db.execute("UPDATE meta SET value = ? WHERE key = 'schema_version'", (str(SCHEMA_VERSION),))
            self._db.execute("COMMIT")
        except sqlite3.Error as exc:
            self._db.execute("ROLLBACK")
            raise RecordError(f"cannot bring the record {self.path} from schema version {found} to "
                              f"{SCHEMA_VERSION}: {exc}; the record is unchanged (check free space and permissions, "
                              "or keep using the raman-edge that wrote it)") from None

    def close(self) -> None:
        """Close the database."""
        self._db.close()

    def storage_problem(self, reserve_bytes: float) -> str | None:
        """Why a new record could not be written safely now (read-only or full file system), or None."""
        return storage_problem(self.path.parent, reserve_bytes)

    def add(self, rec: Record) -> int:
        """Store a measurement durably and return its id (the row is on disk when this returns).

        Raises
        ------
        RecordError
            If the row cannot be written.
        ValueError
            If ``rec.evidence`` has no ``axis``, or an array of another name or shape than the module says.
        """
        rec.time = time.time() if rec.time is None else rec.time
        evidence = _evidence_blob(rec.evidence)
        try:
            cur = self._db.execute(
                "INSERT INTO measurements (time, trigger, device, raw, shift, intensity, model, model_files, "
                "probabilities, verdict, confidence, error, analysis, evidence) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (rec.time, rec.trigger, json.dumps(rec.device, default=str), _blob(rec.raw), _blob(rec.shift),
                 _blob(rec.intensity), rec.model, json.dumps(rec.model_files), json.dumps(rec.probabilities),
                 rec.verdict, rec.confidence, rec.error,
                 None if rec.analysis is None else json.dumps(rec.analysis), evidence))
        except sqlite3.Error as exc:
            raise RecordError(f"cannot write to the record {self.path}: {exc}; the measurement is not recorded, "
                              "so no verdict is reported") from None
        rec.id = cur.lastrowid
        return rec.id

    def _row(self, row) -> Record:
        (id_, t, trigger, device, raw, shift, intensity, model, files, probs, verdict, conf, error, analysis,
         evidence) = row
        return Record(trigger, json.loads(device), _array(raw), _array(shift), _array(intensity), model,
                      json.loads(files or "{}"), json.loads(probs or "{}"), verdict, conf, error,
                      None if analysis is None else json.loads(analysis), _evidence(evidence), t, id_)

    def get(self, id_: int) -> Record | None:
        """The measurement with id ``id_``, or None when there is none."""
        row = self._db.execute(f"SELECT {_COLUMNS} FROM measurements WHERE id = ?", (int(id_),)).fetchone()
        return None if row is None else self._row(row)

    def query(self, since: float | None = None, until: float | None = None, verdict: str | None = None,
              limit: int | None = None, newest_first: bool = True, mode: str | None = None) -> list[Record]:
        """Measurements in a time window (seconds since the epoch) and/or with a verdict, or an analysis ``mode``."""
        where, args = [], []
        if mode is not None:
            where.append("json_extract(analysis, '$.mode') = ?")
            args.append(mode)
        if since is not None:
            where.append("time >= ?")
            args.append(since)
        if until is not None:
            where.append("time < ?")
            args.append(until)
        if verdict is not None:
            where.append("verdict = ?")
            args.append(verdict)
        sql = (f"SELECT {_COLUMNS} FROM measurements" + (" WHERE " + " AND ".join(where) if where else "")
               + f" ORDER BY id {'DESC' if newest_first else 'ASC'}" + (" LIMIT ?" if limit else ""))
        if limit:
            args.append(int(limit))
        return [self._row(r) for r in self._db.execute(sql, args)]

    def stored_after(self, id_: int, limit: int) -> list[dict]:
        """Up to ``limit`` measurements with an id above ``id_``, oldest first, as stored (what the uplink sends).

        Each is a dict of the columns without ``raw`` and ``model_files``: JSON parsed, arrays as their
        bytes (``shift``, ``intensity``: float64 little-endian; ``evidence``: the ``.npz``). No NumPy.
        """
        names = ("id", "time", "trigger", "device", "shift", "intensity", "model", "probabilities", "verdict",
                 "confidence", "error", "analysis", "evidence")
        rows = self._db.execute(f"SELECT {', '.join(names)} FROM measurements WHERE id > ? ORDER BY id LIMIT ?",
                                (int(id_), int(limit)))
        out = []
        for row in rows:
            m = dict(zip(names, row))
            m.update(device=json.loads(m["device"]), probabilities=json.loads(m["probabilities"] or "{}"),
                     analysis=None if m["analysis"] is None else json.loads(m["analysis"]))
            out.append(m)
        return out

    def last_summary(self) -> dict | None:
        """``id``, ``time`` and ``verdict`` of the latest measurement (None when there is none), arrays unread."""
        row = self._db.execute("SELECT id, time, verdict FROM measurements ORDER BY id DESC LIMIT 1").fetchone()
        return None if row is None else dict(zip(("id", "time", "verdict"), row))

    def last(self) -> Record | None:
        """The latest measurement, or None when there is none."""
        rows = self.query(limit=1)
        return rows[0] if rows else None

    def count(self) -> int:
        """How many measurements the record holds."""
        return self._db.execute("SELECT COUNT(*) FROM measurements").fetchone()[0]

    def integrity_ok(self) -> bool:
        """True if SQLite's integrity check passes."""
        return self._db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
