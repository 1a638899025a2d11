"""``python -m tools unit-test``: the shipped systemd unit under a real systemd, PID 1 of a container.

The offline installer for this machine (:func:`tools.installer.build`, target ``host``) is installed as
docs/board.md says (``sudo ./install.sh`` by the operator ``pi``) in a Debian bookworm root booted with
``systemd-nspawn --boot``: systemd 252 as PID 1, a network interface of its own (``host0``, not connected:
the container is offline) and the host's kernel, so the unit's sandbox (namespaces, seccomp, the device
cgroup) is built for real. The spectrometer is ``raman-bridge simulate`` on a pty, a unit of its own; the
configuration is the installer's example with that port, the TFLite backend and no GPIO pins (there is no
GPIO in the container) but for the last check. Then named checks, each PASS or FAIL with what was observed:

========================  ===========================================================================
install                   ``install.sh`` as the operator, with sudo, exit status 0
readiness                 ``systemctl start`` returns after READY=1 (Type=notify): active (running)
measurement and record    a MEASURE through the control socket has a verdict; ``history`` lists it
TFLite under MDWE         the service classifies with LiteRT while MemoryDenyWriteExecute is in effect
no network                the service's network namespace has only ``lo``; the container's has ``host0``
read-only system          ``/`` is read-only for the service, its state directory writable
board detection           the service's user reads ``/proc/cpuinfo`` (gpiozero), and sees no other user's process
exposure                  ``systemd-analyze security`` scores the running unit at most :data:`MAX_EXPOSURE`
reader with network       a second unit, with network, reads the record while the service runs
restart after a crash     SIGKILL of the main process: systemd starts a new one, active again
watchdog                  a main process that hangs (SIGSTOP) is killed by the watchdog and restarted
clean stop                ``systemctl stop`` during a measurement: exit status 0, laser off at the end
GPIO start-up failure     the example's GPIO pins, no GPIO here: one line, exit status 6, no restart; with
                          ``WorkingDirectory=/`` lgpio complains of its pipe (the negative control)
========================  ===========================================================================

The root is made once with debootstrap and kept in the cache directory (``build/roots`` of the checkout;
a marker file says it is complete); each run boots a throw-away overlay of it, removed at the end, also
on failure or Ctrl-C. Needs root, network for apt and PyPI, and ``systemd-container`` and
``debootstrap`` (installed with apt-get when missing). The page docs/unit-test.md has a measured run.
"""
from __future__ import annotations

import json
import os
import platform
import re
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from device.errors import RamanEdgeError
from device.service.config import parse_config
from device.service.control import SOCKET_FILE
from device.service.install import CONFIG, DATA, PREFIX, SERVICE, USER
from device.service.record import RECORD_FILE
from device.service.runner import gpio_pins
from tools.board.roots import ensure_commands, require_root, root_file_system
from tools.installer import build

RELEASE = "bookworm"
#: The container root's packages beyond debootstrap's minbase (procps for ``kill``).
PACKAGES = ("systemd", "systemd-sysv", "dbus", "python3", "sudo", "procps")
#: The commands this needs on the host besides debootstrap, and the Debian package of each.
HOST_TOOLS = {"systemd-nspawn": "systemd-container", "nsenter": "util-linux", "mount": "mount"}
#: The Python of bookworm, which the host installer's wheels (built for this interpreter) must match.
PYTHON = (3, 11)
OPERATOR = "pi"
HOSTNAME = "raman-edge-test"
PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
SIMULATOR, READER = "raman-edge-sim", "raman-edge-reader"
#: The simulated spectrometer's pty, by a name that stays (a link the simulator makes, as udev would).
PORT = Path("/run/raman-edge-sim/spectrometer")
#: What the simulator prints: the pty, then each change of its laser.
SIMULATOR_OUTPUT = Path("/var/log/raman-edge-sim.log")
RECORD = DATA / RECORD_FILE
#: The watchdog period of the watchdog check, s (the unit's own is 30 s).
WATCHDOG_S = 3
#: Highest accepted overall exposure of ``systemd-analyze security`` (0 safest, 10 unprotected).
MAX_EXPOSURE = 2.0
#: Longest wait for anything in the container (boot, a restart, a reply), s.
TIMEOUT = 90.0
UNITS = Path("/etc/systemd/system")

SIMULATOR_UNIT = f"""\
[Unit]
Description=Simulated OBP spectrometer on a pty as {PORT} (raman-edge unit test)

[Service]
# The pty belongs to the process that opens it: the service's user may then use it, as dialout a ttyUSB.
User={USER}
RuntimeDirectory={PORT.parent.name}
Environment=PYTHONUNBUFFERED=1
# A file, not the journal (which tells followers of new lines up to a quarter second late): each
# "laser on" / "laser off" is seen at once.
StandardOutput=truncate:{SIMULATOR_OUTPUT}
ExecStart={PREFIX}/venv/bin/raman-bridge simulate --protocol obp --instant --link {PORT}
"""
READER_UNIT = f"""\
[Unit]
Description=Reads the raman-edge record, with network: a stand-in for a fleet uplink (raman-edge unit test)

[Service]
Type=oneshot
User={USER}
ProtectSystem=strict
ExecStart=/bin/cat /proc/self/net/dev
ExecStart={PREFIX}/venv/bin/raman-device history --db {RECORD}
"""
#: Drop-ins of the service for the test: the simulator's pty is a char-pts device, not a serial line.
TEST_DROP_IN = ("unit-test.conf", "[Service]\n# The simulated spectrometer's pty (raman-edge-sim.service).\n"
                                  "DeviceAllow=char-pts rw\n")
