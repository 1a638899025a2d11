"""Real servers for the fleet's tests: a PKI, Mosquitto with the fleet's configuration, PostgreSQL.

Import the fixtures a test module uses (and those they use) by name::

    from fleet_servers import broker, pki  # noqa: F401

``pki`` (session) is a :class:`Pki` with certificates for :data:`IDENTITIES` (more on demand); ``broker`` a
running :class:`Broker` on a free loopback port, configured by :mod:`fleet.broker`; ``postgres`` the URL of a
fresh database on a PostgreSQL server of the session. A test is skipped, saying why, when Mosquitto or
PostgreSQL is not installed. Every wait has a deadline and ends on an event (a connection, an acknowledgement,
a message), never on a sleep.
"""
from __future__ import annotations

import fnmatch
import itertools
import os
import queue
import shutil
import ssl
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from fleet import broker as broker_config
from fleet import pki as fleet_pki
from fleet.broker import free_port

#: The identities whose certificates the session's PKI holds from the start.
IDENTITIES = (fleet_pki.COLLECTOR, fleet_pki.ADMIN, "pi-001", "pi-002", "pi-003")
HOST = "127.0.0.1"
#: How long a server or a client may take to answer, s.
TIMEOUT = 10.0


@dataclass
class Pki:
    """A :mod:`fleet.pki` directory: the CA, the broker's certificate and client certificates."""

    path: Path

    @property
    def ca(self) -> Path:
        """The CA's certificate (``ca.pem``)."""
        return self.path / "ca.pem"

    def files(self, identity: str) -> tuple[Path, Path]:
        """``(certificate, key)`` of ``identity``, issued now if the directory has none yet."""
        cert, key = self.path / f"{identity}.pem", self.path / f"{identity}.key"
        if not cert.exists():
            fleet_pki.issue_client(self.path, identity)
        return cert, key

    def context(self, identity: str | None) -> ssl.SSLContext:
        """A client TLS context trusting this CA, presenting ``identity``'s certificate (None: no certificate)."""
        context = ssl.create_default_context(cafile=str(self.ca))
        if identity is not None:
            context.load_cert_chain(*map(str, self.files(identity)))
        return context


def make_pki(path) -> Pki:
    """A new PKI in ``path``: CA, broker certificate for localhost and 127.0.0.1, every one of :data:`IDENTITIES`."""
    fleet_pki.init(path)
    made = Pki(Path(path))
    for identity in IDENTITIES:
        made.files(identity)
    return made


@pytest.fixture(scope="session")
def pki(tmp_path_factory) -> Pki:
    """The session's PKI (:func:`make_pki`)."""
    return make_pki(tmp_path_factory.mktemp("pki"))


class Client:
    """A connected paho-mqtt client (MQTT 5): what it receives queued, each acknowledgement waited for.

    It does not reconnect: once the broker closes the connection, :attr:`disconnected` is set.

    Parameters
    ----------
    context : ssl.SSLContext
        Its TLS context (:meth:`Pki.context`).
    port : int
        The broker's port on :data:`HOST`.
    client_id : str
        The session's name (the broker replaces it with the identity).
    clean_start : bool
        Start a new session (True) or resume the identity's persistent one (False, kept a day).
    """

    def __init__(self, context: ssl.SSLContext, port: int, client_id: str = "", clean_start: bool = True):
        import paho.mqtt.client as mqtt
        from paho.mqtt.packettypes import PacketTypes
        from paho.mqtt.properties import Properties

        self.messages: queue.Queue = queue.Queue()
        self._connack = queue.Queue()
        self._acks: dict = {}
        self._lock = threading.Lock()
        self.disconnected = threading.Event()
        self.paho = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5,
                                 reconnect_on_failure=False)
        self.paho.tls_set_context(context)
        self.paho.on_connect = lambda _c, _u, _f, reason, _p: self._connack.put(reason)
        self.paho.on_disconnect = lambda _c, _u, _f, reason, _p: (self.disconnected.set(), self._connack.put(reason))
        self.paho.on_connect_fail = lambda *_: self._connack.put(None)
        self.paho.on_message = lambda _c, _u, message: self.messages.put(message)
        self.paho.on_subscribe = lambda _c, _u, mid, reasons, _p: self._ack(mid, reasons)
        self.paho.on_publish = lambda _c, _u, mid, reason, _p: self._ack(mid, reason)
        properties = Properties(PacketTypes.CONNECT)
        properties.SessionExpiryInterval = 0 if clean_start else 24 * 3600
        try:
            self.paho.connect(HOST, port, keepalive=30, clean_start=clean_start, properties=properties)
        except (OSError, ssl.SSLError) as exc:
            raise ConnectionRefusedError(f"TLS or TCP refused: {exc}") from exc
        self.paho.loop_start()
        try:
            reason = self._connack.get(timeout=TIMEOUT)
        except queue.Empty:
            self.close()
            raise TimeoutError(f"neither CONNACK nor refusal within {TIMEOUT} s") from None
        if self.disconnected.is_set() or reason is None or reason.is_failure:
            self.close()
            raise ConnectionRefusedError(f"the broker refused the connection ({reason})")

    def _ack(self, mid: int, reason) -> None:
        with self._lock:
            self._acks.setdefault(mid, queue.Queue()).put(reason)

    def _wait_ack(self, mid: int):
        with self._lock:
            box = self._acks.setdefault(mid, queue.Queue())
        try:
            return box.get(timeout=TIMEOUT)
        except queue.Empty:
            return None
        finally:
            with self._lock:
                self._acks.pop(mid, None)

    def subscribe(self, topic: str, qos: int = 1) -> list:
        """Subscribe to ``topic``; the SUBACK's reason codes (None: no SUBACK within :data:`TIMEOUT`)."""
        _, mid = self.paho.subscribe(topic, qos=qos)
        return self._wait_ack(mid)

    def publish(self, topic: str, payload: bytes, qos: int = 1, retain: bool = False):
        """Publish and wait for the broker's PUBACK; its reason code (None: none within :data:`TIMEOUT`)."""
        info = self.paho.publish(topic, payload, qos=qos, retain=retain)
        return self._wait_ack(info.mid)

    def receive(self, pattern: str = "*", timeout: float = TIMEOUT):
        """The next message whose topic matches ``pattern`` (fnmatch); None if none comes within ``timeout``.

        Messages of other topics that arrive meanwhile are dropped.
        """
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            try:
                message = self.messages.get(timeout=left)
            except queue.Empty:
                return None
            if fnmatch.fnmatchcase(message.topic, pattern):
                return message
        return None

    def close(self) -> None:
        """Disconnect and stop the network loop."""
        self.paho.disconnect()
        self.paho.loop_stop()


