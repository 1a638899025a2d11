"""The fleet's central database: every device's measurements, each once, and its latest status.

SQLite by default (a file), PostgreSQL when given a ``postgresql://`` URL. SQLite keeps a rollback
journal, not a write-ahead log: a measurement of some 70 kB goes to disk once, where a WAL would write
it twice (into the log, then into the file at each checkpoint), which halves the ingest rate; readers
(the dashboard) and the collector share the file, each waiting for the other's short transactions.
The same SQL serves both; only the placeholders and two column types differ (:data:`DIALECTS`). A
measurement is named by ``(device, store, record_id)`` (docs/fleet.md) and stored once however often it
arrives; ``seq`` numbers the stored measurements in the order they came.

Each measurement is kept as the device sent it (``payload``, the message's bytes: what an audit would
ask for), with the fields that are searched and listed beside it in columns; its spectrum and evidence
are decoded when it is read.
"""
from __future__ import annotations

import base64
import binascii
import json
import sqlite3
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from device.errors import RamanEdgeError
from device.service.record import Record
from device.uplink.messages import MAX_POINTS, PayloadError, read_measurement

SCHEMA_VERSION = 1
#: Measurements per INSERT statement (12 parameters each; both databases take 6,000 in one statement). One
#: statement, not one per row: SQLite releases Python's GIL around each statement, and a collector whose
#: network thread is busy receiving would otherwise wait for the GIL once per row, 20 times slower.
ROWS_PER_STATEMENT = 500


@dataclass(frozen=True)
class Dialect:
    """What differs between the databases: the parameter placeholder and two column types."""

    placeholder: str
    serial: str
    blob: str


DIALECTS = {"sqlite": Dialect("?", "INTEGER PRIMARY KEY AUTOINCREMENT", "BLOB"),
            "postgresql": Dialect("%s", "BIGSERIAL PRIMARY KEY", "BYTEA")}

_SCHEMA = """
CREATE TABLE IF NOT EXISTS fleet_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS devices (
    device TEXT PRIMARY KEY,
    online INTEGER NOT NULL,          -- 1 while its retained status says online, 0 after its last will
    model TEXT,                       -- the model id it reported
    status TEXT NOT NULL,             -- JSON: its latest status payload (docs/fleet.md)
    status_received DOUBLE PRECISION NOT NULL  -- when the collector stored it, s since the epoch
);
CREATE TABLE IF NOT EXISTS measurements (
    seq {serial},
    device TEXT NOT NULL,
    store TEXT NOT NULL,              -- the device's record file
    record_id BIGINT NOT NULL,        -- the measurement's id in it
    time DOUBLE PRECISION NOT NULL,   -- when the device recorded it, s since the epoch (UTC)
    received DOUBLE PRECISION NOT NULL,  -- when the collector committed it
    trigger TEXT NOT NULL,
    verdict TEXT,
    confidence DOUBLE PRECISION,
    error TEXT,
    model TEXT,
    analysis TEXT,                    -- JSON, the keys of device/service/record.py
    payload {blob} NOT NULL,          -- the message as received (docs/fleet.md)
    UNIQUE (device, store, record_id)
);
CREATE INDEX IF NOT EXISTS measurements_time ON measurements (time);
CREATE INDEX IF NOT EXISTS measurements_device ON measurements (device, time);
"""
_SUMMARY = "seq, device, store, record_id, time, received, trigger, verdict, confidence, error, model, analysis"
_NAMES = [n.strip() for n in _SUMMARY.split(",")]


def _summary(row) -> dict:
    """A row whose first columns are :data:`_SUMMARY` -> their dict, ``analysis`` parsed."""
    m = dict(zip(_NAMES, row))
    m["analysis"] = None if m["analysis"] is None else json.loads(m["analysis"])
    return m


class DatabaseError(RamanEdgeError):
    """The fleet database cannot be opened or written; the message says what to check."""