WATCHDOG_DROP_IN = ("unit-test-watchdog.conf", f"[Service]\nWatchdogSec={WATCHDOG_S}\n")
#: A working directory the service may not write, as the unit had before it had one of its own: the GPIO
#: check's negative control (lgpio then cannot make its notification pipe, and says so).
NO_WORKDIR_DROP_IN = ("unit-test-no-workdir.conf", "[Service]\nWorkingDirectory=/\n")


class CheckFailed(RamanEdgeError):
    """What a check observed instead of what it expected."""


def expect(condition, message: str) -> None:
    """Raise :class:`CheckFailed` with ``message`` unless ``condition``."""
    if not condition:
        raise CheckFailed(message)


def wait_for(predicate, what: str, timeout: float = TIMEOUT):
    """Poll ``predicate()`` every 0.1 s until it returns something true, and return that; fail after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while not (value := predicate()):
        if time.monotonic() > deadline:
            raise CheckFailed(f"{what}: not within {timeout:g} s")
        time.sleep(0.1)
    return value


def host_tools() -> None:
    """Make sure this runs as root, with bookworm's Python, and has :data:`HOST_TOOLS` (apt-get installs them)."""
    require_root()
    if sys.version_info[:2] != PYTHON:
        raise RamanEdgeError(f"run it with Python {'.'.join(map(str, PYTHON))}, bookworm's: the host installer's "
                             f"wheels are for the Python that builds it, here {sys.version.split()[0]}")
    ensure_commands(HOST_TOOLS)


def operator_account(tree: Path) -> None:
    """Give the system at ``tree`` its host name and the operator ``pi`` with sudo, as a board has them."""
    (tree / "etc" / "hostname").write_text(HOSTNAME + "\n")
    with open(tree / "etc" / "hosts", "a") as hosts:
        hosts.write(f"127.0.1.1\t{HOSTNAME}\n")
    r = subprocess.run(["chroot", str(tree), "useradd", "--create-home", "--groups", "sudo", "--shell", "/bin/bash",
                        OPERATOR], capture_output=True, text=True)
    if r.returncode != 0:
        raise RamanEdgeError(f"making the user {OPERATOR} failed: {r.stderr.strip()}")
    sudoers = tree / "etc" / "sudoers.d" / OPERATOR
    sudoers.write_text(f"{OPERATOR} ALL=(ALL) NOPASSWD: ALL\n")  # as the first user of Raspberry Pi OS
    sudoers.chmod(0o440)


def test_config(example: str, pins: bool = False) -> str:
    """The installer's example configuration with the simulator's port and the TFLite backend.

    Its GPIO pins stay only with ``pins``: there is no GPIO in the container.
    """
    text, ports = re.subn(r"(?m)^port = .*$", f'port = "{PORT}"', example)
    text, backends = re.subn(r'(?m)^backend = "numpy"', 'backend = "tflite"', text)
    if not pins:
        text = re.sub(r"(?m)^\w+_pin = .*\n", "", text)
    config = parse_config(text, CONFIG)
    if ports != 1 or backends != 1 or config.spectrometer.port != str(PORT) or config.model.backend != "tflite" \
            or bool(gpio_pins(config)) != pins:
        raise RamanEdgeError("the example configuration deploy/raman-edge.toml no longer has the port, backend and "
                             "pin lines this expects; update test_config")
    return text


