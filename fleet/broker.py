"""The fleet's Mosquitto configuration: one TLS listener, identities from certificates, the access list of the topics.

Every client presents a certificate of the fleet's CA (:mod:`fleet.pki`); its common name is its username, and
the access list below is all it may do. A device (username ``DEVICE``) publishes under
``raman-edge/v1/devices/DEVICE/`` only and reads only its own and the all-devices rollouts; the collector reads
every device's topics; the administrator publishes rollouts and reads the devices' topics. The client id is
replaced by the username, so no client can take over (or disconnect) another identity's session.

Persistence keeps the sessions and what is queued for them across a restart; the queue of a client that is
away has no limit (the collector's queue is the only buffer between the devices and the database).
"""
from __future__ import annotations

import socket
from dataclasses import dataclass
from pathlib import Path

from device.errors import RamanEdgeError
from fleet.pki import ADMIN, COLLECTOR

TOPICS = "raman-edge/v1"
DEFAULT_PORT = 8883
#: Largest payload accepted, bytes: a rollout chunk of 256 KiB is 350 KiB as base64 in its JSON object.
MESSAGE_SIZE_LIMIT = 1024 * 1024
#: Most QoS 1 messages in flight to one client: a reconnecting collector drains its queue at full speed.
MAX_INFLIGHT = 1000
#: Seconds between saves of the in-memory database (a clean stop always saves; a crash loses at most this).
AUTOSAVE_S = 60


class BrokerConfigError(RamanEdgeError):
    """The broker's configuration cannot be written as asked (missing certificates, a path it cannot hold)."""


def acl_text() -> str:
    """The text of the access-list file: per-identity patterns for devices, then the central identities."""
    return f"""\
# Devices: %u is the certificate's common name (the device id; never holds + # or /).
pattern write {TOPICS}/devices/%u/#
pattern read {TOPICS}/rollout/%u/#
pattern read {TOPICS}/rollout/all/#

user {COLLECTOR}
topic read {TOPICS}/devices/#

user {ADMIN}
topic write {TOPICS}/rollout/#
topic read {TOPICS}/devices/#
"""


@dataclass(frozen=True)
class BrokerFiles:
    """Where the broker's files are: its certificates (a :mod:`fleet.pki` directory) and what it writes."""

    pki: Path
    acl: Path
    persistence: Path

    def check(self) -> None:
        """Refuse a path the configuration cannot hold, or missing certificates.

        Raises
        ------
        BrokerConfigError
            A path holds whitespace (Mosquitto ends a value there), or a file of the PKI is missing.
        """
        for path in (self.pki, self.acl, self.persistence):
            if any(c.isspace() for c in str(path)):
                raise BrokerConfigError(f"Mosquitto cannot read a path with whitespace: {str(path)!r}; choose another")
        missing = [n for n in ("ca.pem", "broker.pem", "broker.key", "crl.pem") if not (self.pki / n).is_file()]
        if missing:
            raise BrokerConfigError(f"{self.pki} lacks {', '.join(missing)}: make the PKI with "
                                    f"raman-fleet pki init {self.pki}")


def config_text(files: BrokerFiles, port: int = DEFAULT_PORT, bind: str | None = None, user: str | None = None) -> str:
    """The text of ``mosquitto.conf`` for ``files``: one TLS listener on ``port`` (all addresses, or ``bind``).

    ``user`` is the account Mosquitto runs as when started as root (default: its own, ``mosquitto``).
    """
    run_as = f"user {user}" if user else "# user mosquitto (Mosquitto's default when started as root)"
    listener = f"listener {port} {bind}" if bind else f"listener {port}"
    return f"""\
# raman-edge fleet broker (docs/fleet.md, "The broker").
{run_as}
per_listener_settings false
allow_anonymous false
acl_file {files.acl}

persistence true
persistence_location {files.persistence}/
autosave_interval {AUTOSAVE_S}
max_queued_messages 0
max_queued_bytes 0
max_inflight_messages {MAX_INFLIGHT}
message_size_limit {MESSAGE_SIZE_LIMIT}
# Each message leaves at once (no Nagle delay waiting for the peer's acknowledgement of the last).
set_tcp_nodelay true

log_dest stderr
log_type error
log_type warning
log_type notice
log_type information
connection_messages true

{listener}
protocol mqtt
tls_version tlsv1.2
cafile {files.pki / "ca.pem"}
certfile {files.pki / "broker.pem"}
keyfile {files.pki / "broker.key"}
crlfile {files.pki / "crl.pem"}
require_certificate true
use_identity_as_username true
use_username_as_clientid true
"""