def decode_array(value, name: str) -> np.ndarray:
    """An array of a payload -> the array, (P,), read-only, in its dtype; PayloadError unless base64 of finite values.

    ``value`` has the form :func:`~device.uplink.messages.check_array` passed: ``{"f4": ...}`` or ``{"f8": ...}``.
    """
    ((dtype, text),) = value.items()
    try:
        raw = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise PayloadError(f"{name} is not valid base64") from None
    size = int(dtype[1])
    if len(raw) % size or not 0 < len(raw) // size <= MAX_POINTS:
        raise PayloadError(f"{name} holds {len(raw)} bytes: not 1 to {MAX_POINTS} {dtype} values")
    a = np.frombuffer(raw, dtype="<" + dtype)
    if not np.isfinite(a).all():
        raise PayloadError(f"{name} holds values that are not finite")
    return a


def decode_measurement(payload: bytes, device: str) -> dict:
    """A measurement payload (:func:`~device.uplink.messages.read_measurement`) with its arrays decoded.

    ``spectrum`` becomes ``{"shift", "intensity"}`` of arrays (P,), ``evidence`` a dict of arrays (P,).

    Raises
    ------
    PayloadError
        As :func:`read_measurement`, for an array that is not valid base64 of finite values, or a spectrum
        whose shift and intensity differ in length.
    """
    m = read_measurement(payload, device)
    if m["spectrum"] is not None:
        shift = decode_array(m["spectrum"]["shift"], "spectrum.shift")
        intensity = decode_array(m["spectrum"]["intensity"], "spectrum.intensity")
        if shift.shape != intensity.shape:
            raise PayloadError("spectrum.shift and spectrum.intensity differ in length")
        m["spectrum"] = {"shift": shift, "intensity": intensity}
    if m["evidence"] is not None:
        m["evidence"] = {str(k)[:40]: decode_array(v, f"evidence.{str(k)[:40]}") for k, v in m["evidence"].items()}
    return m