class Container:
    """A root booted with systemd as PID 1 by systemd-nspawn, on a throw-away overlay (a context manager).

    ``tree`` is the container's file system as the host sees it; :meth:`run` runs a command inside.
    """

    def __init__(self, root: Path, scratch: Path, log):
        self.root, self.scratch, self.log = root, scratch, log
        self.tree = scratch / "tree"
        self.nspawn: subprocess.Popen | None = None
        self.pid1: int | None = None
        self._mounted = False

    def __enter__(self) -> "Container":
        for d in ("upper", "work", "tree"):
            (self.scratch / d).mkdir(parents=True)
        options = f"lowerdir={self.root},upperdir={self.scratch / 'upper'},workdir={self.scratch / 'work'}"
        r = subprocess.run(["mount", "-t", "overlay", "overlay", "-o", options, str(self.tree)], capture_output=True,
                           text=True)
        if r.returncode != 0:
            raise RamanEdgeError(f"cannot mount an overlay of {self.root}: {r.stderr.strip()}")
        self._mounted = True
        return self

    def boot(self) -> str:
        """Boot the container; the state systemd reaches (running, or degraded with the failed units named)."""
        console = open(self.scratch / "console.log", "w")
        self.nspawn = subprocess.Popen(
            ["systemd-nspawn", "--directory", str(self.tree), "--boot", f"--machine={HOSTNAME}", "--register=no",
             "--keep-unit", "--network-veth", "--capability=all", "--system-call-filter=bpf", "--console=pipe"],
            stdin=subprocess.DEVNULL, stdout=console, stderr=subprocess.STDOUT, start_new_session=True,
            env={**os.environ, "SYSTEMD_NSPAWN_UNIFIED_HIERARCHY": "1"})
        console.close()
        self.pid1 = wait_for(self._find_pid1, "the container's systemd (PID 1)", 30)
        deadline = time.monotonic() + TIMEOUT
        while True:  # systemctl answers once PID 1 has its socket; --wait, until the boot is over
            r = self.run("systemctl", "is-system-running", "--wait", check=False)
            state = r.stdout.strip()
            if state in ("running", "degraded") or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        if state == "degraded":
            state += ": " + self.run("systemctl", "--failed", "--plain", "--no-legend").stdout.strip()
        elif state != "running":
            console = (self.scratch / "console.log").read_text()[-2000:]
            raise RamanEdgeError(f"the container did not come up (systemd: {state or r.stderr.strip()}); its "
                                 f"console:\n{console}")
        return state

    def _find_pid1(self) -> int | None:
        if self.nspawn.poll() is not None:
            raise RamanEdgeError(f"systemd-nspawn exited with status {self.nspawn.returncode}: "
                                 + (self.scratch / "console.log").read_text()[-2000:])
        for task in Path(f"/proc/{self.nspawn.pid}/task").iterdir():
            for child in (task / "children").read_text().split():
                if Path(f"/proc/{child}/comm").read_text().strip() == "systemd":
                    return int(child)
        return None

    def command(self, *cmd: str) -> list[str]:
        """The host command line that runs ``cmd`` in the container, as its root, with a clean environment."""
        return ["nsenter", "--target", str(self.pid1), "--all", "--", "env", "-i", f"PATH={PATH}", "LANG=C.UTF-8",
                *cmd]

    def run(self, *cmd: str, check: bool = True, timeout: float = TIMEOUT) -> subprocess.CompletedProcess:
        """Run ``cmd`` in the container; with ``check``, fail (:class:`CheckFailed`) on a non-zero exit status."""
        r = subprocess.run(self.command(*cmd), capture_output=True, text=True, timeout=timeout, start_new_session=True)
        if check and r.returncode != 0:
            raise CheckFailed(f"'{shlex.join(cmd)}' failed ({r.returncode}): {(r.stderr or r.stdout).strip()}")
        return r

    def operator(self, script: str, check: bool = True) -> subprocess.CompletedProcess:
        """Run the shell ``script`` as the operator, logged in (their PATH, groups and home)."""
        return self.run("runuser", "--login", OPERATOR, "--command", script, check=check)

    def write(self, path: Path, text: str) -> None:
        """Write a file of the container."""
        dest = self.tree / path.relative_to("/")
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.write_text(text)

    def __exit__(self, *exc) -> None:
        if self.nspawn is not None and self.nspawn.poll() is None:
            if self.pid1 is not None:
                subprocess.run(self.command("systemctl", "poweroff"), capture_output=True, timeout=30)
            try:
                self.nspawn.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.nspawn.terminate()
                try:
                    self.nspawn.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    self.nspawn.kill()
                    self.nspawn.wait()
        if self._mounted:
            if subprocess.run(["umount", str(self.tree)], capture_output=True).returncode != 0:
                subprocess.run(["umount", "--lazy", str(self.tree)], capture_output=True)
            self._mounted = False
        shutil.rmtree(self.scratch, ignore_errors=True)
        self.log(f"end      container stopped, {self.scratch} unmounted and removed")


@dataclass
class Result:
    """One check: its name, whether it passed, how long it took (s) and what was observed."""

    name: str
    ok: bool | None  # None: not run
    seconds: float
    detail: str