def write_config(pki, out, port: int = DEFAULT_PORT, bind: str | None = None, user: str | None = None,
                 force: bool = False) -> Path:
    """Write ``mosquitto.conf``, ``acl`` and the persistence directory ``data/`` into ``out``; the config's path.

    Parameters
    ----------
    pki : path-like
        The :mod:`fleet.pki` directory (``ca.pem``, ``broker.pem``, ``broker.key``, ``crl.pem``).
    out : path-like
        The broker's directory; an existing ``mosquitto.conf`` or ``acl`` is replaced only with ``force``
        (the persistence directory is kept).
    port, bind, user
        As :func:`config_text`.

    Raises
    ------
    BrokerConfigError
        As :meth:`BrokerFiles.check`, or the files exist and ``force`` is false.
    """
    out = Path(out).absolute()
    files = BrokerFiles(pki=Path(pki).absolute(), acl=out / "acl", persistence=out / "data")
    files.check()
    conf = out / "mosquitto.conf"
    existing = [str(p) for p in (conf, files.acl) if p.exists()]
    if existing and not force:
        raise BrokerConfigError(f"{', '.join(existing)} already exist(s); give --force to replace, or another --out")
    files.persistence.mkdir(parents=True, exist_ok=True)
    files.acl.write_text(acl_text())
    conf.write_text(config_text(files, port, bind, user))
    return conf


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port on ``host`` that nothing listens on now (for a broker, a dashboard, a database on this machine)."""
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


class BrokerProcess:
    """Mosquitto with the fleet's configuration, run on this machine (the demo, the benchmark, the tests).

    The configuration, access list, persistence (``data/``) and log (``mosquitto.log``) live in
    ``directory``; the port is kept across :meth:`stop` / :meth:`kill` and :meth:`start`, so a restart
    finds its sessions.

    Parameters
    ----------
    pki : path-like
        The :mod:`fleet.pki` directory; it must hold the collector's certificate (the readiness check).
    directory : path-like
        The broker's directory.
    port : int
        Its TLS port on ``host``.
    host : str
        The address it listens on.

    Raises
    ------
    BrokerConfigError
        When Mosquitto is not installed.
    """

    def __init__(self, pki, directory, port: int, host: str = "127.0.0.1"):
        import os
        import shutil

        self.executable = shutil.which("mosquitto") or shutil.which("mosquitto", path="/usr/sbin:/usr/local/sbin")
        if self.executable is None:
            raise BrokerConfigError("Mosquitto is not installed: apt-get install mosquitto")
        self.pki_dir, self.directory, self.host, self.port = Path(pki), Path(directory), host, port
        self.conf = write_config(self.pki_dir, self.directory, port=port, bind=host,
                                 user="root" if os.geteuid() == 0 else None, force=True)
        self.persistence = self.directory / "data"
        self.log_path = self.directory / "mosquitto.log"
        self.process = None

    def start(self, timeout: float = 10.0) -> None:
        """Start Mosquitto and return once it completes a TLS handshake with the collector's certificate.

        Raises
        ------
        BrokerConfigError
            It exited, or did not serve within ``timeout`` s (the message carries its log).
        """
        import socket
        import ssl
        import subprocess
        import time

        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen([self.executable, "-c", str(self.conf)], stdout=log,
                                            stderr=subprocess.STDOUT)
        context = ssl.create_default_context(cafile=str(self.pki_dir / "ca.pem"))
        context.load_cert_chain(str(self.pki_dir / f"{COLLECTOR}.pem"), str(self.pki_dir / f"{COLLECTOR}.key"))
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and self.process.poll() is None:
            try:
                with socket.create_connection((self.host, self.port), timeout=timeout) as raw, \
                        context.wrap_socket(raw, server_hostname=self.host):
                    return
            except ConnectionRefusedError:
                time.sleep(0.02)  # not listening yet: try again (the handshake, not the delay, ends the wait)
        self.kill()
        raise BrokerConfigError(f"mosquitto did not serve on port {self.port}:\n{self.log()}")

    def stop(self, timeout: float = 10.0) -> None:
        """Stop Mosquitto cleanly (SIGTERM; it saves its persistence database) and wait until it has exited."""
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=timeout)
        self.process = None

    def kill(self, timeout: float = 10.0) -> None:
        """Kill Mosquitto (SIGKILL: what it has not saved yet is lost) and wait until it is gone."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=timeout)
        self.process = None

    def log(self) -> str:
        """Everything Mosquitto has logged in this directory."""
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
