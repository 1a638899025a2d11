"""raman-device run: the service process with its control port on a pty, its socket, and a mock button."""
import json
import os
import select
import signal
import subprocess
import sys
import threading
import time
import tty
import uuid
from pathlib import Path

import pytest
from helpers import OutputLines, wait_ready

from device.service.config import parse_config
from device.service.record import RecordStore
from firmware_bridge.protocols.obp import codec as obp
from firmware_bridge.protocols.obp.simulator import OBPDevice, sts_instrument
from firmware_bridge.sim.line import SimulatedLine
from firmware_bridge.sim.pty import PtyServer
from firmware_bridge.sim.serve import default_scene

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def write_config(tmp_path, bundle, spectrometer_port, control_port=None, extra=""):
    text = f"""
[spectrometer]
protocol = "obp"
port = "{spectrometer_port}"
laser_nm = 785.0
integration_s = 0.2
averages = 1
[model]
bundle = "{bundle}"
[triggers]
{f'control_port = "{control_port}"' if control_port else ''}
{extra}
[data]
directory = "{tmp_path / 'data'}"
"""
    path = tmp_path / "raman-edge.toml"
    path.write_text(text)
    return path


def read_lines(fd, n, timeout=30.0):
    data, deadline = b"", time.monotonic() + timeout
    while data.count(b"\n") < n and time.monotonic() < deadline:
        if select.select([fd], [], [], 0.1)[0]:
            data += os.read(fd, 65536)
    return [json.loads(line) for line in data.splitlines()]


