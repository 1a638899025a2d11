"""The fleet's topics and payloads (docs/fleet.md): built on the device, read by the collector.

This module needs no NumPy (the uplink runs without it); the collector's side decodes the arrays
(:mod:`fleet.database`). Every payload is one JSON object in UTF-8 with ``"schema": SCHEMA``; arrays
travel as little-endian float32 in base64, ``{"f4": "..."}``, but for a spectrum's Raman shift axis,
float64 (``{"f8": "..."}``): a float32 axis would move the bands by up to 1e-4 cm-1, and the export
resamples on it. The builders take what the record holds; the readers check what arrives from the
network and raise :class:`PayloadError` for anything malformed, since a payload comes from a device the
receiver does not control.
"""
from __future__ import annotations

import array
import ast
import base64
import binascii
import io
import json
import math
import re
import sys
import zipfile

from device.errors import RamanEdgeError
from device.service.config import DEVICE_ID

SCHEMA = 1
ROOT = "raman-edge/v1"
#: A rollout's name (a topic level too).
ROLLOUT_ID = DEVICE_ID
#: Most array elements a payload may carry per array (a detector has a few thousand pixels).
MAX_POINTS = 65536
#: Everything a collector subscribes to: every device's measurements and status.
DEVICES_FILTER = f"{ROOT}/devices/+/+"


class PayloadError(RamanEdgeError):
    """A message that is not a payload of this schema; the message says what is wrong."""


def measurements_topic(device: str) -> str:
    """Where ``device`` publishes its measurements."""
    return f"{ROOT}/devices/{device}/measurements"


def status_topic(device: str) -> str:
    """Where ``device``'s retained status (and its last will) is."""
    return f"{ROOT}/devices/{device}/status"


def rollout_topic(target: str, rollout: str) -> str:
    """Where the chunks of ``rollout`` for ``target`` (a device id, or ``all``) are published."""
    return f"{ROOT}/rollout/{target}/{rollout}"


def rollout_filters(device: str) -> list[str]:
    """The rollout topics ``device`` subscribes to: its own and every device's."""
    return [f"{ROOT}/rollout/{device}/+", f"{ROOT}/rollout/all/+"]


def parse_device_topic(topic: str) -> tuple[str, str]:
    """``raman-edge/v1/devices/DEVICE/KIND`` -> ``(DEVICE, KIND)``, KIND ``measurements`` or ``status``."""
    parts = topic.split("/")
    if (len(parts) != 5 or "/".join(parts[:3]) != f"{ROOT}/devices" or not DEVICE_ID.fullmatch(parts[3])
            or parts[4] not in ("measurements", "status")):
        raise PayloadError(f"topic {topic[:120]!r} is not a device's measurements or status topic")
    return parts[3], parts[4]


def _base64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def float32_bytes(float64: bytes) -> bytes:
    """Little-endian float64 values -> the same values as little-endian float32 (nearest), without NumPy."""
    values = array.array("d")
    values.frombytes(float64)
    if sys.byteorder == "big":
        values.byteswap()
    out = array.array("f", values)
    if sys.byteorder == "big":
        out.byteswap()
    return out.tobytes()


def npz_float64(blob: bytes) -> dict[str, bytes]:
    """The arrays of an ``.npz`` of 1-D little-endian float64 arrays (the record's evidence), as their bytes.

    Raises
    ------
    ValueError
        When it holds anything else (another dtype, more dimensions, Fortran order, a damaged archive).
    """
    out = {}
    try:
        with zipfile.ZipFile(io.BytesIO(blob)) as z:
            for member in z.namelist():
                data = z.read(member)
                if not (member.endswith(".npy") and data[:6] == b"\x93NUMPY" and data[6] in (1, 2, 3)):
                    raise ValueError(f"{member} is not a .npy array")
                size = 2 if data[6] == 1 else 4
                length = int.from_bytes(data[8:8 + size], "little")
                header = ast.literal_eval(data[8 + size:8 + size + length].decode("latin-1"))
                if header.get("descr") != "<f8" or header.get("fortran_order") or len(header.get("shape", ())) != 1:
                    raise ValueError(f"{member} is not a 1-D little-endian float64 array")
                values = data[8 + size + length:]
                if len(values) != 8 * header["shape"][0]:
                    raise ValueError(f"{member} holds {len(values)} bytes, not {header['shape'][0]} values")
                out[member[:-4]] = values
    except (zipfile.BadZipFile, SyntaxError, UnicodeDecodeError, AttributeError, TypeError) as exc:
        raise ValueError(f"the evidence is not an .npz of arrays ({exc})") from None
    return out


