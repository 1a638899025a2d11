"""``python -m tools fleet-demo``: a whole fleet on this machine, end to end (docs/fleet.md, "The fleet demo").

In one fresh directory: the fleet's PKI and signing key pair; Mosquitto with the fleet's configuration on a
free loopback port; the collector (``raman-fleet collect``) into a SQLite fleet database; N devices, each a
service (``raman-device run``) on a simulated spectrometer of its own (protocol and seed) with a signed copy
of the shipped model and library, and its uplink (``raman-edge-uplink``). Every process is a subprocess
running the real command; its output goes to ``logs/NAME.log``.

The checks, in order: every measurement of every device's record reaches the fleet database exactly once,
and so does each one an uplink sends again after losing its cursor; a signed new model rolled out to every
device is installed by each, served, and carries the new model id into the fleet database; the dashboard
answers with every device on its pages. Every wait has a deadline and ends on an event: a line of output,
a reply, a count reached.
"""
from __future__ import annotations

import queue
import re
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from device.errors import RamanEdgeError
from device.inference.bundle import load_bundle, write_bundle
from device.service.control import SOCKET_FILE, send_command
from device.service.record import RECORD_FILE, RecordStore
from device.uplink.uplink import CURSOR_FILE
from firmware_bridge import registry
from fleet import pki
from fleet.broker import BrokerProcess, free_port
from fleet.database import FleetDatabase
from tools.soak import PROTOCOLS

ROOT = Path(__file__).resolve().parents[1]
MODEL = ROOT / "models" / "sers-pesticides"
LIBRARY = ROOT / "models" / "libraries" / "sers-pesticides"
#: The project's commands, each run as its module with this Python (the ``main`` of the installed script).
MODULES = {"raman-device": "device.cli", "raman-edge-uplink": "device.uplink.cli", "raman-fleet": "fleet.cli",
           "raman-train": "trainer.cli"}
HOST = "127.0.0.1"
#: Longest any one step may take, s.
TIMEOUT = 60.0
#: What each device's service is asked, in order: a bare MEASURE classifies, IDENTIFY searches the library.
COMMANDS = ("MEASURE", "MEASURE IDENTIFY", "MEASURE")
#: The name of the model rolled out: the shipped network renamed, so another model id.
NEW_MODEL = "sers-pesticides-v2"


class CheckFailed(RamanEdgeError):
    """A check of the demo that did not hold, or a process that did not get as far; the message says which."""


def renamed_model(shipped, path: Path, name: str):
    """The shipped network with its examples under another name ``name`` (so another model id), at ``path``."""
    examples = [(p.relative_to(shipped.path / "examples").as_posix(), p.read_bytes(), label)
                for p, label in shipped.examples]
    return write_bundle(path, name=name, class_names=shipped.class_names, axis=shipped.axis,
                        tflite=shipped.tflite_path.read_bytes(), card={"name": name}, prominence=shipped.prominence,
                        standardizer=shipped.standardizer, layers=shipped.layers, leaky_slope=shipped.leaky_slope,
                        normalisation=shipped.preprocess, input_layout=shipped.input_layout, examples=examples)


def argv(command: str, args: list) -> list[str]:
    """The arguments that run ``command`` (a key of :data:`MODULES`) with ``args``."""
    return [sys.executable, "-m", MODULES[command], *map(str, args)]