class HeldOBPDevice(OBPDevice):
    """The simulated STS unit, whose next spectrum, once :attr:`hold` is set, waits for :attr:`release`."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.hold, self.acquiring, self.release = threading.Event(), threading.Event(), threading.Event()

    def _held_spectrum(self, msg, now):
        if self.hold.is_set() and not self.acquiring.is_set():
            self.acquiring.set()
            self.release.wait(30)
        OBPDevice._spectrum(self, msg, now)

    HANDLERS = {**OBPDevice.HANDLERS, obp.GET_RAW_SPECTRUM_NOW: _held_spectrum}


@pytest.mark.slow
def test_service_process_end_to_end(tmp_path, shipped_bundle):
    master, slave = os.openpty()
    tty.setraw(slave)
    device = HeldOBPDevice(sts_instrument(), default_scene(), seed=3)
    server = PtyServer(SimulatedLine(device, paced=False)).start()
    # 300 averages of 0.1 s: the driver waits 30 s for a spectrum, ample time to hold one.
    cfg = write_config(tmp_path, shipped_bundle.path, server.path, os.ttyname(slave))
    cfg.write_text(cfg.read_text().replace("integration_s = 0.2\naverages = 1", "integration_s = 0.1\naverages = 300"))
    proc = subprocess.Popen([str(BIN / "raman-device"), "run", "--config", str(cfg)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    output = OutputLines(proc)
    try:
        line = wait_ready(output)
        assert line.startswith("ready: ready") and "self-test passed" in line
        os.write(master, b"STATUS\nMEASURE\n")
        status, first = read_lines(master, 2)
        assert status["command"] == "STATUS" and status["state"] == "ready"
        assert first["command"] == "MEASURE" and first["ok"], first
        # A trigger on the control port is held in its acquisition; the local command meanwhile is told busy.
        device.hold.set()
        os.write(master, b"MEASURE\n")
        assert device.acquiring.wait(30), "the service never asked for a spectrum"
        local = subprocess.run([str(BIN / "raman-device"), "measure", "--config", str(cfg)], capture_output=True,
                               text=True, timeout=60)
        state = subprocess.run([str(BIN / "raman-device"), "measure", "--config", str(cfg), "--command", "STATUS"],
                               capture_output=True, text=True, timeout=60)
        device.release.set()
        (second,) = read_lines(master, 1)
        assert json.loads(local.stdout) == {"command": "MEASURE", "ok": False, "busy": True,
                                            "error": "busy: a measurement is running"}, local.stdout
        assert local.returncode != 0 and json.loads(state.stdout)["state"] == "measuring"
        assert second["command"] == "MEASURE" and second["ok"], second
        os.write(master, b"LAST\nbogus\n")
        last, bogus = read_lines(master, 2)
        assert last["id"] == 2 and "unknown command" in bogus["error"]
        proc.send_signal(signal.SIGTERM)
        out = output.rest(timeout=30)
        assert proc.wait(timeout=30) == 0 and "stopped" in out and "Traceback" not in proc.stderr.read()
        assert "measurement 1:" in out and "measurement 2:" in out
    finally:
        device.release.set()
        if proc.poll() is None:
            proc.kill()
        server.stop()
        os.close(master)
        os.close(slave)
    store = RecordStore(tmp_path / "data" / "record.db")
    assert store.count() == 2 and store.integrity_ok()
    assert not (tmp_path / "data" / "control.sock").exists()
    # Each record names the line its trigger came on; the busy local trigger made none.
    assert [r.trigger for r in store.query(newest_first=False)] == ["control-port", "control-port"]


@pytest.mark.slow
def test_measure_command_without_a_service(tmp_path, shipped_bundle):
    cfg = write_config(tmp_path, shipped_bundle.path, "sim://obp")
    r = subprocess.run([str(BIN / "raman-device"), "measure", "--config", str(cfg)], capture_output=True, text=True)
    assert r.returncode == 2 and "no service is listening" in r.stderr


@pytest.mark.slow
def test_bad_config_is_reported_before_anything_starts(tmp_path):
    cfg = tmp_path / "bad.toml"
    cfg.write_text('[spectrometer]\nprotocol = "nope"\n')
    r = subprocess.run([str(BIN / "raman-device"), "run", "--config", str(cfg)], capture_output=True, text=True)
    assert r.returncode == 6 and "spectrometer.protocol: must be one of" in r.stderr
    assert "model.bundle: missing" in r.stderr


def test_mock_button_triggers_a_measurement(tmp_path, shipped_bundle):
    from gpiozero import Device
    from gpiozero.pins.mock import MockFactory

    from device.service.runner import Runner

    Device.pin_factory = MockFactory()
    try:
        cfg = parse_config(write_config(tmp_path, shipped_bundle.path, "sim://tcd1304?paced=0",
                                        extra="button_pin = 17").read_text()
                           .replace('protocol = "obp"', 'protocol = "tcd1304"\ncoefficients = [772.5, 0.086, -2.1e-6]')
                           .replace("[data]", "[outputs]\nlaser_pin = 24\nled_ok_pin = 22\nled_alert_pin = 27\n[data]"))
        messages, measured = [], threading.Event()

        def log(message):
            messages.append(message)
            if message.startswith("measurement"):  # logged once the record is written and the LEDs are set
                measured.set()

        runner = Runner(cfg, log=log)
        button = Device.pin_factory.pin(17)
        button.drive_low()
        assert measured.wait(20), messages
        button.drive_high()
        record = runner.service.store.last()
        assert record is not None and record.trigger == "button"
        assert Device.pin_factory.pin(24).state in (0, False)  # laser off afterwards
        lit = Device.pin_factory.pin(22).state, Device.pin_factory.pin(27).state
        assert sorted(bool(v) for v in lit) == [False, True]  # exactly one status LED on
        assert any(m.startswith("measurement") for m in messages)
        runner.stop()
    finally:
        Device.pin_factory.close()
        Device.pin_factory = None


@pytest.mark.slow
def test_systemd_notifications(tmp_path, shipped_bundle):
    import socket

    cfg = write_config(tmp_path, shipped_bundle.path, "sim://obp?paced=0")
    sock_path = tmp_path / "notify"
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    listener.bind(str(sock_path))
    listener.settimeout(20)
    env = dict(os.environ, NOTIFY_SOCKET=str(sock_path), WATCHDOG_USEC="400000")
    proc = subprocess.Popen([str(BIN / "raman-device"), "run", "--config", str(cfg)], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        messages = [listener.recv(1024).decode() for _ in range(3)]
        assert messages[0].startswith("READY=1\nSTATUS=ready")
        assert messages[1:] == ["WATCHDOG=1", "WATCHDOG=1"]
        proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 20
        m = listener.recv(1024).decode()
        while m == "WATCHDOG=1" and time.monotonic() < deadline:  # each recv itself times out after 20 s
            m = listener.recv(1024).decode()
        assert m == "STOPPING=1"
        assert proc.wait(timeout=20) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
        listener.close()


@pytest.mark.slow
def test_missing_spectrometer_is_retried_in_the_background(tmp_path, shipped_bundle):
    """The service starts without its spectrometer and connects by itself once it appears."""
    from firmware_bridge.sim.serve import make_device

    link = tmp_path / "spectrometer"
    cfg = write_config(tmp_path, shipped_bundle.path, str(link))
    proc = subprocess.Popen([str(BIN / "raman-device"), "run", "--config", str(cfg)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    output = OutputLines(proc)
    server = None
    try:
        first = output.read_until()
        assert "spectrometer not available yet" in first and "retrying with back-off" in first
        assert output.read_until().startswith("ready: no spectrometer")
        server = PtyServer(SimulatedLine(make_device("obp"), paced=False)).start()
        link.symlink_to(server.path)  # plugged in
        line = output.read_until()
        assert line.strip() == "spectrometer connected"
        r = subprocess.run([str(BIN / "raman-device"), "measure", "--config", str(cfg), "--command", "STATUS"],
                           capture_output=True, text=True)
        assert json.loads(r.stdout)["state"] == "ready"
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
        if server is not None:
            server.stop()


@pytest.mark.parametrize("protocol, extra, check_verdicts", [
    ("tcd1304", 'coefficients = [772.5, 0.086, -2.1e-6]\nintegration_s = 0.05', True),
    # A visible-light detector at ~15 nm resolution cannot resolve Raman bands: only the loop is checked.
    ("microspec", "", False),
])
@pytest.mark.slow
def test_service_process_with_other_spectrometers(tmp_path, shipped_bundle, protocol, extra, check_verdicts):
    from firmware_bridge.sim.instrument import Scene
    from firmware_bridge.sim.serve import make_device

    scene = Scene.from_path(shipped_bundle.path / "examples")
    server = PtyServer(SimulatedLine(make_device(protocol, scene, seed=2), paced=True)).start()
    laser = 532.0 if protocol == "microspec" else 785.0
    cfg = tmp_path / "c.toml"
    cfg.write_text(f'[spectrometer]\nprotocol = "{protocol}"\nport = "{server.path}"\nlaser_nm = {laser}\n{extra}\n'
                   f'[model]\nbundle = "{shipped_bundle.path}"\n[data]\ndirectory = "{tmp_path / "data"}"\n')
    expected = {p.name: label for p, label in shipped_bundle.examples}
    proc = subprocess.Popen([str(BIN / "raman-device"), "run", "--config", str(cfg)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    output = OutputLines(proc)
    try:
        assert output.read_until().startswith("ready: ready")
        for _ in range(3):
            sample = scene.current()[2]
            r = subprocess.run([str(BIN / "raman-device"), "measure", "--config", str(cfg)], capture_output=True,
                               text=True)
            answer = json.loads(r.stdout)
            assert answer["ok"], answer
            if check_verdicts:
                assert answer["verdict"] == expected[sample], (sample, answer)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
        server.stop()
    store = RecordStore(tmp_path / "data" / "record.db")
    assert [r.trigger for r in store.query()] == ["socket"] * 3  # raman-device measure: the local socket


@pytest.mark.slow
def test_service_start_refuses_a_model_its_spectrometer_cannot_cover(tmp_path, shipped_bundle):
    """With a 900 nm laser line the simulated STS unit reaches only 1936 cm-1; the model needs 501-1999."""
    cfg = write_config(tmp_path, shipped_bundle.path, "sim://obp?paced=0")
    cfg.write_text(cfg.read_text().replace("laser_nm = 785.0", "laser_nm = 900.0"))
    proc = subprocess.Popen([str(BIN / "raman-device"), "run", "--config", str(cfg)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        line = wait_ready(OutputLines(proc))
        assert line.startswith("ready: model does not fit the spectrometer")
        expected = "axis 501..1999 cm-1 is outside what the spectrometer covers, -1710..1936 cm-1 with laser 900 nm"
        assert expected in line
        r = subprocess.run([str(BIN / "raman-device"), "measure", "--config", str(cfg)], capture_output=True,
                           text=True)
        assert r.returncode == 1 and expected in json.loads(r.stdout)["error"]
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()


def run_once(cfg, env=None):
    return subprocess.run([str(BIN / "raman-device"), "run", "--config", str(cfg)], capture_output=True, text=True,
                          env=env, timeout=120)


def test_a_pin_another_program_holds_is_one_error_and_frees_the_others(tmp_path, shipped_bundle):
    """A pin in use stops the start with one message naming its key, and frees the pins claimed before it.

    The pin is held by another device on gpiozero's mock pins; once it is free the same configuration starts.
    """
    from gpiozero import Device, OutputDevice
    from gpiozero.pins.mock import MockFactory

    from device.service.runner import Runner, StartError

    Device.pin_factory = MockFactory()
    holder = OutputDevice(27)  # another program's use of GPIO27
    try:
        cfg = parse_config(write_config(tmp_path, shipped_bundle.path, "sim://obp?paced=0", extra="button_pin = 17")
                           .read_text().replace("[data]", "[outputs]\nled_ok_pin = 22\nled_alert_pin = 27\n[data]"))
        with pytest.raises(StartError) as err:
            Runner(cfg, log=lambda _: None)
        message = str(err.value)
        assert message.startswith("outputs.led_alert_pin = 27: GPIO27 cannot be used (GPIOPinInUse")
        assert "choose another pin, or remove the key" in message and "\n" not in message
        holder.close()
        OutputDevice(22).close()  # GPIO22, claimed before the failure, was released
        runner = Runner(cfg, log=lambda _: None)  # the same configuration, the pin now free
        runner.stop()
    finally:
        holder.close()
        Device.pin_factory.close()
        Device.pin_factory = None


@pytest.mark.slow
def test_shipped_configuration_without_gpio_is_one_error(tmp_path, shipped_bundle):
    """deploy/raman-edge.toml configures a button, LEDs and a buzzer; a machine without GPIO says so and stops."""
    if any(Path("/dev").glob("gpiochip*")) or Path("/dev/gpiomem").exists():
        pytest.skip("this machine has GPIO")
    text = (Path(__file__).parents[1] / "deploy" / "raman-edge.toml").read_text()
    text = (text.replace("/dev/raman-spectrometer", "sim://obp?paced=0")
            .replace("/opt/raman-edge/models/libraries", str(shipped_bundle.path.parent / "libraries"))
            .replace("/opt/raman-edge/models/sers-pesticides", str(shipped_bundle.path))
            .replace("/var/lib/raman-edge", str(tmp_path / "data")))
    cfg = tmp_path / "raman-edge.toml"
    cfg.write_text(text)
    env = {k: v for k, v in os.environ.items() if k != "GPIOZERO_PIN_FACTORY"}
    r = run_once(cfg, env)
    assert r.returncode == 6 and r.stdout == ""
    (line,) = r.stderr.splitlines()  # no warnings, no traceback: one line
    assert line.startswith("error: no GPIO on this machine")
    assert "triggers.button_pin = 17" in line and "outputs.led_ok_pin = 22" in line
    assert "outputs.buzzer_pin = 23" in line
    assert "install a GPIO library" in line
    # The same configuration with pins gpiozero can drive (its mock pins) starts.
    proc = subprocess.Popen([str(BIN / "raman-device"), "run", "--config", str(cfg)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=dict(env, GPIOZERO_PIN_FACTORY="mock"))
    try:
        assert wait_ready(OutputLines(proc)).startswith("ready: ready")
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()


@pytest.mark.slow
def test_data_directory_that_cannot_be_created_is_one_error(tmp_path, shipped_bundle):
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("a file where the data directory's parent should be")
    cfg = write_config(tmp_path, shipped_bundle.path, "sim://obp?paced=0")
    cfg.write_text(cfg.read_text().replace(str(tmp_path / "data"), str(blocker / "data")))
    r = run_once(cfg)
    assert r.returncode == 6 and "Traceback" not in r.stderr
    (line,) = r.stderr.splitlines()
    assert line.startswith(f"error: the data directory {blocker / 'data'} cannot hold the control socket")
    assert "set data.directory" in line


@pytest.fixture
def read_only_fs(tmp_path):
    """A real tmpfs holding data/control.sock left by an earlier run, remounted read-only (or a skip)."""
    mnt = tmp_path / f"ro-{uuid.uuid4().hex[:6]}"
    mnt.mkdir()
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mnt)], capture_output=True, text=True)
    if r.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({r.stderr.strip()})")
    try:
        (mnt / "data").mkdir()
        (mnt / "data" / "control.sock").write_text("")
        subprocess.run(["mount", "-o", "remount,ro", str(mnt)], check=True)
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], capture_output=True)


@pytest.mark.slow
def test_read_only_data_directory_is_one_error(tmp_path, read_only_fs, shipped_bundle):
    cfg = write_config(tmp_path, shipped_bundle.path, "sim://obp?paced=0")
    cfg.write_text(cfg.read_text().replace(str(tmp_path / "data"), str(read_only_fs / "data")))
    r = run_once(cfg)
    assert r.returncode == 6 and "Traceback" not in r.stderr
    (line,) = r.stderr.splitlines()
    assert line.startswith(f"error: the data directory {read_only_fs / 'data'} cannot hold the control socket")
    assert "Read-only file system" in line and "check or replace the card" in line


@pytest.mark.slow
def test_control_port_that_appears_later_is_served(tmp_path, shipped_bundle):
    """A control-port adapter not plugged in at start is said once and retried; once it appears it answers."""
    link = tmp_path / "ttyCONTROL"
    cfg = write_config(tmp_path, shipped_bundle.path, "sim://obp?seed=3", link)
    proc = subprocess.Popen([str(BIN / "raman-device"), "run", "--config", str(cfg)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    output = OutputLines(proc)
    master, slave = os.openpty()
    try:
        line = wait_ready(output)
        assert line.startswith("ready: ready"), line
        logged = output.lines[:-1]
        assert any(f"control port {link} not available" in entry for entry in logged), logged
        tty.setraw(slave)
        link.symlink_to(os.ttyname(slave))  # the adapter is plugged in
        # opening a port flushes its input: write once the service says it is open
        line = output.read_until(lambda line: "control port" in line)
        assert line.strip() == f"control port {link} open", line
        os.write(master, b"STATUS\n")
        (status,) = read_lines(master, 1)
        assert status["command"] == "STATUS" and status["state"] == "ready"
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0 and "Traceback" not in proc.stderr.read()
    finally:
        if proc.poll() is None:
            proc.kill()
        os.close(master)
        os.close(slave)


@pytest.mark.slow
def test_every_kind_of_measurement_gets_its_reply_over_the_socket(tmp_path, shipped_bundle):
    """Replies without a confidence or a model (identify, verify) are logged and sent like the others."""
    from device.service.control import SOCKET_FILE, send_command

    library = ROOT / "models" / "libraries" / "sers-pesticides"
    cfg = write_config(tmp_path, shipped_bundle.path, "sim://obp?paced=0&seed=4",
                       extra=f'[library]\npath = "{library}"')
    proc = subprocess.Popen([str(BIN / "raman-device"), "run", "--config", str(cfg)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        out = OutputLines(proc)
        assert wait_ready(out).startswith("ready: ready")
        for command in ("MEASURE IDENTIFY", "MEASURE VERIFY Phosmet_present", "MEASURE"):
            reply = send_command(tmp_path / "data" / SOCKET_FILE, command, timeout=60)
            assert reply["ok"], (command, reply)
            said = f"measurement {reply['id']}:"
            assert out.read_until(lambda line, said=said: line.startswith(said))
    finally:
        proc.terminate()
        proc.wait(timeout=30)
