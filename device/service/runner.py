"""``raman-device run``: the service with its triggers, outputs and systemd integration.

Triggers: the control port (serial line protocol of :mod:`device.service.control`), a local Unix socket with
the same protocol (``raman-device measure`` uses it), and a GPIO push button (gpiozero). Verdicts are
logged on stdout (journald under systemd). With ``NOTIFY_SOCKET`` set, readiness, status and watchdog
pings are sent with the standard ``sd_notify`` datagram. SIGTERM lets a running measurement finish,
switches the laser off and closes the spectrometer and the record.

What the service cannot run with on this machine (configured GPIO pins without GPIO, a data directory
where the control socket cannot be made) is a :class:`StartError` before any trigger is served; the
command exits with :data:`~device.service.systemd.EXIT_NOT_CONFIGURED`, which the systemd unit does not restart on.
"""
from __future__ import annotations

import errno
import os
import signal
import socket
import threading
import time
import warnings
from pathlib import Path

from device.errors import RamanEdgeError
from device.inference.verdict import UNCERTAIN, UNKNOWN
from device.service.config import Config
from device.service.control import SOCKET_FILE, LineReader, dispatch, reply
from device.service.measurement import Service
from device.service.systemd import sd_notify, watchdog_interval

RETRY_FIRST, RETRY_MAX = 0.5, 30.0  # back-off between attempts to open a missing spectrometer or control port, s


class StartError(RamanEdgeError):
    """The service cannot start with this configuration on this machine; the message says what to do."""


def gpio_pins(config: Config) -> dict:
    """The configured GPIO pins, by configuration key (``triggers.button_pin``, ``outputs.led_ok_pin``, ...)."""
    pins = {"triggers.button_pin": config.triggers.button_pin}
    pins.update({f"outputs.{k}": getattr(config.outputs, k) for k in ("laser_pin", "led_ok_pin", "led_alert_pin",
                                                                       "buzzer_pin")})
    return {k: v for k, v in pins.items() if v is not None}


def check_gpio(pins: dict) -> None:
    """Make sure gpiozero can drive ``pins`` on this machine (choosing its pin library quietly).

    Raises
    ------
    StartError
        Naming the configured pins, when gpiozero is missing or finds no GPIO here.
    """
    if not pins:
        return
    configured = ", ".join(f"{k} = {v}" for k, v in pins.items())
    what_to_do = (f"remove {', '.join(pins)} from the configuration, or install a GPIO library on the board "
                  "(sudo apt install python3-lgpio, or pip install lgpio in the service's environment)")
    try:
        from gpiozero import Device
        from gpiozero.exc import BadPinFactory, PinFactoryFallback
    except ImportError:
        raise StartError(f"gpiozero is not installed, but the configuration uses GPIO ({configured}): "
                         f"install it (pip install gpiozero) or {what_to_do}") from None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PinFactoryFallback)  # one message below instead of one per library tried
        try:
            Device.ensure_pin_factory()
        except BadPinFactory:
            raise StartError(f"no GPIO on this machine (gpiozero found no pin library that works here), but the "
                             f"configuration uses {configured}: {what_to_do}") from None


def socket_problem(directory: Path, exc: OSError) -> str:
    """What to do when the control socket cannot be made in the data directory ``directory``."""
    reason = exc.strerror or str(exc)
    if exc.errno == errno.EROFS:
        fix = ("it is on a read-only file system (often a storage card the kernel remounted read-only after "
               "errors): check or replace the card, or set data.directory to a writable directory")
    elif exc.errno in (errno.EACCES, errno.EPERM):
        fix = "this user may not write there: give the directory to the service's user, or set data.directory"
    else:
        fix = "create it as a directory this user may write, or set data.directory to one"
    return f"the data directory {directory} cannot hold the control socket {SOCKET_FILE} ({reason}): {fix}"