def check_array(value, name: str) -> None:
    """PayloadError unless ``value`` has the form of an array (``{"f4": str}``, ``{"f8": str}``) of a size allowed.

    The values themselves are checked by :func:`fleet.database.decode_array`.
    """
    dtype = next((k for k in ("f4", "f8") if isinstance(value, dict) and isinstance(value.get(k), str)), None)
    if dtype is None or len(value) != 1:
        raise PayloadError(f"{name} is not an array ({{\"f4\": base64}} or {{\"f8\": base64}})")
    if len(value[dtype]) % 4 or not 0 < len(value[dtype]) // 4 * 3 <= MAX_POINTS * int(dtype[1]) + 2:
        raise PayloadError(f"{name} is not base64 of 1 to {MAX_POINTS} {dtype} values")


def measurement_payload(device: str, store: str, stored: dict) -> bytes:
    """The payload of one recorded measurement, as :meth:`~device.service.record.RecordStore.stored_after` gives it."""
    spectrum = None if stored["shift"] is None or stored["intensity"] is None else {
        "shift": {"f8": _base64(stored["shift"])}, "intensity": {"f4": _base64(float32_bytes(stored["intensity"]))}}
    evidence = None if stored["evidence"] is None else {
        name: {"f4": _base64(float32_bytes(values))} for name, values in npz_float64(stored["evidence"]).items()}
    return json.dumps({
        "schema": SCHEMA, "device": device, "store": store, "id": stored["id"], "time": stored["time"],
        "trigger": stored["trigger"], "verdict": stored["verdict"], "confidence": stored["confidence"],
        "error": stored["error"], "model": stored["model"], "probabilities": stored["probabilities"],
        "analysis": stored["analysis"], "instrument": stored["device"], "spectrum": spectrum, "evidence": evidence},
        separators=(",", ":"), default=str).encode()


def _object(payload: bytes, what: str) -> dict:
    try:
        message = json.loads(payload)
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise PayloadError(f"the {what} is not JSON") from None
    if not isinstance(message, dict):
        raise PayloadError(f"the {what} is not a JSON object")
    if message.get("schema") != SCHEMA:
        raise PayloadError(f"the {what} has schema {str(message.get('schema'))[:20]}; this raman-edge reads "
                           f"schema {SCHEMA}: upgrade the receiver")
    return message


def _check(message: dict, what: str, fields: dict) -> None:
    """Each ``field: (types, required)`` present with a value of its types (or None, unless required)."""
    for name, (types, required) in fields.items():
        value = message.get(name)
        if value is None:
            if required:
                raise PayloadError(f"the {what} lacks {name}")
        elif not isinstance(value, types) or isinstance(value, bool) and bool not in types:
            raise PayloadError(f"the {what}'s {name} is of the wrong type ({type(value).__name__})")
        elif isinstance(value, float) and not math.isfinite(value):
            raise PayloadError(f"the {what}'s {name} is not finite")


_TEXT = (str,)
_NUMBER = (int, float)
_MEASUREMENT = {"device": (_TEXT, True), "store": (_TEXT, True), "id": ((int,), True), "time": (_NUMBER, True),
                "trigger": (_TEXT, True), "verdict": (_TEXT, False), "confidence": (_NUMBER, False),
                "error": (_TEXT, False), "model": (_TEXT, False), "probabilities": ((dict,), False),
                "analysis": ((dict,), False), "instrument": ((dict,), False), "spectrum": ((dict,), False),
                "evidence": ((dict,), False)}