class FleetDatabase:
    """The collector's database.

    Parameters
    ----------
    url : str
        A file path (SQLite; created if missing) or a ``postgresql://user@host:port/db`` URL.

    One connection, for one thread at a time: a collector and a reader in another thread each open their own.

    Raises
    ------
    DatabaseError
        If it cannot be opened or is of a newer schema.
    """

    def __init__(self, url: str):
        self.url = str(url)
        self.kind = "postgresql" if self.url.startswith(("postgresql://", "postgres://")) else "sqlite"
        self.dialect = DIALECTS[self.kind]
        try:
            if self.kind == "postgresql":
                try:
                    import psycopg
                except ImportError:
                    raise DatabaseError("a PostgreSQL database needs psycopg; install the fleet extra: "
                                        "pip install 'raman-edge[fleet]'") from None
                self._errors = (psycopg.Error,)
                self._db = psycopg.connect(self.url)
            else:
                Path(self.url).parent.mkdir(parents=True, exist_ok=True)
                self._errors = (sqlite3.Error,)
                self._db = sqlite3.connect(self.url, check_same_thread=False, timeout=30)
                self._db.execute("PRAGMA journal_mode=TRUNCATE")
                self._db.execute("PRAGMA synchronous=FULL")  # committed = on disk: only then acknowledged
        except DatabaseError:
            raise
        except Exception as exc:  # each driver has its own connection errors
            raise DatabaseError(f"cannot open the fleet database {self.shown_url()}: {exc}; check the path or URL, "
                                "and that the server runs and lets this user in") from None
        self._transaction(self._create)

    def shown_url(self) -> str:
        """The URL without a password."""
        if "@" in self.url and "://" in self.url:
            scheme, rest = self.url.split("://", 1)
            who, where = rest.rsplit("@", 1)
            return f"{scheme}://{who.split(':', 1)[0]}@{where}"
        return self.url

    def _sql(self, statement: str) -> str:
        return statement.replace("?", self.dialect.placeholder)

    def _execute(self, cur, statement: str, args=()):
        cur.execute(self._sql(statement), args)
        return cur

    def _transaction(self, work):
        """Run ``work(cursor)`` in one transaction and commit it; DatabaseError (rolled back) if it fails."""
        cur = self._db.cursor()
        try:
            result = work(cur)
            self._db.commit()
            return result
        except self._errors as exc:
            self._db.rollback()
            raise DatabaseError(f"the fleet database {self.shown_url()} failed: {exc}; check its free space and "
                                "permissions, and that the server is up") from None
        finally:
            cur.close()

    def _create(self, cur) -> None:
        for statement in _SCHEMA.format(serial=self.dialect.serial, blob=self.dialect.blob).split(";"):
            if statement.strip():
                cur.execute(statement)
        self._execute(cur, "SELECT value FROM fleet_meta WHERE key = 'schema_version'")
        row = cur.fetchone()
        if row is None:
            self._execute(cur, "INSERT INTO fleet_meta VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),))
        elif int(row[0]) > SCHEMA_VERSION:
            raise DatabaseError(f"the fleet database {self.shown_url()} has schema version {row[0]}, newer than this "
                                f"raman-edge ({SCHEMA_VERSION}); upgrade raman-edge")

    def close(self) -> None:
        """Close the connection."""
        self._db.close()

    # --- writing ------------------------------------------------------------------------------------
    def store(self, measurements: list[tuple[dict, bytes]], statuses: list[dict], received: float) -> int:
        """Store measurements, each ``(fields, payload)``, and statuses, in one transaction.

        ``fields`` are :func:`~device.uplink.messages.read_measurement`'s,
        ``payload`` the message as received; a status is :func:`~device.uplink.messages.read_status`'s.

        When this returns, all of them are committed. A measurement already stored is
        left as it is; a status replaces the device's previous one, but for an offline one (a last will),
        which keeps what the previous one said besides ``online`` and ``time``.

        Returns
        -------
        int
            How many of ``measurements`` were new.
        """
        rows = [(m["device"], m["store"], m["id"], m["time"], received, m["trigger"], m["verdict"], m["confidence"],
                 m["error"], m["model"], None if m["analysis"] is None else json.dumps(m["analysis"]), payload)
                for m, payload in measurements]

        def work(cur) -> int:
            new = 0
            for i in range(0, len(rows), ROWS_PER_STATEMENT):
                part = rows[i:i + ROWS_PER_STATEMENT]
                self._execute(cur, "INSERT INTO measurements (device, store, record_id, time, received, trigger, "
                                   "verdict, confidence, error, model, analysis, payload) VALUES "
                                   + ", ".join(["(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"] * len(part))
                                   + " ON CONFLICT (device, store, record_id) DO NOTHING",
                              [value for row in part for value in row])
                new += cur.rowcount  # the rows inserted: those already there are not counted
            for s in statuses:
                if not s["online"]:  # a last will says only that: the rest is kept from the status before it
                    previous = self._execute(cur, "SELECT status FROM devices WHERE device = ?",
                                             (s["device"],)).fetchone()
                    s = {**(json.loads(previous[0]) if previous else {}), **s}
                self._execute(cur, "INSERT INTO devices (device, online, model, status, status_received) "
                                   "VALUES (?, ?, ?, ?, ?) ON CONFLICT (device) DO UPDATE SET "
                                   "online = excluded.online, model = COALESCE(excluded.model, devices.model), "
                                   "status = excluded.status, status_received = excluded.status_received",
                              (s["device"], int(s["online"]), s.get("model"), json.dumps(s), received))
            return new
        return self._transaction(work)

    def _count(self, cur) -> int:
        return self._execute(cur, "SELECT COUNT(*) FROM measurements").fetchone()[0]

    # --- reading ------------------------------------------------------------------------------------
    def count(self) -> int:
        """How many measurements are stored."""
        return self._transaction(self._count)

    def devices(self) -> list[dict]:
        """Every device known, by name: its status, how many measurements, and when it was last heard from.

        Each dict: ``device``, ``online`` (bool), ``model``, ``status`` (the payload), ``measurements``,
        ``last_seen`` (s since the epoch: its latest status or measurement, as received), ``last_verdict``.
        """
        def work(cur):
            known = {}
            for device, online, model, status, received in self._execute(
                    cur, "SELECT device, online, model, status, status_received FROM devices"):
                known[device] = {"device": device, "online": bool(online), "model": model, "status": json.loads(status),
                                 "measurements": 0, "last_seen": received, "last_verdict": None}
            for device, n, last in self._execute(
                    cur, "SELECT device, COUNT(*), MAX(received) FROM measurements GROUP BY device"):
                entry = known.setdefault(device, {"device": device, "online": False, "model": None, "status": None,
                                                  "measurements": 0, "last_seen": last, "last_verdict": None})
                entry["measurements"], entry["last_seen"] = n, max(entry["last_seen"], last)
            for device, verdict in self._execute(
                    cur, "SELECT m.device, m.verdict FROM measurements m JOIN (SELECT device, MAX(seq) AS seq FROM "
                         "measurements GROUP BY device) latest ON m.seq = latest.seq"):
                known[device]["last_verdict"] = verdict
            return [known[d] for d in sorted(known)]
        return self._transaction(work)

    def _where(self, device, verdict, since, until) -> tuple[str, list]:
        where, args = [], []
        for clause, value in (("device = ?", device), ("verdict = ?", verdict), ("time >= ?", since),
                              ("time < ?", until)):
            if value is not None:
                where.append(clause)
                args.append(value)
        return (" WHERE " + " AND ".join(where) if where else ""), args

    def measurements(self, device: str | None = None, verdict: str | None = None, since: float | None = None,
                     until: float | None = None, limit: int | None = None, offset: int = 0) -> list[dict]:
        """Stored measurements without their arrays, newest first, filtered by device, verdict and time (s)."""
        where, args = self._where(device, verdict, since, until)
        sql = f"SELECT {_SUMMARY} FROM measurements{where} ORDER BY time DESC, seq DESC"
        if limit is not None:
            sql += " LIMIT ? OFFSET ?"
            args += [int(limit), int(offset)]

        def work(cur):
            return [_summary(row) for row in self._execute(cur, sql, args).fetchall()]
        return self._transaction(work)

    def measurement(self, seq: int) -> dict | None:
        """One stored measurement with everything, or None when there is none.

        Besides the summary's fields: ``probabilities``, ``instrument``, ``shift`` and ``intensity`` (arrays
        (P,), or None) and ``evidence`` (dict of arrays (P,), or None), decoded from the payload; and
        ``problem``: None, or why the payload's arrays could not be decoded (they are then None).
        """
        def work(cur):
            row = self._execute(cur, f"SELECT {_SUMMARY}, payload FROM measurements WHERE seq = ?",
                                (int(seq),)).fetchone()
            if row is None:
                return None
            m = _summary(row)
            return {**m, **_decoded(bytes(row[-1]), m["device"])}
        return self._transaction(work)

    def records(self, device: str | None = None, verdict: str | None = None, since: float | None = None,
                until: float | None = None) -> list[Record]:
        """Stored measurements as records (oldest first), for :func:`device.service.record.export`.

        Each record's ``id`` is its ``seq`` here (unique across the fleet); its ``device`` entry is the
        instrument entry with ``fleet_device``, ``store`` and ``record_id`` added. A measurement whose
        arrays cannot be decoded comes without a spectrum (the export leaves it out).
        """
        where, args = self._where(device, verdict, since, until)

        def work(cur):
            out = []
            for row in self._execute(cur, f"SELECT {_SUMMARY}, payload FROM measurements{where} ORDER BY time, seq",
                                     args):
                m = _summary(row)
                d = _decoded(bytes(row[-1]), m["device"])
                entry = {**d["instrument"], "fleet_device": m["device"], "store": m["store"],
                         "record_id": m["record_id"]}
                out.append(Record(m["trigger"], entry, None, d["shift"], d["intensity"], m["model"], {},
                                  d["probabilities"], m["verdict"], m["confidence"], m["error"], m["analysis"], None,
                                  m["time"], m["seq"]))
            return out
        return self._transaction(work)


def _decoded(payload: bytes, device: str) -> dict:
    """The parts of a stored payload its columns do not hold, arrays decoded (``problem`` says if they cannot be)."""
    try:
        m = decode_measurement(payload, device)
    except PayloadError as exc:
        return {"probabilities": {}, "instrument": {}, "shift": None, "intensity": None, "evidence": None,
                "problem": str(exc)}
    spectrum = m["spectrum"] or {}
    return {"probabilities": m["probabilities"] or {}, "instrument": m["instrument"] or {},
            "shift": spectrum.get("shift"), "intensity": spectrum.get("intensity"), "evidence": m["evidence"],
            "problem": None}