class Runner:
    """The running service: triggers feeding one :class:`Service`, until :meth:`stop`."""

    def __init__(self, config: Config, log=print):
        self.config = config
        self.log = log
        self.stopping = threading.Event()
        self._threads: list[threading.Thread] = []
        check_gpio(gpio_pins(config))
        self._gpio = []
        try:
            laser = self._gpio_output("outputs.laser_pin")
            self._leds = tuple(self._gpio_output(f"outputs.{k}") for k in ("led_ok_pin", "led_alert_pin", "buzzer_pin"))
            button = self._gpio_button()
        except StartError:
            self._close_gpio()
            raise
        self.service = Service(config, laser=(lambda on: laser.on() if on else laser.off()) if laser else None,
                               indicate=self._indicate)
        if button is not None:
            button.when_pressed = lambda: self.service.measure("button")

    # -- GPIO ---------------------------------------------------------------------------------
    def _gpio_device(self, key: str, make):
        """``make(pin)`` for the pin configured as ``key`` (None when unset), kept to be closed at the end.

        Raises
        ------
        StartError
            When the pin cannot be claimed (in use by another program, not on this board, no permission).
        """
        section, name = key.split(".")
        pin = getattr(getattr(self.config, section), name)
        if pin is None:
            return None
        try:
            device = make(pin)
        except Exception as exc:  # gpiozero's and its pin libraries' errors have no common base class
            raise StartError(f"{key} = {pin}: GPIO{pin} cannot be used ({type(exc).__name__}: {exc}); free it (is "
                             "another program using it?), choose another pin, or remove the key") from None
        self._gpio.append(device)
        return device

    def _gpio_output(self, key: str):
        def output(pin):
            from gpiozero import OutputDevice

            return OutputDevice(pin, initial_value=False)

        return self._gpio_device(key, output)

    def _indicate(self, result: dict) -> None:
        ok_led, alert_led, buzzer = self._leds
        good = result.get("ok") and result.get("verdict") not in (None, UNCERTAIN, UNKNOWN)
        for device, on in ((ok_led, good), (alert_led, not good)):
            if device is not None:
                device.on() if on else device.off()
        if buzzer is not None and not good:
            buzzer.blink(on_time=0.1, off_time=0.1, n=2)
        if result.get("ok"):
            confidence = "" if result.get("confidence") is None else f"{result['confidence']:.3f}, "
            self.log(f"measurement {result.get('id')}: {result.get('verdict')} ({confidence}"
                     f"{result.get('model') or result.get('mode')})")
        elif not result.get("busy"):
            self.log(f"measurement failed: {result.get('error')}")

    def _gpio_button(self):
        def button(pin):
            from gpiozero import Button

            return Button(pin, pull_up=True, bounce_time=0.05)

        return self._gpio_device("triggers.button_pin", button)

    # -- line-protocol triggers -----------------------------------------------------------------
    def _serve_stream(self, read, write, trigger: str) -> None:
        """Answer each command line from ``read`` with ``write``; a MEASURE is recorded as from ``trigger``."""
        reader = LineReader()
        while not self.stopping.is_set():
            data = read()
            if data is None:
                return
            for text, error in reader.feed(data):
                answer = dispatch(text, self.service, trigger) if text is not None else {"ok": False, "error": error}
                write(reply(answer))

    def _control_port(self) -> None:
        """Serve the control port, retried with the spectrometer's back-off while it cannot be opened.

        A port that cannot be opened (an adapter not plugged in yet, or unplugged) is never fatal.
        """
        port_name = self.config.triggers.control_port
        if port_name is None:
            return
        import serial

        def serve():
            delay, reported = RETRY_FIRST, None
            while not self.stopping.is_set():
                try:
                    port = serial.serial_for_url(port_name, baudrate=self.config.triggers.control_baud, timeout=0.2)
                except (serial.SerialException, OSError, ValueError) as exc:
                    if str(exc) != reported:  # said once, not at every try
                        self.log(f"control port {port_name} not available ({exc}); retrying with back-off")
                        reported = str(exc)
                    self.stopping.wait(delay)
                    delay = min(2 * delay, RETRY_MAX)
                    continue
                if reported is not None:
                    self.log(f"control port {port_name} open")
                delay, reported = RETRY_FIRST, None

                def read(port=port):
                    try:
                        data = port.read(1)  # returns at the first byte (or after the 0.2 s timeout)
                        return data + port.read(port.in_waiting) if data else data
                    except (serial.SerialException, OSError) as exc:
                        self.log(f"control port {port_name} failed: {exc}")
                        return None

                try:
                    self._serve_stream(read, port.write, "control-port")
                finally:
                    port.close()
                self.stopping.wait(delay)  # the port failed: open it again after a pause

        self._start(serve, "control port")

    def socket_path(self) -> Path:
        """The local control socket, in the data directory."""
        return self.config.data_directory / SOCKET_FILE

    def _bind_socket(self) -> socket.socket:
        """The local socket, listening in the data directory; :class:`StartError` if it cannot be made there."""
        path = self.socket_path()
        server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.unlink(missing_ok=True)
            server.bind(str(path))
            os.chmod(path, 0o660)
        except OSError as exc:
            server.close()
            raise StartError(socket_problem(path.parent, exc)) from None
        server.listen(4)
        server.settimeout(0.2)
        return server

    def _local_socket(self, server: socket.socket) -> None:
        path = self.socket_path()

        def accept():
            while not self.stopping.is_set():
                try:
                    conn, _ = server.accept()
                except socket.timeout:
                    continue
                conn.settimeout(0.2)

                def read(c=conn):
                    try:
                        return c.recv(256) or None
                    except socket.timeout:
                        return b""

                threading.Thread(target=lambda c=conn: (self._serve_stream(read, c.sendall, "socket"), c.close()),
                                 daemon=True).start()
            server.close()
            path.unlink(missing_ok=True)

        self._start(accept, "local socket")

    def _reconnect(self) -> None:
        """Keep trying to open a missing spectrometer, waiting 0.5 s, 1 s, 2 s ... up to 30 s between tries."""
        delay = RETRY_FIRST
        while not self.stopping.wait(delay):
            if self.service._spectrometer is not None:
                delay = RETRY_FIRST
            elif self.service.try_connect():
                status = self.service.status()
                self.log("spectrometer connected" + (f"; verdicts refused: {status['model_problem']}"
                                                     if status["model_problem"] else ""))
                sd_notify(f"STATUS={status['state']}")
                delay = RETRY_FIRST
            else:
                delay = min(2 * delay, RETRY_MAX)

    def _scheduled_sst(self) -> None:
        """Run the suitability test at start and every ``sst.every_h`` hours (a standard fixed in the beam).

        A test that cannot run now (a measurement in progress, no spectrometer) is tried again a minute later.
        """
        every = self.service.config.sst.every_h * 3600.0
        delay = 0.0
        while not self.stopping.wait(delay):
            reply = self.service.sst("schedule")
            if reply.get("ok"):
                self.log(f"suitability test: {reply['result']}" + (f" ({'; '.join(reply['reasons'])})"
                                                                     if reply.get("reasons") else ""))
                delay = every
            else:
                self.log(f"suitability test not run: {reply.get('error')}; trying again in a minute")
                delay = min(60.0, every)

    def _start(self, target, name: str) -> None:
        t = threading.Thread(target=target, name=name, daemon=True)
        t.start()
        self._threads.append(t)

    # -- life cycle -------------------------------------------------------------------------------
    def run(self) -> int:
        """Serve until SIGTERM or SIGINT."""
        try:
            server = self._bind_socket()
        except StartError:
            self.close()
            raise
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: self.stopping.set())
        self._control_port()
        self._local_socket(server)
        if not self.service.try_connect():
            self.log(f"spectrometer not available yet ({self.service.spectrometer_error}); retrying with back-off")
        self._start(self._reconnect, "reconnect")
        if self.service.config.sst.every_h > 0:
            self._start(self._scheduled_sst, "suitability")
        status = self.service.status()
        self.log(f"ready: {status['state']}; model {status['model']}; self-test "
                 f"{'passed' if status['self_test']['passed'] else 'FAILED: ' + str(status['self_test']['reason'])}"
                 + (f"; verdicts refused: {status['model_problem']}" if status["model_problem"] else "")
                 + (f"; measurements refused: {status['storage_error']}" if status["storage_error"] else "")
                 + (f"; {status['sst']['problem']}" if status["sst"]["problem"] else ""))
        sd_notify(f"READY=1\nSTATUS={status['state']}")
        interval = watchdog_interval()
        last_ping = 0.0
        while not self.stopping.wait(0.2):
            if interval is not None and time.monotonic() - last_ping >= interval:
                sd_notify("WATCHDOG=1")
                last_ping = time.monotonic()
        self.stop()
        return 0

    def stop(self) -> None:
        """Let a running measurement finish, then laser off and everything closed."""
        self.stopping.set()
        sd_notify("STOPPING=1")
        for t in self._threads:  # triggers stop taking commands (the socket file goes with its thread)
            t.join(timeout=2)
        self.service.shutdown()  # waits for a measurement in progress
        self._close_gpio()
        self.log("stopped")

    def close(self) -> None:
        """Laser off, spectrometer, record and GPIO devices closed, without serving (a start that failed)."""
        self.service.close()
        self._close_gpio()

    def _close_gpio(self) -> None:
        for device in self._gpio:
            device.close()
        self._gpio.clear()
