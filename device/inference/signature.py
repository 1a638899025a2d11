"""Signatures of sealed directories: the fleet's Ed25519 signature over the exact bytes of the card.

The card (``model.json``, ``library.json``) pins every other file by its SHA-256, so a signature over the
card's bytes covers the whole directory. It is kept beside the card, in the one file a card cannot list::

    signature.json   {"schema": 1, "algorithm": "ed25519", "key_id": "0123456789abcdef",
                      "card": "model.json", "signature": "BASE64 of the 64-byte signature"}

``key_id`` is the first 16 hex digits of the SHA-256 of the raw 32-byte public key; it says which key
signed, so that a bundle signed by another key is refused by name. Public keys are PEM files
(SubjectPublicKeyInfo); a key file may hold several, each of which is accepted (a key rotation). The
``cryptography`` package is imported only here, and only when a key is used: the device runtime needs
it only where bundles must be signed.
"""
from __future__ import annotations

import base64
import binascii
import hashlib
import json
import re
from pathlib import Path
from typing import Callable

from device.errors import SignatureError, SigningKeyError

SIGNATURE_FILE = "signature.json"
SCHEMA_VERSION = 1
ALGORITHM = "ed25519"
#: A PEM block of a public key.
_PEM_PUBLIC = re.compile(rb"-----BEGIN PUBLIC KEY-----.+?-----END PUBLIC KEY-----", re.S)
#: What to do about a bundle that is not signed by the fleet's key.
SIGN_IT = "sign it with raman-train sign DIR --key fleet-signing.key on the workstation that holds the fleet's key"


def cryptography():
    """The ``cryptography`` package's Ed25519 and serialisation modules, or :class:`SigningKeyError` naming the fix."""
    try:
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric import ed25519
    except ImportError:
        raise SigningKeyError("signed bundles need the cryptography package, which is not installed: install the "
                              "uplink extra (pip install 'raman-edge[uplink]').") from None
    return ed25519, serialization


def key_id(public_key) -> str:
    """The id of an Ed25519 public key: the first 16 hex digits of the SHA-256 of its raw 32 bytes."""
    _, serialization = cryptography()
    raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:16]


def load_public_keys(path) -> dict:
    """The Ed25519 public keys of a PEM file (one or more SubjectPublicKeyInfo blocks), by key id.

    Raises
    ------
    SigningKeyError
        The file cannot be read, holds no public key, or holds one that is not Ed25519.
    """
    path = Path(path)
    ed25519, serialization = cryptography()
    remedy = "give the fleet's public key, fleet-signing.pub from raman-train keygen"
    try:
        blocks = _PEM_PUBLIC.findall(path.read_bytes())
    except OSError as exc:
        raise SigningKeyError(f"public key {path}: cannot be read ({exc.strerror or exc}); {remedy}.") from None
    if not blocks:
        raise SigningKeyError(f"public key {path}: holds no PEM public key (BEGIN PUBLIC KEY); {remedy}.")
    keys = {}
    for block in blocks:
        try:
            key = serialization.load_pem_public_key(block)
        except ValueError as exc:
            raise SigningKeyError(f"public key {path}: a PEM block is not a valid public key ({exc}); {remedy}.") \
                from None
        if not isinstance(key, ed25519.Ed25519PublicKey):
            raise SigningKeyError(f"public key {path}: holds a {type(key).__name__.lstrip('_')} key, not Ed25519; "
                                  f"{remedy}.")
        keys[key_id(key)] = key
    return keys


def fleet_keys(settings) -> dict | None:
    """The keys of the ``[signatures]`` section (:class:`~device.service.config.SignatureConfig`), or None.

    None when signatures are not required: nothing is then checked.
    """
    return load_public_keys(settings.public_key) if settings.required else None


def signature_record(public_key, signature: bytes, card_file: str) -> dict:
    """The content of :data:`SIGNATURE_FILE` for ``signature`` (64 bytes) of the card ``card_file``."""
    return {"schema": SCHEMA_VERSION, "algorithm": ALGORITHM, "key_id": key_id(public_key), "card": card_file,
            "signature": base64.b64encode(signature).decode("ascii")}


def verify_signature(path: Path, card_file: str, keys: dict, fail: Callable[..., Exception]) -> str:
    """Check that the card of the directory ``path`` is signed by one of ``keys``; the id of the key that signed.

    Parameters
    ----------
    path : Path
        The directory.
    card_file : str
        Its card (``model.json``, ``library.json``): the signature must be of this card.
    keys : dict
        Key id -> Ed25519 public key (:func:`load_public_keys`).
    fail : callable
        ``fail(problem, remedy)`` -> the exception whose message (it names the directory) is raised.

    Raises
    ------
    SignatureError
        Unsigned, signed by another key (named), a signature that does not match the card, or a malformed
        signature file.
    """
    def refuse(problem: str, remedy: str) -> SignatureError:
        return SignatureError(str(fail(problem, remedy)))

    sig_path = path / SIGNATURE_FILE
    if not sig_path.is_file():
        raise refuse(f"it is not signed (no {SIGNATURE_FILE}), and this device takes only what the fleet's key "
                     "signed", SIGN_IT)
    try:
        record = json.loads(sig_path.read_text(encoding="utf-8"))
        card = (path / card_file).read_bytes()
    except OSError as exc:
        raise refuse(f"{exc.filename} cannot be read ({exc.strerror or exc})", "restore it from a good copy") from None
    except (ValueError, RecursionError) as exc:
        raise refuse(f"{SIGNATURE_FILE} is malformed (not valid JSON: {str(exc)[:100]})", SIGN_IT) from None
    signature, problem = _parse(record, card_file)
    if problem:
        raise refuse(f"{SIGNATURE_FILE} is malformed ({problem})", SIGN_IT)
    if record["key_id"] not in keys:
        raise refuse(f"it is signed by the key {record['key_id']}, not by the fleet's ({', '.join(keys)})",
                     f"{SIGN_IT}, or install that key's public key if it is the fleet's new one")
    from cryptography.exceptions import InvalidSignature

    try:
        keys[record["key_id"]].verify(signature, card)
    except InvalidSignature:
        raise refuse(f"its signature does not match {card_file}: the card or the signature was changed after "
                     "signing", "take it again from the copy that was signed") from None
    return record["key_id"]


def _parse(record, card_file: str) -> tuple[bytes, str | None]:
    """The signature bytes of a signature file's content, and what is wrong with it (None: nothing)."""
    if not isinstance(record, dict):
        return b"", "not a JSON object"
    if record.get("schema") != SCHEMA_VERSION:
        return b"", f"schema {str(record.get('schema'))[:20]!r}; this raman-edge reads {SCHEMA_VERSION}"
    if record.get("algorithm") != ALGORITHM:
        return b"", f"algorithm {str(record.get('algorithm'))[:20]!r}, not {ALGORITHM!r}"
    if not (isinstance(record.get("key_id"), str) and re.fullmatch(r"[0-9a-f]{16}", record["key_id"])):
        return b"", "its key_id is not 16 hex digits"
    if record.get("card") != card_file:
        return b"", f"it signs {str(record.get('card'))[:40]!r}, not {card_file!r}"
    try:
        signature = base64.b64decode(str(record.get("signature")), validate=True)
    except (binascii.Error, ValueError):
        return b"", "its signature is not base64"
    if len(signature) != 64:
        return b"", f"its signature has {len(signature)} bytes, not 64"
    return signature, None
