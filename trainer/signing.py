"""``raman-train keygen`` and ``sign``: the fleet's Ed25519 key pair, and signatures of bundles and libraries.

The private key stays on the workstation that signs (PEM PKCS#8, mode 0600); the public key goes to every
device (``raman-device install --signing-key``). A signature covers the exact bytes of the card
(:mod:`device.inference.signature`), so a directory is verified whole before it is signed: a corrupt one
is refused rather than vouched for.
"""
from __future__ import annotations

import json
from pathlib import Path

from device.errors import RamanEdgeError, SigningKeyError
from device.fileio import write_replacing
from device.inference import bundle, library
from device.inference.signature import SIGNATURE_FILE, cryptography, key_id, signature_record

PRIVATE_FILE = "fleet-signing.key"
PUBLIC_FILE = "fleet-signing.pub"
#: The card of each kind of sealed directory, with what verifies one whole and gives its id.
VERIFIERS = {bundle.CARD_FILE: lambda path: bundle.load_bundle(path).model_id,
             library.CARD_FILE: lambda path: library.load_library(path).library_id}


class SigningError(RamanEdgeError):
    """A directory cannot be signed, or a key pair cannot be written where it was asked for."""


def keygen(out: Path, force: bool = False) -> str:
    """Write a new key pair into the directory ``out``: :data:`PRIVATE_FILE` (mode 0600) and :data:`PUBLIC_FILE`.

    Returns
    -------
    str
        The new key's id.

    Raises
    ------
    SigningError
        A key file exists there already (without ``force``), or the directory cannot be written.
    """
    ed25519, serialization = cryptography()
    existing = [out / f for f in (PRIVATE_FILE, PUBLIC_FILE) if (out / f).exists()]
    if existing and not force:
        raise SigningError(f"{existing[0]} already exists; give --force to replace the key pair (bundles signed "
                           "with the old key are then refused by devices given the new one), or choose another --out")
    private = ed25519.Ed25519PrivateKey.generate()
    pem = private.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    public = private.public_key().public_bytes(serialization.Encoding.PEM,
                                               serialization.PublicFormat.SubjectPublicKeyInfo)
    try:
        out.mkdir(parents=True, exist_ok=True)
        write_replacing(out / PRIVATE_FILE, pem, mode=0o600)
        write_replacing(out / PUBLIC_FILE, public)
    except OSError as exc:
        raise SigningError(f"cannot write the key pair into {out} ({exc.strerror or exc}); choose another --out") \
            from None
    return key_id(private.public_key())


def load_private_key(path: Path):
    """The Ed25519 private key of a PEM (PKCS#8, unencrypted) file, as :func:`keygen` writes it.

    Raises
    ------
    SigningKeyError
        The file cannot be read or holds no unencrypted Ed25519 private key.
    """
    ed25519, serialization = cryptography()
    remedy = f"give the {PRIVATE_FILE} that raman-train keygen wrote"
    try:
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    except OSError as exc:
        raise SigningKeyError(f"private key {path}: cannot be read ({exc.strerror or exc}); {remedy}.") from None
    except (ValueError, TypeError) as exc:  # TypeError: an encrypted key
        raise SigningKeyError(f"private key {path}: not an unencrypted PEM private key ({exc}); {remedy}.") from None
    if not isinstance(key, ed25519.Ed25519PrivateKey):
        raise SigningKeyError(f"private key {path}: holds a {type(key).__name__.lstrip('_')} key, not Ed25519; "
                              f"{remedy}.")
    return key


def sign(path: Path, private_key) -> str:
    """Sign the model bundle or reference library ``path`` (its kind from its card), replacing any signature.

    Returns
    -------
    str
        The id of what was signed (``NAME@HASH``).

    Raises
    ------
    SigningError
        ``path`` has no card of a known kind.
    BundleError
        The directory does not verify (a missing, modified or unlisted file).
    """
    cards = [card for card in VERIFIERS if (path / card).is_file()]
    if len(cards) != 1:
        raise SigningError(f"{path}: not a model bundle (model.json) or a reference library (library.json)"
                           + ("" if not cards else ", but both") + "; give the directory of one")
    signed = VERIFIERS[cards[0]](path)
    card = (path / cards[0]).read_bytes()
    record = signature_record(private_key.public_key(), private_key.sign(card), cards[0])
    try:
        write_replacing(path / SIGNATURE_FILE, (json.dumps(record, indent=2) + "\n").encode("ascii"))
    except OSError as exc:
        raise SigningError(f"{path}: cannot write {SIGNATURE_FILE} ({exc.strerror or exc})") from None
    return signed
