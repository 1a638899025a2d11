"""The fleet's topics and payloads (docs/fleet.md): built on the device, read by the collector.

Every payload is one JSON object in UTF-8 with ``"schema": SCHEMA``; arrays travel as little-endian
float32 in base64, ``{"f4": "..."}``, but for a spectrum's Raman shift axis, float64 (``{"f8": "..."}``):
a float32 axis would move the bands by up to 1e-4 cm-1, and the export resamples on it. The builders
take what the record holds; the readers check what arrives from the network and raise
:class:`PayloadError` for anything malformed, since a payload comes from a device the receiver does not
control.
"""
from __future__ import annotations

import base64
import binascii
import json
import math
import re

import numpy as np

from device.errors import RamanEdgeError
from device.service.config import DEVICE_ID

SCHEMA = 1
ROOT = "raman-edge/v1"
#: A rollout's name (a topic level too).
ROLLOUT_ID = re.compile(r"[A-Za-z0-9._-]{1,64}")
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


def encode_array(a, dtype: str = "f4") -> dict:
    """An array -> ``{dtype: base64 of its little-endian values}``, ``dtype`` ``f4`` (float32) or ``f8`` (float64)."""
    return {dtype: base64.b64encode(np.ascontiguousarray(a, dtype="<" + dtype).tobytes()).decode("ascii")}


def check_array(value, name: str) -> None:
    """PayloadError unless ``value`` has the form of an array (``{"f4": str}``, ``{"f8": str}``) of a size allowed.

    The values themselves are checked by :func:`decode_array`.
    """
    dtype = next((k for k in ("f4", "f8") if isinstance(value, dict) and isinstance(value.get(k), str)), None)
    if dtype is None or len(value) != 1:
        raise PayloadError(f"{name} is not an array ({{\"f4\": base64}} or {{\"f8\": base64}})")
    if len(value[dtype]) % 4 or not 0 < len(value[dtype]) // 4 * 3 <= MAX_POINTS * int(dtype[1]) + 2:
        raise PayloadError(f"{name} is not base64 of 1 to {MAX_POINTS} {dtype} values")


def decode_array(value, name: str) -> np.ndarray:
    """``{"f4": ...}`` or ``{"f8": ...}`` -> the array, (P,), read-only, in that dtype; PayloadError unless finite."""
    dtype = next((k for k in ("f4", "f8") if isinstance(value, dict) and isinstance(value.get(k), str)), None)
    if dtype is None or len(value) != 1:
        raise PayloadError(f"{name} is not an array ({{\"f4\": base64}} or {{\"f8\": base64}})")
    try:
        raw = base64.b64decode(value[dtype], validate=True)
    except (binascii.Error, ValueError):
        raise PayloadError(f"{name} is not valid base64") from None
    size = int(dtype[1])
    if len(raw) % size or not 0 < len(raw) // size <= MAX_POINTS:
        raise PayloadError(f"{name} holds {len(raw)} bytes: not 1 to {MAX_POINTS} {dtype} values")
    a = np.frombuffer(raw, dtype="<" + dtype)
    if not np.isfinite(a).all():
        raise PayloadError(f"{name} holds values that are not finite")
    return a


def measurement_payload(device: str, store: str, rec) -> bytes:
    """The payload of one recorded measurement (a :class:`device.service.record.Record`)."""
    spectrum = None if rec.shift is None or rec.intensity is None else {
        "shift": encode_array(rec.shift, "f8"), "intensity": encode_array(rec.intensity)}
    evidence = None if rec.evidence is None else {k: encode_array(v) for k, v in rec.evidence.items()}
    return json.dumps({
        "schema": SCHEMA, "device": device, "store": store, "id": rec.id, "time": rec.time, "trigger": rec.trigger,
        "verdict": rec.verdict, "confidence": rec.confidence, "error": rec.error, "model": rec.model,
        "probabilities": rec.probabilities, "analysis": rec.analysis, "instrument": rec.device,
        "spectrum": spectrum, "evidence": evidence}, separators=(",", ":"), default=str).encode()


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


def read_measurement(payload: bytes, device: str, decode: bool = True) -> dict:
    """A measurement payload from ``device``'s topic, checked, with its arrays decoded.

    The ``device`` named in the payload must be the topic's: the broker's access list lets a device
    publish under its own topic only, so the topic is what vouches for the sender.

    Parameters
    ----------
    decode : bool
        Decode the arrays (and check their values); False: check their form only and leave them as they
        came (what the collector does: it stores the payload as received, and it is decoded when read).

    Returns
    -------
    dict
        The payload's fields; ``spectrum`` is ``{"shift", "intensity"}`` of arrays (P,) or None,
        ``evidence`` a dict of arrays (P,) or None.
    """
    m = _object(payload, "measurement")
    _check(m, "measurement", _MEASUREMENT)
    if m["device"] != device:
        raise PayloadError(f"a measurement of device {m['device'][:64]!r} arrived on {device!r}'s topic")
    if not re.fullmatch(r"[0-9a-f]{32}", m["store"]) or m["id"] < 1:
        raise PayloadError("the measurement's store or id is malformed")
    read = decode_array if decode else check_array
    if m["spectrum"] is not None:
        shift = read(m["spectrum"].get("shift"), "spectrum.shift")
        intensity = read(m["spectrum"].get("intensity"), "spectrum.intensity")
        if decode:
            if shift.shape != intensity.shape:
                raise PayloadError("spectrum.shift and spectrum.intensity differ in length")
            m["spectrum"] = {"shift": shift, "intensity": intensity}
    if m["evidence"] is not None:
        arrays = {str(k)[:40]: read(v, f"evidence.{str(k)[:40]}") for k, v in m["evidence"].items()}
        if decode:
            m["evidence"] = arrays
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
                       "data": base64.b64encode(data).decode("ascii")}, separators=(",", ":")).encode()


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
