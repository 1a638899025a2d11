"""The fleet's certificate authority: one CA, the broker's server certificate, one client certificate per identity.

Every file lives in one directory::

    ca.pem  ca.key           the CA (self-signed); ca.key signs everything below
    broker.pem  broker.key   the broker's server certificate (names: the given hosts)
    NAME.pem  NAME.key       the client certificate of identity NAME (its common name)
    crl.pem                  the revoked client certificates (the broker's crlfile)

An identity is a device id (1-64 letters, digits, ``.``, ``_``, ``-``), :data:`COLLECTOR` or :data:`ADMIN`. The
broker takes a client's username from its certificate's common name and the access list substitutes it into
topics, so a name never holds a topic wildcard (``+``, ``#``) or level separator (``/``). Keys are PEM, EC P-256,
readable by their owner only (mode 0600); nothing is replaced unless asked (``force``).
"""
from __future__ import annotations

import datetime
import ipaddress
import os
import tempfile
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from device.errors import RamanEdgeError
from device.service.config import DEVICE_ID

#: The central identities beside the devices: the collector reads every device's topics, the administrator
#: publishes rollouts.
COLLECTOR, ADMIN = "collector", "fleet-admin"
#: A valid identity: a device id's pattern (docs/fleet.md), for every identity.
IDENTITY = DEVICE_ID
#: Names no identity may take: the CA's and the broker's files, the topic level of a rollout to every device.
RESERVED = frozenset({"ca", "broker", "crl", "all"})
#: The broker's default host names.
DEFAULT_HOSTS = ("localhost", "127.0.0.1")
CA_DAYS, LEAF_DAYS = 20 * 365, 10 * 365
#: How far back a new certificate (or CRL) is valid from, for clocks a little behind.
_SKEW = datetime.timedelta(minutes=5)


class PKIError(RamanEdgeError):
    """A certificate or key is missing, would be replaced without ``force``, or a name is not an identity."""


def check_identity(name: str) -> str:
    """``name`` if it is a valid identity.

    Raises
    ------
    PKIError
        ``name`` does not match :data:`IDENTITY` or is one of :data:`RESERVED`.
    """
    if not IDENTITY.fullmatch(name):
        raise PKIError(f"{name!r} is not an identity: 1-64 letters, digits, '.', '_' or '-'")
    if name in RESERVED:
        raise PKIError(f"{name!r} is reserved (the CA's and broker's files, the rollout to all devices); "
                       "choose another name")
    return name


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.timezone.utc)


def _write(path: Path, data: bytes, mode: int) -> None:
    """Write ``data`` to ``path`` atomically with permissions ``mode`` from its creation."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _refuse_existing(paths, force: bool) -> None:
    existing = [str(p) for p in paths if p.exists()]
    if existing and not force:
        raise PKIError(f"{', '.join(existing)} already exist(s); give --force to replace, or choose another name")


def _save(directory: Path, stem: str, key, cert: x509.Certificate) -> Path:
    _write(directory / f"{stem}.key", key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                          serialization.NoEncryption()), 0o600)
    _write(directory / f"{stem}.pem", cert.public_bytes(serialization.Encoding.PEM), 0o644)
    return directory / f"{stem}.pem"


def _load_ca(directory: Path):
    try:
        cert = x509.load_pem_x509_certificate((directory / "ca.pem").read_bytes())
        key = serialization.load_pem_private_key((directory / "ca.key").read_bytes(), None)
    except FileNotFoundError as exc:
        raise PKIError(f"no CA in {directory} ({exc.filename} is missing): make one with "
                       f"raman-fleet pki init {directory}") from None
    except ValueError as exc:
        raise PKIError(f"the CA in {directory} is unreadable: {exc}") from None
    return cert, key


def _builder(subject: x509.Name, issuer: x509.Name, public_key, days: int) -> x509.CertificateBuilder:
    now = _now()
    return (x509.CertificateBuilder().subject_name(subject).issuer_name(issuer).public_key(public_key)
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - _SKEW).not_valid_after(now + datetime.timedelta(days=days))
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False))


def _issue(directory: Path, stem: str, common_name: str, purpose, extensions: tuple, days: int) -> Path:
    """A leaf certificate for ``common_name`` signed by the directory's CA, saved as ``stem.pem``/``stem.key``."""
    ca_cert, ca_key = _load_ca(directory)
    key = ec.generate_private_key(ec.SECP256R1())
    builder = (_builder(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)]), ca_cert.subject,
                        key.public_key(), days)
               .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
               .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=False, key_encipherment=False,
                                            data_encipherment=False, key_agreement=False, key_cert_sign=False,
                                            crl_sign=False, encipher_only=False, decipher_only=False), critical=True)
               .add_extension(x509.ExtendedKeyUsage([purpose]), critical=False)
               .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
                              critical=False))
    for extension in extensions:
        builder = builder.add_extension(extension, critical=False)
    return _save(directory, stem, key, builder.sign(ca_key, hashes.SHA256()))