def run_command(command: str, args: list, timeout: float = TIMEOUT) -> str:
    """Run ``command args`` to its end; its standard output, or CheckFailed with its last line of error."""
    try:
        done = subprocess.run(argv(command, args), capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise CheckFailed(f"{command} {args[0]} did not finish within {timeout:g} s") from None
    if done.returncode:
        lines = (done.stderr or done.stdout).strip().splitlines()
        raise CheckFailed(f"{command} {args[0]} failed ({done.returncode}): {lines[-1] if lines else 'no output'}")
    return done.stdout


def wait_until(condition, what: str, timeout: float = TIMEOUT):
    """``condition()``'s first true value, asked every 0.1 s; CheckFailed saying ``what`` after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while not (result := condition()):
        if time.monotonic() > deadline:
            raise CheckFailed(f"{what} within {timeout:g} s")
        time.sleep(0.1)  # the condition is a count in a database: look again (the count, not the delay, ends it)
    return result


class Child:
    """A long-running command as a subprocess: its output (stdout and stderr) logged, and waited on line by line.

    Parameters
    ----------
    name : str
        What it is, in messages (``collector``, ``pi-001 service``).
    argv : list of str
        The command and its arguments.
    log : Path
        The file its output is appended to.
    """

    def __init__(self, name: str, argv: list, log: Path):
        self.name, self.log = name, log
        # A session of its own: Ctrl-C in the terminal reaches the demo only, which stops each child in turn.
        self.proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                     start_new_session=True)
        self._lines: queue.Queue = queue.Queue()
        threading.Thread(target=self._pump, daemon=True).start()

    def _pump(self) -> None:
        with self.proc.stdout as output, open(self.log, "a") as log:
            for line in output:
                log.write(line)
                log.flush()
                self._lines.put(line)
        self._lines.put(None)

    def wait_for(self, prefix: str, timeout: float = TIMEOUT) -> str:
        """The next line of its output starting with ``prefix``; CheckFailed if it ends or ``timeout`` s pass first."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                line = self._lines.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                raise CheckFailed(f"{self.name}: no line '{prefix}...' within {timeout:g} s (see {self.log})") from None
            if line is None:
                tail = self.log.read_text().strip().splitlines()[-1:] or ["no output"]
                raise CheckFailed(f"{self.name} ended ({self.proc.wait()}) before '{prefix}...': {tail[0]}")
            if line.startswith(prefix):
                return line.strip()

    def stop(self, timeout: float = TIMEOUT) -> int:
        """Stop it (SIGTERM, SIGKILL if it does not end within ``timeout`` s); its exit status."""
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode


@dataclass
class Device:
    """One simulated device: its name, spectrometer, directory and configuration."""

    name: str
    protocol: str
    seed: int
    directory: Path

    @property
    def data(self) -> Path:
        """Its data directory (record, cursor, control socket, installed model and library)."""
        return self.directory / "data"

    @property
    def config(self) -> Path:
        """Its configuration file."""
        return self.directory / "raman-edge.toml"

    def command(self, text: str) -> dict:
        """Its service's reply to ``text`` on the control socket; CheckFailed when there is none."""
        try:
            return send_command(self.data / SOCKET_FILE, text, timeout=TIMEOUT)
        except ValueError:  # no JSON line: the connection closed before a whole reply
            raise CheckFailed(f"{self.name}: its service closed the connection without replying to {text} (its log "
                              "says why)") from None
        except OSError as exc:
            raise CheckFailed(f"{self.name}: no reply to {text} from its service ({exc})") from None

    def recorded(self) -> set:
        """``(device, store, id)`` of every measurement in its record."""
        store = RecordStore(self.data / RECORD_FILE)
        try:
            return {(self.name, store.store_id, r["id"]) for r in store.stored_after(0, store.count())}
        finally:
            store.close()

    def config_text(self, broker: BrokerProcess, public_key: Path) -> str:
        """Its configuration: the simulator, the signed model and library, signatures required, the uplink."""
        extra, _ = PROTOCOLS[self.protocol]
        files = broker.pki_dir
        return (f'[spectrometer]\nprotocol = "{self.protocol}"\nport = "sim://{self.protocol}?paced=0&seed={self.seed}"\n'
                f"laser_nm = {registry.protocol(self.protocol).simulated_laser_nm}\n{extra}"
                f'[model]\nbundle = "{self.data / "models" / "current"}"\n'
                f'[library]\npath = "{self.data / "libraries" / "current"}"\n'
                f'[signatures]\nrequired = true\npublic_key = "{public_key}"\n'
                f'[data]\ndirectory = "{self.data}"\n'
                f'[uplink]\nbroker = "{broker.host}"\nport = {broker.port}\ndevice_id = "{self.name}"\n'
                f'ca = "{files / "ca.pem"}"\ncertificate = "{files / f"{self.name}.pem"}"\n'
                f'key = "{files / f"{self.name}.key"}"\nstatus_every_s = 1\n')


class FleetDemo:
    """The fleet in ``directory``: :meth:`run` starts it, checks it and reports; :meth:`stop` ends it.

    Parameters
    ----------
    directory : Path
        An empty directory for everything the fleet writes.
    devices : int
        How many simulated devices.
    out : callable
        Where progress and the report go.
    """

    def __init__(self, directory: Path, devices: int, out=print):
        self.directory, self.out = directory, out
        self.pki, self.keys, self.logs = directory / "pki", directory / "keys", directory / "logs"
        self.db = directory / "fleet.db"
        protocols = list(PROTOCOLS)
        self.devices = [Device(f"pi-{i:03d}", protocols[(i - 1) % len(protocols)], i, directory / f"pi-{i:03d}")
                        for i in range(1, devices + 1)]
        self.children: list[Child] = []
        self.broker: BrokerProcess | None = None
        self.found: dict = {}  # what the report gives: counts, the rollout's outcomes, the dashboard

    def start(self, name: str, command: str, args: list) -> Child:
        """Start ``command args`` as the child ``name``, logged to ``logs/NAME.log``."""
        child = Child(name, argv(command, args), self.logs / f"{name.replace(' ', '-')}.log")
        self.children.append(child)
        return child

    def identity(self, name: str) -> list:
        """The ``--broker ... --key`` options of a ``raman-fleet`` command acting as identity ``name``."""
        return ["--broker", self.broker.host, "--port", self.broker.port, "--ca", self.pki / "ca.pem",
                "--cert", self.pki / f"{name}.pem", "--key", self.pki / f"{name}.key"]

    def run(self) -> None:
        """Every step in turn; CheckFailed at the first check that does not hold."""
        self.make_identities()
        new = self.make_bundles()
        self.start_broker()
        self.start_collector()
        self.start_devices()
        self.measure(COMMANDS)
        self.check_central("every measurement once")
        self.send_again(self.devices[0])
        self.roll_out(new)
        self.measure(("MEASURE",))
        self.check_central(f"every measurement once, each device's last by {new.model_id}",
                           lambda stored: all(any(m["device"] == d.name and m["model"] == new.model_id
                                                  for m in stored) for d in self.devices))
        self.open_dashboard()

    def make_identities(self) -> None:
        """The fleet's PKI: the CA, the broker, the collector, the administrator and one identity per device."""
        self.logs.mkdir(parents=True)
        pki.init(self.pki)
        names = [pki.COLLECTOR, pki.ADMIN] + [d.name for d in self.devices]
        for name in names:
            pki.issue_client(self.pki, name)
        self.out(f"pki: CA, broker (localhost, {HOST}), {', '.join(names)} in {self.pki}")
        self.broker = BrokerProcess(self.pki, self.directory / "broker", free_port(HOST), HOST)  # needs Mosquitto

    def make_bundles(self):
        """The signing key pair; a signed copy of the shipped model and library per device, and the new model."""
        self.out(run_command("raman-train", ["keygen", "--out", self.keys]).strip())
        new = renamed_model(load_bundle(MODEL), self.directory / "rollout" / NEW_MODEL, NEW_MODEL)
        signed = [new.path]
        for d in self.devices:
            for source, kind in ((MODEL, "models"), (LIBRARY, "libraries")):
                shutil.copytree(source, d.data / kind / "current")
                signed.append(d.data / kind / "current")
        run_command("raman-train", ["sign", "--key", self.keys / "fleet-signing.key", *signed])
        self.out(f"signed: {MODEL.name} and its library for each device, and {new.model_id} to roll out")
        return new

    def start_broker(self) -> None:
        """Mosquitto with the fleet's configuration, serving TLS."""
        self.broker.start()
        self.out(f"broker: mosquitto on {HOST}:{self.broker.port} ({self.broker.conf})")

    def start_collector(self) -> None:
        """``raman-fleet collect``, subscribed before any device measures (its session then queues everything)."""
        collector = self.start("collector", "raman-fleet", ["collect", "--db", self.db, *self.identity(pki.COLLECTOR)])
        self.out(f"collector: {collector.wait_for('collect: subscribed')[len('collect: '):]}, into {self.db}")

    def start_devices(self) -> None:
        """Each device's service, ready, then its uplink, connected."""
        services = []
        for d in self.devices:
            d.config.write_text(d.config_text(self.broker, self.keys / "fleet-signing.pub"))
            services.append(self.start(f"{d.name} service", "raman-device", ["run", "--config", d.config]))
        for d, service in zip(self.devices, services):
            ready = service.wait_for("ready:")
            self.out(f"{d.name}: {d.protocol} simulator (seed {d.seed}), service {ready}")
        uplinks = [self.start_uplink(d) for d in self.devices]
        for uplink in uplinks:
            uplink.wait_for("uplink: connected")
        self.out(f"uplinks: {len(uplinks)} connected to the broker")

    def start_uplink(self, device: Device) -> Child:
        """``raman-edge-uplink`` of ``device``."""
        return self.start(f"{device.name} uplink", "raman-edge-uplink", ["--config", device.config])

    def measure(self, commands: tuple) -> None:
        """Send ``commands`` to every device's service, the devices at once; CheckFailed if one is not answered."""
        def one(d: Device) -> list:
            return [(text, d.command(text)) for text in commands]

        with ThreadPoolExecutor(len(self.devices)) as pool:
            for d, replies in zip(self.devices, pool.map(one, self.devices)):
                for text, r in replies:
                    if not r.get("ok"):
                        raise CheckFailed(f"{d.name}: {text} was answered with an error: {r.get('error')}")
                    confidence = "" if r.get("confidence") is None else f" ({r['confidence']:.2f})"
                    by = r.get("model") or f"library {r.get('library')}"  # a classification's model, or the library
                    self.out(f"{d.name}: {text:16s} -> #{r['id']} {r['verdict']}{confidence}, {by}")

    def stored(self) -> list:
        """Every measurement in the fleet database, without its arrays."""
        database = FleetDatabase(self.db)
        try:
            return database.measurements()
        finally:
            database.close()

    def check_central(self, what: str, also=lambda stored: True) -> None:
        """Wait until the fleet database holds exactly the devices' recorded measurements, once each (and ``also``)."""
        start = time.monotonic()

        def complete():
            expected = set().union(*(d.recorded() for d in self.devices))
            stored = self.stored()
            names = [(m["device"], m["store"], m["record_id"]) for m in stored]
            return (expected, names) if set(names) == expected and also(stored) else None

        expected, names = wait_until(complete, f"the fleet database did not hold {what}")
        if len(names) != len(set(names)):
            raise CheckFailed(f"the fleet database holds {len(names) - len(set(names))} measurement(s) twice")
        self.found.update(recorded=len(expected), stored=len(names))
        self.out(f"central: {len(names)} of {len(expected)} recorded measurements stored, each once "
                 f"({time.monotonic() - start:.1f} s)")

    def status_of(self, device: str) -> dict:
        """``device``'s latest status in the fleet database (empty before its first)."""
        database = FleetDatabase(self.db)
        try:
            return next((d["status"] or {} for d in database.devices() if d["device"] == device), {})
        finally:
            database.close()

    def send_again(self, device: Device) -> None:
        """Restart ``device``'s uplink without its cursor: it sends every measurement again; each is stored once.

        This is a power cut between the broker's acknowledgement and the cursor's write. The uplink's status
        says ``sent`` up to the last once the broker acknowledged every one again, and it is published after
        them, so once the fleet database has it the collector has had each duplicate.
        """
        uplink = next(c for c in self.children if c.name == f"{device.name} uplink")
        self.children.remove(uplink)
        if uplink.stop():
            raise CheckFailed(f"{device.name}'s uplink did not stop cleanly (exit status {uplink.proc.returncode})")
        (device.data / CURSOR_FILE).unlink()
        restarted, count = time.time(), len(device.recorded())
        self.start_uplink(device).wait_for("uplink: connected")
        wait_until(lambda: (s := self.status_of(device.name)).get("time", 0) >= restarted and s.get("sent") == count,
                   f"{device.name}'s uplink, restarted without its cursor, did not report all {count} sent again")
        self.found["duplicates"] = count
        self.out(f"{device.name}: uplink restarted without its cursor sent its {count} measurements again")
        self.check_central("every measurement once after the duplicates")

    def roll_out(self, new) -> None:
        """``raman-fleet rollout --all`` of the signed ``new`` model; each device installs it and serves it.

        With ``--all`` the command cannot know when every device has answered, so it only publishes
        (``--wait 0``) and the outcomes are watched where the administrator sees them: the fleet database.
        """
        line = run_command("raman-fleet", ["rollout", new.path, "--all", "--wait", 0, *self.identity(pki.ADMIN)])
        line = line.strip().splitlines()[0]
        self.out(line)
        rollout = re.match(r"rollout (\S+):", line).group(1)

        def outcomes():
            found = {d.name: self.status_of(d.name).get("rollout") or {} for d in self.devices}
            return found if all(o.get("id") == rollout and o.get("result") in ("installed", "refused")
                                for o in found.values()) else None

        found = wait_until(outcomes, f"not every device reported the outcome of rollout {rollout}")
        self.found["rollout"] = {"id": rollout, "outcomes": found}
        for d in self.devices:
            outcome, serving = found[d.name], d.command("MODEL").get("model")
            self.out(f"{d.name}: rollout {outcome['result']} {outcome['bundle']}"
                     + (f" ({outcome['reason']})" if outcome.get("reason") else "") + f"; serving {serving}")
            if outcome["result"] != "installed" or outcome["bundle"] != new.model_id or serving != new.model_id:
                raise CheckFailed(f"{d.name} does not serve the rolled-out {new.model_id} (it serves {serving})")

    def open_dashboard(self) -> None:
        """``raman-fleet serve`` with a token; its devices page and one measurement's page, each with the names."""
        token_file = self.directory / "dashboard.token"
        token = secrets.token_hex(24)
        token_file.write_text(token + "\n")
        token_file.chmod(0o600)
        dashboard = self.start("dashboard", "raman-fleet", ["serve", "--db", self.db, "--host", HOST, "--port",
                                                            free_port(HOST), "--token-file", token_file])
        url = re.search(r"http://\S+/", dashboard.wait_for("serve:")).group(0)
        last = self.stored()[0]
        pages = {url: [d.name for d in self.devices], f"{url}measurements/{last['seq']}": [last["device"]]}
        for page, names in pages.items():
            request = urllib.request.Request(page, headers={"Authorization": f"Bearer {token}"})
            try:
                with urllib.request.urlopen(request, timeout=TIMEOUT) as response:
                    status, text = response.status, response.read().decode()
            except urllib.error.HTTPError as exc:
                status, text = exc.code, ""
            except urllib.error.URLError as exc:
                raise CheckFailed(f"the dashboard does not answer at {page} ({exc.reason})") from None
            absent = [n for n in names if n not in text]
            if status != 200 or absent:
                raise CheckFailed(f"the dashboard's {page} answered {status}" + (f" without {', '.join(absent)}"
                                                                                 if absent else ""))
            self.out(f"dashboard: {page} 200, shows {', '.join(names)}")
        self.found["dashboard"] = {"url": url, "token": token, "token_file": token_file}

    def report(self) -> str:
        """The report: the fleet's status table, the counts, the rollout's outcomes, the dashboard."""
        status = run_command("raman-fleet", ["status", "--db", self.db]).rstrip()
        f, by_outcome = self.found, {}
        for device, o in sorted(f["rollout"]["outcomes"].items()):
            by_outcome.setdefault(f"{o['result']} {o['bundle']}", []).append(device)
        outcomes = "; ".join(f"{outcome} on {', '.join(names)}" for outcome, names in by_outcome.items())
        dashboard = f["dashboard"]
        return (f"{status}\n\nrecorded on the devices: {f['recorded']}; stored centrally: {f['stored']}; "
                f"duplicates dropped: {f['duplicates']}\nrollout {f['rollout']['id']}: {outcomes}\n"
                f"dashboard: {dashboard['url']} (token {dashboard['token']}, in {dashboard['token_file']})")

    def stop(self) -> list[str]:
        """Stop every process, the last started first, then the broker; the ones that did not stop cleanly."""
        unclean = []
        for child in reversed(self.children):
            code = child.stop()
            if code and child.name != "dashboard":  # the dashboard has no clean stop of its own: SIGTERM ends it
                unclean.append(f"{child.name} ({code})")
        self.children.clear()
        if self.broker is not None:
            self.broker.stop()
        return unclean


def _interrupt(signum, frame) -> None:
    """SIGTERM as Ctrl-C: the fleet is stopped in order either way."""
    raise KeyboardInterrupt


def run_fleet_demo(devices: int, keep: Path | None = None, serve: bool = False, out=print) -> int:
    """Run the fleet demo with ``devices`` devices; 0 if every check passed, 1 (saying which failed) if not.

    Parameters
    ----------
    devices : int
        How many simulated devices, 1 or more.
    keep : Path or None
        The directory to run in and keep (new or empty); None: a temporary one, removed at the end
        (kept when a check failed, for its logs).
    serve : bool
        Keep the fleet running after the report until Ctrl-C or SIGTERM (to open the dashboard).
    out : callable
        Where progress and the report go.

    Raises
    ------
    RamanEdgeError
        ``keep`` is not empty, or Mosquitto is not installed (BrokerConfigError).
    """
    if devices < 1:
        raise RamanEdgeError(f"--devices {devices}: give 1 or more")
    if keep is not None and keep.exists() and any(keep.iterdir()):
        raise RamanEdgeError(f"{keep} is not empty; give a new or empty directory to --keep")
    directory = (keep or Path(tempfile.mkdtemp(prefix="raman-fleet-demo-"))).resolve()
    directory.mkdir(parents=True, exist_ok=True)
    signal.signal(signal.SIGTERM, _interrupt)
    out(f"fleet demo: {devices} device(s) in {directory}")
    started, demo, failure, reported = time.monotonic(), FleetDemo(directory, devices, out), None, False
    try:
        demo.run()
        out("\n" + demo.report())
        reported, took = True, time.monotonic() - started
        if serve:
            out("serving until Ctrl-C: open the dashboard with its token")
            signal.pause()
    except CheckFailed as exc:
        failure = str(exc)
    except KeyboardInterrupt:
        failure = None if reported else "interrupted"
    finally:
        unclean = demo.stop()
        failure = failure or (f"not stopped cleanly: {', '.join(unclean)}" if unclean else None)
        if keep is None and failure is None:
            shutil.rmtree(directory)
    if failure is not None:
        out(f"fleet demo FAILED: {failure} (logs in {directory / 'logs'})")
        return 1
    out(f"fleet demo complete in {took:.0f} s: every check passed"
        + (f"; everything is kept in {directory}" if keep else ""))
    return 0