def read_measurement(payload: bytes, device: str) -> dict:
    """A measurement payload from ``device``'s topic, checked; its arrays keep their encoded form.

    The ``device`` named in the payload must be the topic's: the broker's access list lets a device
    publish under its own topic only, so the topic is what vouches for the sender. The arrays are
    checked in form only (:func:`check_array`): the collector stores the payload as received, and its
    values are decoded and checked when it is read (:func:`fleet.database.decode_measurement`).

    Returns
    -------
    dict
        The payload's fields; ``spectrum`` ``{"shift", "intensity"}`` or None, ``evidence`` a dict or None.
    """
    m = _object(payload, "measurement")
    _check(m, "measurement", _MEASUREMENT)
    if m["device"] != device:
        raise PayloadError(f"a measurement of device {m['device'][:64]!r} arrived on {device!r}'s topic")
    if not re.fullmatch(r"[0-9a-f]{32}", m["store"]) or m["id"] < 1:
        raise PayloadError("the measurement's store or id is malformed")
    if m["spectrum"] is not None:
        check_array(m["spectrum"].get("shift"), "spectrum.shift")
        check_array(m["spectrum"].get("intensity"), "spectrum.intensity")
    for k, v in (m["evidence"] or {}).items():
        check_array(v, f"evidence.{str(k)[:40]}")
    return m


def status_payload(device: str, now: float, **fields) -> bytes:
    """The retained status of an online device: ``fields`` are those of docs/fleet.md (model, free_mb, ...)."""
    return json.dumps({"schema": SCHEMA, "device": device, "online": True, "time": now, **fields},
                      separators=(",", ":")).encode()


def offline_payload(device: str, now: float) -> bytes:
    """The status of a device gone offline (its last will, and its last word on a clean stop)."""
    return json.dumps({"schema": SCHEMA, "device": device, "online": False, "time": now},
                      separators=(",", ":")).encode()


_STATUS = {"device": (_TEXT, True), "online": ((bool,), True), "time": (_NUMBER, True), "software": (_TEXT, False),
           "model": (_TEXT, False), "libraries": ((list,), False), "free_mb": (_NUMBER, False),
           "records": ((int,), False), "sent": ((int,), False), "last": ((dict,), False),
           "rollout": ((dict,), False)}


def read_status(payload: bytes, device: str) -> dict:
    """A status payload from ``device``'s topic, checked (as :func:`read_measurement`)."""
    m = _object(payload, "status")
    _check(m, "status", _STATUS)
    if m["device"] != device:
        raise PayloadError(f"a status of device {m['device'][:64]!r} arrived on {device!r}'s topic")
    return m


def chunk_payload(rollout: str, kind: str, name: str, index: int, count: int, archive_sha256: str,
                  data: bytes) -> bytes:
    """One chunk of a rollout's archive."""
    return json.dumps({"schema": SCHEMA, "rollout": rollout, "kind": kind, "name": name, "index": index,
                       "count": count, "archive_sha256": archive_sha256,
                       "data": _base64(data)}, separators=(",", ":")).encode()


_CHUNK = {"rollout": (_TEXT, True), "kind": (_TEXT, True), "name": (_TEXT, True), "index": ((int,), True),
          "count": ((int,), True), "archive_sha256": (_TEXT, True), "data": (_TEXT, True)}
#: Most chunks a rollout may have (a bundle of a few MB is a few dozen).
MAX_CHUNKS = 4096


def read_chunk(payload: bytes) -> dict:
    """A rollout chunk, checked; ``data`` decoded to bytes."""
    m = _object(payload, "rollout chunk")
    _check(m, "rollout chunk", _CHUNK)
    if not ROLLOUT_ID.fullmatch(m["rollout"]) or m["kind"] not in ("model", "library"):
        raise PayloadError("the rollout chunk's rollout id or kind is malformed")
    if not DEVICE_ID.fullmatch(m["name"]) or not re.fullmatch(r"[0-9a-f]{64}", m["archive_sha256"]):
        raise PayloadError("the rollout chunk's bundle name or archive hash is malformed")
    if not 0 <= m["index"] < m["count"] <= MAX_CHUNKS:
        raise PayloadError(f"the rollout chunk's index {m['index']} of {m['count']} is out of range")
    try:
        m["data"] = base64.b64decode(m["data"], validate=True)
    except (binascii.Error, ValueError):
        raise PayloadError("the rollout chunk's data is not valid base64") from None
    return m