class UnitTest:
    """The checks, in order, on an installed container ``c``; results in :attr:`results`.

    ``gpio_config`` is the configuration of the GPIO check: the example's, pins and all.
    """

    def __init__(self, c: Container, log, gpio_config: str):
        self.c, self.log, self.gpio_config = c, log, gpio_config
        self.results: list[Result] = []

    # -- observing the container ---------------------------------------------------------------
    def show(self, unit: str, *properties: str) -> dict:
        """``systemctl show`` of ``properties`` of ``unit``."""
        out = self.c.run("systemctl", "show", unit, *(f"--property={p}" for p in properties)).stdout
        return dict(line.split("=", 1) for line in out.splitlines() if "=" in line)

    def main_pid(self) -> int:
        """The service's main PID (0 when it has none)."""
        return int(self.show(SERVICE, "MainPID")["MainPID"])

    def service_pid(self) -> int:
        """The service's main PID; fails the check when it has none (never a PID 0 to send a signal to)."""
        pid = self.main_pid()
        expect(pid > 0, f"the service has no main process: {self.show(SERVICE, 'ActiveState')['ActiveState']}")
        return pid

    def running(self) -> bool:
        """Whether the service is active (running)."""
        s = self.show(SERVICE, "ActiveState", "SubState")
        return (s["ActiveState"], s["SubState"]) == ("active", "running")

    def journal(self, *matches: str, cursor: str | None = None) -> list[str]:
        """The container's journal messages for ``matches`` (``-u UNIT``, ``_PID=N``), after ``cursor``."""
        after = [f"--after-cursor={cursor}"] if cursor else []
        return self.c.run("journalctl", "--no-pager", "--output=cat", *after, *matches).stdout.splitlines()

    def cursor(self) -> str:
        """The journal's current end, for :meth:`journal`."""
        out = self.c.run("journalctl", "--lines=0", "--show-cursor", "--no-pager").stdout
        return out.split("-- cursor: ", 1)[1].strip()

    def journal_entries(self, cursor: str, *matches: str) -> list[dict]:
        """The journal's entries (every field) for ``matches`` after ``cursor`` whose message is text."""
        out = self.c.run("journalctl", "--no-pager", "--output=json", f"--after-cursor={cursor}", *matches).stdout
        return [e for e in map(json.loads, out.splitlines()) if isinstance(e.get("MESSAGE"), str)]

    def journal_times(self, cursor: str, *matches: str) -> list[tuple[float, str]]:
        """(time, message) of the journal entries for ``matches`` after ``cursor``; time in s since the epoch."""
        return [(int(e["__REALTIME_TIMESTAMP"]) / 1e6, e["MESSAGE"]) for e in self.journal_entries(cursor, *matches)]

    def wait_journal(self, cursor: str, text: str, timeout: float = 10.0) -> list[str]:
        """The service's journal lines after ``cursor`` with ``text``, waited for; the failure shows the journal."""
        deadline = time.monotonic() + timeout
        while True:
            lines = self.journal(f"--unit={SERVICE}", cursor=cursor)
            found = [line for line in lines if text in line]
            if found:
                return found
            expect(time.monotonic() < deadline, f"no '{text}' in the journal within {timeout:g} s; it has: "
                   + " | ".join(lines[-8:]))
            time.sleep(0.1)

    def laser(self) -> list[str]:
        """The simulator's ``laser on`` / ``laser off`` lines so far (read at once: its output is a file)."""
        output = self.c.tree / SIMULATOR_OUTPUT.relative_to("/")
        return [line for line in output.read_text().splitlines() if line.startswith("laser ")]

    def measure(self, command: str = "MEASURE") -> dict:
        """The service's reply to ``command`` through its control socket, asked by the operator."""
        r = self.c.operator(f"raman-device measure --config {CONFIG} --command {command}", check=False)
        try:
            return json.loads(r.stdout)
        except json.JSONDecodeError:
            raise CheckFailed(f"raman-device measure: no reply ({r.returncode}): {r.stderr.strip()}") from None

    def new_main_pid(self, old: int, what: str) -> int:
        """Wait for the service to be active (running) with a main PID other than ``old``; that PID."""
        return wait_for(lambda: (pid := self.main_pid()) not in (0, old) and self.running() and pid, what)

    # -- running the checks ----------------------------------------------------------------------
    def check(self, name: str, func) -> bool:
        """Run one check, print PASS or FAIL with its observation; whether it passed."""
        t0 = time.monotonic()
        try:
            ok, detail = True, func()
        except Exception as exc:  # any failure of a check is its FAIL, and the run goes on
            ok, detail = False, f"{type(exc).__name__}: {exc}" if not isinstance(exc, CheckFailed) else str(exc)
        self.results.append(Result(name, ok, time.monotonic() - t0, detail))
        self.log(f"{'PASS' if ok else 'FAIL'}  {name} ({self.results[-1].seconds:.1f} s): {detail}")
        return ok

    def run_all(self, installer: str) -> None:
        """Every check, in order; after a failed install or simulator the rest are not run."""
        steps = [("install", lambda: self.install(installer)), ("simulator", self.simulator),
                 ("readiness", self.readiness), ("measurement and record", self.measurement),
                 ("TFLite under MDWE", self.tflite), ("no network", self.no_network),
                 ("read-only system", self.read_only), ("board detection", self.board_detection),
                 ("exposure", self.exposure),
                 ("reader with network", self.reader), ("restart after a crash", self.crash),
                 ("watchdog", self.watchdog), ("clean stop", self.clean_stop),
                 ("GPIO start-up failure", self.gpio_failure)]
        for k, (name, func) in enumerate(steps):
            if not self.check(name, func) and k < 2:
                self.results += [Result(n, None, 0.0, "not run") for n, _ in steps[k + 1:]]
                return

    # -- the checks ------------------------------------------------------------------------------
    def install(self, installer: str) -> str:
        """``sudo ./install.sh`` by the operator, then the test's units and drop-ins."""
        r = self.c.operator(f"cd ~/{installer} && sudo ./install.sh --config ~/unit-test.toml --operator {OPERATOR}",
                            check=False)
        expect(r.returncode == 0, f"install.sh failed ({r.returncode}): {(r.stderr + r.stdout).strip()[-2000:]}")
        drop_ins = [TEST_DROP_IN]
        for name, text in drop_ins:
            self.c.write(UNITS / f"{SERVICE}.service.d" / name, text)
        self.c.write(UNITS / f"{SIMULATOR}.service", SIMULATOR_UNIT)
        self.c.write(UNITS / f"{READER}.service", READER_UNIT)
        self.c.run("systemctl", "daemon-reload")
        steps = [line.split(None, 1)[1] for line in r.stdout.splitlines() if line.startswith("ran ")]
        return f"install.sh ran {len(steps)} system steps ({'; '.join(steps)}); drop-ins " + \
            ", ".join(name for name, _ in drop_ins)

    def simulator(self) -> str:
        """The simulated spectrometer's unit, started; its pty reachable as :data:`PORT`."""
        self.c.run("systemctl", "start", SIMULATOR)
        wait_for(lambda: self.c.run("test", "-L", str(PORT), check=False).returncode == 0, f"the link {PORT}", 30)
        wait_for(lambda: (self.c.tree / SIMULATOR_OUTPUT.relative_to("/")).is_file(), f"{SIMULATOR_OUTPUT}", 10)
        banner = (self.c.tree / SIMULATOR_OUTPUT.relative_to("/")).read_text().splitlines()[0]
        return f"{SIMULATOR}.service: {banner}"

    def readiness(self) -> str:
        """``systemctl start`` returns once the service said READY=1, and it is active (running)."""
        self.c.run("systemctl", "enable", SERVICE)
        cursor = self.cursor()
        t0 = time.monotonic()
        started = self.c.run("systemctl", "start", SERVICE, check=False)
        waited = time.monotonic() - t0
        if started.returncode != 0:
            raise CheckFailed(f"systemctl start failed ({started.returncode}); the journal: "
                              + " | ".join(self.journal(f"--unit={SERVICE}", cursor=cursor)[-4:]))
        s = self.show(SERVICE, "Type", "ActiveState", "SubState", "StatusText", "MainPID",
                      "ExecMainStartTimestampMonotonic", "ActiveEnterTimestampMonotonic")
        expect((s["ActiveState"], s["SubState"]) == ("active", "running"),
               f"right after systemctl start: {s['ActiveState']} ({s['SubState']})")
        expect(s["Type"] == "notify" and s["StatusText"], f"Type={s['Type']}, no status from sd_notify")
        to_ready = (int(s["ActiveEnterTimestampMonotonic"]) - int(s["ExecMainStartTimestampMonotonic"])) / 1e6
        expect(waited >= to_ready > 0, f"systemctl start returned after {waited:.2f} s, READY after {to_ready:.2f} s")
        ready = wait_for(lambda: [line for line in self.journal(f"_PID={s['MainPID']}") if line.startswith("ready:")],
                         "the main process's 'ready:' line in the journal", 10)
        return (f"Type=notify; systemctl start returned after {waited:.2f} s, active (running) from READY=1 "
                f"{to_ready:.2f} s after exec; status '{s['StatusText']}'; journal: {ready[0]}")

    def measurement(self) -> str:
        """A MEASURE through the control socket has a verdict, and the record in the state directory lists it."""
        r = self.measure()
        expect(r.get("ok") and r.get("verdict"), f"MEASURE: {r}")
        state = self.show(SERVICE, "StateDirectory")["StateDirectory"]
        expect(DATA == Path("/var/lib") / state, f"StateDirectory={state}, the record is in {DATA}")
        listed = self.c.operator(f"sudo -u {USER} raman-device history --db {RECORD}").stdout
        rows = {row["id"]: row for row in map(json.loads, listed.splitlines())}
        expect(rows.get(r["id"], {}).get("verdict") == r["verdict"], f"history does not list {r['id']}: {listed}")
        return (f"socket {DATA / SOCKET_FILE}: measurement {r['id']} {r['verdict']} ({r['confidence']:.3f}); "
                f"history --db {RECORD} (StateDirectory={state}) lists it")

    def tflite(self) -> str:
        """The service classifies with LiteRT, in a process with MemoryDenyWriteExecute's seccomp filter."""
        model = self.measure("MODEL")
        expect(model.get("backend") == "tflite", f"MODEL: backend {model.get('backend')}")
        r = self.measure()
        expect(r.get("ok") and r.get("verdict"), f"MEASURE with TFLite: {r}")
        pid = self.service_pid()
        expect(self.show(SERVICE, "MemoryDenyWriteExecute")["MemoryDenyWriteExecute"] == "yes",
               "MemoryDenyWriteExecute is not set")
        status = dict(line.split(":\t", 1) for line in self.c.run("cat", f"/proc/{pid}/status").stdout.splitlines()
                      if ":\t" in line)
        expect(status.get("Seccomp") == "2", f"seccomp mode {status.get('Seccomp')}: no filter")
        maps = self.c.run("cat", f"/proc/{pid}/maps").stdout.splitlines()
        litert = {line.split()[-1] for line in maps if "ai_edge_litert" in line and line.split()[-1].endswith(".so")}
        expect(litert, "LiteRT is not loaded in the main process")
        wx = [line for line in maps if "w" in line.split()[1] and "x" in line.split()[1]]
        expect(not wx, f"writable and executable mappings: {wx}")
        return (f"MODEL backend tflite; measurement {r['id']} {r['verdict']} ({r['confidence']:.3f}); "
                f"MemoryDenyWriteExecute=yes, seccomp mode 2 ({status['Seccomp_filters']} filters), "
                f"{len(litert)} LiteRT librar{'y' if len(litert) == 1 else 'ies'} mapped, no mapping both writable "
                "and executable")

    def _interfaces(self, pid: int | str) -> list[str]:
        lines = self.c.run("cat", f"/proc/{pid}/net/dev").stdout.splitlines()[2:]
        return sorted(line.split(":")[0].strip() for line in lines)

    def no_network(self) -> str:
        """The service's network namespace is its own, with only ``lo``; the container's has ``host0``."""
        pid = self.service_pid()
        ns = self.c.run("readlink", f"/proc/{pid}/ns/net", "/proc/1/ns/net").stdout.split()
        service, container = self._interfaces(pid), self._interfaces(1)
        expect(ns[0] != ns[1], f"the service shares the container's network namespace {ns[1]}")
        expect(service == ["lo"], f"the service has the interfaces {service}")
        expect("host0" in container, f"the container has no interface but {container}")
        return f"main process {pid}: {ns[0]} with {', '.join(service)}; the container: {ns[1]} with " + \
            ", ".join(container)

    def read_only(self) -> str:
        """For the service ``/`` is mounted read-only (even root cannot write there), the data directory not."""
        pid = self.service_pid()
        mounts = {f[4]: f[5] for f in (line.split() for line in self.c.run("cat", f"/proc/{pid}/mountinfo").stdout
                                       .splitlines())}
        expect("ro" in mounts["/"].split(","), f"/ is mounted {mounts['/']} for the service")
        expect("rw" in mounts.get(str(DATA), "").split(","), f"{DATA} is not writable: {mounts.get(str(DATA))}")
        probe = PREFIX / "unit-test-probe"
        w = self.c.run("nsenter", f"--target={pid}", "--mount", "--", "sh", "-c", f": > {probe}", check=False)
        expect(w.returncode != 0 and "Read-only file system" in w.stderr,
               f"root writing {probe} in the service's mount namespace: {w.returncode} {w.stderr.strip()}")
        return (f"/ {mounts['/'].split(',')[0]}, {DATA} {mounts[str(DATA)].split(',')[0]} in the service's mounts; "
                f"even root cannot write {probe} there: {w.stderr.strip().split(': ')[-1]}")

    def board_detection(self) -> str:
        """The service's user reads ``/proc/cpuinfo`` (gpiozero tells the board by it), not others' processes."""
        pid = self.service_pid()
        uid, gid = (self.c.run("id", flag, USER).stdout.strip() for flag in ("-u", "-g"))
        as_service = ["nsenter", f"--target={pid}", "--mount", f"--setuid={uid}", f"--setgid={gid}", "--"]
        cpuinfo = self.c.run(*as_service, "head", "-c", "200", "/proc/cpuinfo", check=False)
        expect(cpuinfo.returncode == 0 and cpuinfo.stdout.strip(), f"/proc/cpuinfo for {USER}: {cpuinfo.stderr}")
        seen = sorted(int(n) for n in self.c.run(*as_service, "ls", "/proc").stdout.split() if n.isdigit())
        expect(1 not in seen and pid in seen, f"processes {USER} sees in /proc: {seen}")
        return (f"{USER} reads /proc/cpuinfo ({len(cpuinfo.stdout.splitlines())} lines at its head) in the service's "
                f"mounts and sees only its own processes ({', '.join(map(str, seen))}), not PID 1")

    def exposure(self) -> str:
        """``systemd-analyze security``'s overall exposure of the running unit, at most :data:`MAX_EXPOSURE`."""
        out = self.c.run("systemd-analyze", "security", "--no-pager", SERVICE, check=False).stdout
        m = re.search(r"Overall exposure level for \S+: ([0-9.]+) (\w+)", out)
        expect(m, f"no exposure level in: {out[-500:]}")
        expect(float(m.group(1)) <= MAX_EXPOSURE, f"exposure {m.group(1)} {m.group(2)} above {MAX_EXPOSURE}")
        open_items = [line.split()[1] for line in out.splitlines() if line.startswith("✗")]
        return f"systemd-analyze security {SERVICE}: {m.group(1)} {m.group(2)} ({len(open_items)} items open: " + \
            ", ".join(open_items) + ")"

    def reader(self) -> str:
        """A second unit, with network, lists the record while the service (without network) runs on."""
        pid = self.service_pid()
        expect(self.running(), "the service is not running")
        cursor = self.cursor()
        self.c.run("systemctl", "start", f"{READER}.service")
        expect(self.show(READER, "Result")["Result"] == "success", f"{READER} failed")
        lines = wait_for(lambda: (seen := self.journal(f"--unit={READER}", cursor=cursor)) and
                         any(line.startswith("Finished") for line in seen) and seen, f"{READER}'s output")
        interfaces = sorted(line.split(":")[0].strip() for line in lines if re.match(r"\s*\w+:\s+\d", line))
        rows = [json.loads(line) for line in lines if line.startswith("{")]
        expect("host0" in interfaces, f"the reader has no network: {interfaces}")
        expect(rows, f"the reader listed no measurement: {lines}")
        expect(self.main_pid() == pid and self.running(), "the service did not keep running")
        return (f"{READER}.service (User={USER}, interfaces {', '.join(interfaces)}) listed {len(rows)} "
                f"measurement(s) while the service ({pid}, interfaces lo) ran on")

    def crash(self) -> str:
        """A main process killed by SIGKILL is replaced by systemd (Restart=on-failure)."""
        pid = self.service_pid()
        cursor = self.cursor()
        t0 = time.monotonic()
        self.c.run("kill", "-KILL", str(pid))
        new = self.new_main_pid(pid, "a new main process")
        took = time.monotonic() - t0
        died = self.wait_journal(cursor, "Failed with result")
        expect("'signal'" in died[0], f"systemd: {died[0]}")
        return f"SIGKILL of {pid}: '{died[0]}'; new main process {new} active (running) after {took:.1f} s " + \
            f"(RestartSec={self.show(SERVICE, 'RestartUSec')['RestartUSec']})"

    def watchdog(self) -> str:
        """A main process that hangs (SIGSTOP) is killed by the watchdog (WatchdogSec=3 s here) and replaced."""
        name, text = WATCHDOG_DROP_IN
        self.c.write(UNITS / f"{SERVICE}.service.d" / name, text)
        self.c.run("systemctl", "daemon-reload")
        self.c.run("systemctl", "restart", SERVICE)
        expect(self.show(SERVICE, "WatchdogUSec")["WatchdogUSec"] == f"{WATCHDOG_S}s", "WatchdogSec not in effect")
        pid = self.service_pid()
        cursor = self.cursor()
        t0 = time.monotonic()
        self.c.run("kill", "-STOP", str(pid))
        new = self.new_main_pid(pid, "a new main process after the watchdog")
        took = time.monotonic() - t0
        self.wait_journal(cursor, "Watchdog timeout")
        said = [line for line in self.journal(f"--unit={SERVICE}", cursor=cursor)
                if "atchdog" in line or "Main process exited" in line]
        return f"SIGSTOP of {pid} (WatchdogSec={WATCHDOG_S}): " + "; ".join(f"'{line}'" for line in said) + \
            f"; new main process {new} active (running) {took:.1f} s after the SIGSTOP"

    def clean_stop(self) -> str:
        """``systemctl stop`` while the laser is on: the measurement finishes, exit status 0, laser off."""
        pid, before = self.service_pid(), len(self.laser())
        cursor = self.cursor()
        measuring = subprocess.Popen(self.c.command("runuser", "--login", OPERATOR, "--command",
                                                    f"raman-device measure --config {CONFIG}"),
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
        try:
            deadline = time.monotonic() + TIMEOUT
            while "laser on" not in self.laser()[before:]:  # polled fast: the laser is on for a tenth of a second
                expect(time.monotonic() < deadline and measuring.poll() is None,
                       f"the laser did not go on for the measurement: {self.laser()[before:]}")
                time.sleep(0.002)
            t0 = time.monotonic()
            self.c.run("systemctl", "stop", SERVICE)
            took = time.monotonic() - t0
            out, err = measuring.communicate(timeout=TIMEOUT)
        finally:
            if measuring.poll() is None:
                measuring.kill()
                measuring.wait()
        reply = json.loads(out) if out.strip() else {"error": err.strip()}
        s = self.show(SERVICE, "ActiveState", "Result", "ExecMainCode", "ExecMainStatus")
        expect(s["ActiveState"] == "inactive" and s["Result"] == "success", f"after the stop: {s}")
        expect((s["ExecMainCode"], s["ExecMainStatus"]) == ("1", "0"), f"the main process did not exit 0: {s}")
        expect(reply.get("ok"), f"the measurement in progress was not finished: {reply}")
        laser = self.laser()
        expect(laser[-1] == "laser off", f"the simulator's laser at the end: {laser[-1]}")
        times = self.journal_times(cursor, f"--unit={SERVICE}")
        sigterm = next(t for t, message in times if message.startswith("Stopping "))
        verdict = next(t for t, message in times if message.startswith(f"measurement {reply['id']}:"))
        when = (f"{1e3 * (verdict - sigterm):.0f} ms before its verdict" if verdict > sigterm else
                f"{1e3 * (sigterm - verdict):.0f} ms after its verdict")
        return (f"systemctl stop with the laser on for measurement {reply['id']} (SIGTERM {when}) returned after "
                f"{took:.2f} s; the measurement finished ({reply['verdict']}); main process {pid} exited with status "
                f"{s['ExecMainStatus']} ('{self.journal(f'_PID={pid}')[-1]}'), inactive; simulator: {laser[-1]} "
                f"(the last of {len(laser)} laser changes)")


    def _start_with_pins(self) -> tuple[subprocess.CompletedProcess, dict, list[str]]:
        """``systemctl start`` with :attr:`gpio_config`: the result, the unit's state, the service's own lines."""
        cursor = self.cursor()
        self.c.run("systemctl", "reset-failed", SERVICE, check=False)
        started = self.c.run("systemctl", "start", SERVICE, check=False)
        s = self.show(SERVICE, "ActiveState", "SubState", "Result", "ExecMainStatus", "NRestarts")

        def written():  # the service's own output (not systemd's lines about it), once its last line is in
            lines = [e["MESSAGE"] for e in self.journal_entries(cursor) if e.get("SYSLOG_IDENTIFIER") == "raman-device"]
            return any(line.startswith("error:") for line in lines) and lines

        return started, s, wait_for(written, "the service's error line in the journal", 10)

    def gpio_failure(self) -> str:
        """The example configuration (a button, LEDs, a buzzer) with no GPIO here: one line, exit status 6.

        lgpio is installed and really tried. With a working directory the service may not write (as the
        unit had before it had one of its own) lgpio cannot make its notification pipe and says so: the
        negative control, which shows that the check sees lgpio's complaints.
        """
        self.c.write(CONFIG, self.gpio_config)
        started, s, lines = self._start_with_pins()
        expect(started.returncode != 0, "the service started, though the configuration names GPIO pins")
        expect((s["Result"], s["ExecMainStatus"], s["SubState"], s["NRestarts"]) == ("exit-code", "6", "failed", "0"),
               f"after the start: {s} (exit status 6, failed, no restart expected)")
        expect(len(lines) == 1 and lines[0].startswith("error: no GPIO on this machine"),
               f"the service wrote {len(lines)} lines: {lines}")
        name, text = NO_WORKDIR_DROP_IN
        drop_in = UNITS / f"{SERVICE}.service.d" / name
        self.c.write(drop_in, text)
        self.c.run("systemctl", "daemon-reload")
        _, _, control = self._start_with_pins()
        self.c.run("rm", str(drop_in))
        self.c.run("systemctl", "daemon-reload")
        self.c.run("systemctl", "reset-failed", SERVICE, check=False)
        expect(any(".lgd-nfy" in line for line in control), f"negative control: no complaint of lgpio in {control}")
        return (f"exit status {s['ExecMainStatus']}, {s['SubState']}, {s['NRestarts']} restarts, one line: "
                f"'{lines[0][:90]}...'; negative control (WorkingDirectory=/): {len(control)} lines, lgpio: "
                f"'{next(line for line in control if '.lgd-nfy' in line)[:70]}'")


def summary(results: list[Result]) -> str:
    """The results as a table: check, result, seconds."""
    width = max(len(r.name) for r in results)
    rows = [f"{'check':{width}s}  result  time"]
    rows += [f"{r.name:{width}s}  {'PASS' if r.ok else 'FAIL' if r.ok is False else '-':6s}  {r.seconds:5.1f} s"
             for r in results]
    return "\n".join(rows)


def run_unit_test(cache: Path, log=print) -> int:
    """Build, boot, install and check (see the module docstring); 0 if every check passed.

    ``cache`` keeps the container's root between runs.
    """
    t0 = time.monotonic()
    host_tools()
    cache = cache.resolve()

    def stop(signum, frame):
        raise KeyboardInterrupt

    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, stop)  # so that the container is stopped and the overlay unmounted
    with tempfile.TemporaryDirectory(prefix="raman-edge-installer-") as out:
        installer = build("host", Path(out))
        log(f"root     {RELEASE} {platform.machine()} with {', '.join(PACKAGES)} (debootstrap, cached in {cache})")
        root = root_file_system(RELEASE, platform.machine(), PACKAGES, cache)
        example = (installer / "deploy" / "raman-edge.toml").read_text()
        config = test_config(example)
        with Container(root, Path(tempfile.mkdtemp(prefix="unit-test-", dir=cache)), log) as c:
            operator_account(c.tree)
            home = c.tree / "home" / OPERATOR
            shutil.copytree(installer, home / installer.name)
            (home / "unit-test.toml").write_text(config)
            owner = home.stat()
            for p in (home / "unit-test.toml", home / installer.name, *(home / installer.name).rglob("*")):
                os.lchown(p, owner.st_uid, owner.st_gid)
            log(f"boot     systemd-nspawn {c.tree}: {c.boot()}")
            test = UnitTest(c, log, gpio_config=test_config(example, pins=True))
            test.run_all(installer.name)
    results = test.results
    log("\n" + summary(results) + f"\n{len(results)} checks, {sum(bool(r.ok) for r in results)} passed, "
        f"{time.monotonic() - t0:.0f} s in all")
    return 0 if all(r.ok for r in results) else 1