def make_ca(directory, name: str = "raman-edge fleet CA", force: bool = False, days: int = CA_DAYS) -> Path:
    """Make the CA (``ca.key``, self-signed ``ca.pem``) and its empty revocation list ``crl.pem``; ``ca.pem``.

    Raises
    ------
    PKIError
        A CA is there already and ``force`` is false (replacing it invalidates every certificate it issued).
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    _refuse_existing([directory / "ca.pem", directory / "ca.key"], force)
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    cert = (_builder(subject, subject, key.public_key(), days)
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=False, content_commitment=False, key_encipherment=False,
                                         data_encipherment=False, key_agreement=False, key_cert_sign=True,
                                         crl_sign=True, encipher_only=False, decipher_only=False), critical=True)
            .sign(key, hashes.SHA256()))
    path = _save(directory, "ca", key, cert)
    _write_crl(directory, cert, key, [])
    return path


def issue_server(directory, hosts=DEFAULT_HOSTS, force: bool = False, days: int = LEAF_DAYS) -> Path:
    """The broker's certificate (``broker.pem``, ``broker.key``) for ``hosts`` (names or IP addresses).

    Raises
    ------
    PKIError
        No CA in ``directory``, no host given, or the certificate exists and ``force`` is false.
    """
    directory = Path(directory)
    if not hosts:
        raise PKIError("the broker's certificate needs at least one host name or address")
    _refuse_existing([directory / "broker.pem", directory / "broker.key"], force)
    names = []
    for host in dict.fromkeys(hosts):
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            names.append(x509.DNSName(host))
    return _issue(directory, "broker", hosts[0], ExtendedKeyUsageOID.SERVER_AUTH,
                  (x509.SubjectAlternativeName(names),), days)


def init(directory, hosts=DEFAULT_HOSTS, force: bool = False) -> None:
    """Make the CA and the broker's certificate for ``hosts`` in ``directory`` (``raman-fleet pki init``).

    Raises
    ------
    PKIError
        One of their files exists and ``force`` is false (checked before anything is written).
    """
    directory = Path(directory)
    _refuse_existing([directory / f"{stem}.{ext}" for stem in ("ca", "broker") for ext in ("pem", "key")], force)
    make_ca(directory, force=force)
    issue_server(directory, hosts, force=force)


def issue_client(directory, name: str, force: bool = False, days: int = LEAF_DAYS) -> Path:
    """The client certificate of identity ``name`` (``NAME.pem``, ``NAME.key``): its common name is ``name``.

    Raises
    ------
    PKIError
        ``name`` is not an identity, no CA in ``directory``, or the certificate exists and ``force`` is false.
    """
    directory = Path(directory)
    check_identity(name)
    _refuse_existing([directory / f"{name}.pem", directory / f"{name}.key"], force)
    return _issue(directory, name, name, ExtendedKeyUsageOID.CLIENT_AUTH, (), days)


def _write_crl(directory: Path, ca_cert, ca_key, revoked: list) -> None:
    """Sign ``crl.pem`` listing ``revoked`` (``x509.RevokedCertificate``), valid as long as the CA."""
    builder = (x509.CertificateRevocationListBuilder().issuer_name(ca_cert.subject)
               .last_update(_now() - _SKEW).next_update(ca_cert.not_valid_after_utc)
               .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
                              critical=False))
    for entry in revoked:
        builder = builder.add_revoked_certificate(entry)
    _write(directory / "crl.pem", builder.sign(ca_key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM),
           0o644)


def revoke(directory, name: str) -> int:
    """Add identity ``name``'s certificate to ``crl.pem`` and delete its files; the serial number revoked.

    The broker refuses the certificate once it has read the new list (at its next start).

    Raises
    ------
    PKIError
        No CA, or no certificate of ``name`` in ``directory``.
    """
    directory = Path(directory)
    check_identity(name)
    ca_cert, ca_key = _load_ca(directory)
    try:
        cert = x509.load_pem_x509_certificate((directory / f"{name}.pem").read_bytes())
    except FileNotFoundError:
        raise PKIError(f"no certificate of {name!r} in {directory} ({name}.pem)") from None
    crl_path = directory / "crl.pem"
    revoked = list(x509.load_pem_x509_crl(crl_path.read_bytes())) if crl_path.exists() else []
    if all(r.serial_number != cert.serial_number for r in revoked):
        revoked.append(x509.RevokedCertificateBuilder().serial_number(cert.serial_number)
                       .revocation_date(_now() - _SKEW).build())
    _write_crl(directory, ca_cert, ca_key, revoked)
    for suffix in (".pem", ".key"):
        (directory / f"{name}{suffix}").unlink(missing_ok=True)
    return cert.serial_number