class Broker(broker_config.BrokerProcess):
    """:class:`fleet.broker.BrokerProcess` on :data:`HOST` and a free port, with clients for the test's identities."""

    def __init__(self, pki: Pki, directory, port: int | None = None):
        try:
            super().__init__(pki.path, directory, port or free_port(HOST), HOST)
        except broker_config.BrokerConfigError as exc:
            pytest.skip(f"{exc} (.ci/run installs it)")
        self.pki = pki
        self._clients: list[Client] = []

    def connect(self, identity: str | None, client_id: str = "", clean_start: bool = True,
                context: ssl.SSLContext | None = None) -> Client:
        """A :class:`Client` connected as ``identity`` (None: without a certificate), closed at the test's end.

        ``context`` replaces the PKI's TLS context (e.g. a certificate of another CA). Raises
        ConnectionRefusedError when the broker refuses it, TimeoutError when it does not answer.
        """
        client = Client(context or self.pki.context(identity), self.port, client_id, clean_start)
        self._clients.append(client)
        return client

    def close(self) -> None:
        """Close every client of :meth:`connect` and stop the broker."""
        for client in self._clients:
            client.close()
        self.stop()


@pytest.fixture
def broker(pki, tmp_path):
    """A running :class:`Broker` in ``tmp_path/broker``, stopped at the test's end."""
    server = Broker(pki, tmp_path / "broker")
    server.start()
    yield server
    server.close()


def _postgres_bin() -> Path | None:
    """The directory of PostgreSQL's server programs (initdb, pg_ctl), the newest installed; None without."""
    found = shutil.which("pg_ctl")
    if found:
        return Path(found).parent
    versions = sorted(Path("/usr/lib/postgresql").glob("*/bin/pg_ctl"), key=lambda p: int(p.parts[-3]))
    return versions[-1].parent if versions else None


class Postgres:
    """A PostgreSQL server of its own in a new temporary directory, on a free loopback port, trust authentication.

    As root it runs as ``nobody`` (PostgreSQL refuses to run as root), owning its directory.
    """

    USER = "raman"

    def __init__(self, bindir: Path):
        self.bindir = bindir
        self.directory = Path(tempfile.mkdtemp(prefix="raman-edge-postgres-"))
        self.port = free_port(HOST)
        self._as = {"user": "nobody", "group": "nogroup", "extra_groups": []} if os.geteuid() == 0 else {}
        if self._as:
            shutil.chown(self.directory, "nobody", "nogroup")
        self._names = itertools.count(1)

    def _run(self, program: str, *args) -> None:
        done = subprocess.run([str(self.bindir / program), *args], cwd=self.directory, capture_output=True,
                              text=True, timeout=60, **self._as)
        if done.returncode:
            raise RuntimeError(f"{program} failed ({done.returncode}):\n{done.stdout}{done.stderr}\n{self.log()}")

    def start(self) -> None:
        """Make the cluster (``initdb``) and start the server, returning once it accepts connections."""
        data = self.directory / "data"
        self._run("initdb", "-D", str(data), "-U", self.USER, "-A", "trust", "-E", "UTF8", "--no-locale",
                  "--no-sync")
        self._run("pg_ctl", "-D", str(data), "-l", str(self.directory / "postgres.log"), "-w", "-t", str(int(TIMEOUT)),
                  "-o", f"-p {self.port} -k {self.directory} -c listen_addresses={HOST} -c fsync=off", "start")

    def url(self, database: str = "postgres") -> str:
        """The ``postgresql://`` URL of ``database`` on this server."""
        return f"postgresql://{self.USER}@{HOST}:{self.port}/{database}"

    def new_database(self) -> str:
        """The URL of a new, empty database."""
        import psycopg

        name = f"test_{next(self._names)}"
        with psycopg.connect(self.url(), autocommit=True) as connection:
            connection.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def log(self) -> str:
        """The server's log."""
        path = self.directory / "postgres.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def stop(self) -> None:
        """Stop the server (fast shutdown) and delete its directory."""
        if (self.directory / "data" / "postmaster.pid").exists():
            self._run("pg_ctl", "-D", str(self.directory / "data"), "-m", "fast", "-w", "stop")
        shutil.rmtree(self.directory, ignore_errors=True)


@pytest.fixture(scope="session")
def postgres_server():
    """The session's :class:`Postgres` server, started on first use and stopped at the session's end."""
    bindir = _postgres_bin()
    if bindir is None:
        pytest.skip("PostgreSQL is not installed (apt-get install postgresql; .ci/run installs it)")
    server = Postgres(bindir)
    try:
        server.start()
        yield server
    finally:
        server.stop()


@pytest.fixture
def postgres(postgres_server) -> str:
    """The ``postgresql://`` URL of a new, empty database on the session's server."""
    return postgres_server.new_database()
