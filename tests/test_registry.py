"""The registry is the one list of protocols.

Configuration, command line and simulators follow it, every registered driver talks to its simulator
over a real pty, and the real driver path leaves the simulators unloaded.
"""
import subprocess
import sys

import numpy as np
import pytest

from device.service.config import ConfigError, parse_config
from firmware_bridge.cli import build_parser
from firmware_bridge.errors import SettingError
from firmware_bridge.measure import measure
from firmware_bridge.registry import PROTOCOLS, make_driver, protocol
from firmware_bridge.sim.line import SimulatedLine
from firmware_bridge.sim.pty import PtyServer
from firmware_bridge.sim.serve import make_device
from firmware_bridge.spectrometer import Spectrometer

#: Polynomial given to protocols that need one (that of the simulated TCD1304, to which it belongs).
COEFFICIENTS = (772.5, 0.0860, -2.1e-6)


def config(name: str, extra: str = "") -> str:
    return (f'[spectrometer]\nprotocol = "{name}"\nport = "/dev/ttyUSB0"\nlaser_nm = 785.0\n{extra}\n'
            '[model]\nbundle = "b"\n[data]\ndirectory = "d"\n')


def test_configuration_accepts_exactly_the_registered_protocols():
    for name, spec in PROTOCOLS.items():
        extra = f"coefficients = {list(COEFFICIENTS)}" if spec.needs_calibration else ""
        assert parse_config(config(name, extra)).spectrometer.protocol == name
    with pytest.raises(ConfigError, match="spectrometer.protocol: must be one of " + ", ".join(PROTOCOLS)):
        parse_config(config("ocean"))  # negative control: a name the registry lacks


def test_configuration_follows_each_protocols_capabilities():
    for name, spec in PROTOCOLS.items():
        problems = []
        try:
            parse_config(config(name, f"coefficients = {list(COEFFICIENTS)}\nintegration_s = 0.1"))
        except ConfigError as exc:
            problems = exc.problems
        assert any("stores its own wavelength polynomial" in p for p in problems) == spec.stores_calibration
        assert any("integration time is fixed" in p for p in problems) == spec.fixed_integration


def test_command_line_offers_exactly_the_registered_protocols():
    parser = build_parser()
    for command in ("simulate", "probe", "acquire", "calibrate"):
        action = next(a for a in parser._subparsers._group_actions[0].choices[command]._actions
                      if "--protocol" in a.option_strings)
        assert list(action.choices) == list(PROTOCOLS)


def test_unknown_protocols_and_foreign_settings_are_refused():
    with pytest.raises(SettingError, match="unknown protocol 'ocean'; choose one of obp"):
        protocol("ocean")
    for name, spec in PROTOCOLS.items():
        if spec.stores_calibration:
            with pytest.raises(SettingError, match="stores its own wavelength polynomial"):
                make_driver(name, "sim://x", coefficients=COEFFICIENTS)
        if not spec.firmware_generations:
            with pytest.raises(SettingError, match="has no firmware"):
                make_driver(name, "sim://x", firmware="2019")
            with pytest.raises(ValueError, match="has no firmware generations"):
                make_device(name, firmware="2019")


@pytest.mark.parametrize("name", list(PROTOCOLS))
@pytest.mark.slow
def test_every_registered_driver_acquires_from_its_simulator_over_a_pty(name):
    spec = PROTOCOLS[name]
    device = make_device(name, seed=3)
    assert device.instrument.laser_nm == spec.simulated_laser_nm
    server = PtyServer(SimulatedLine(device, paced=True)).start()
    try:
        driver = make_driver(name, server.path, coefficients=COEFFICIENTS if spec.needs_calibration else None)
        assert isinstance(driver, Spectrometer) and driver.protocol == name
        assert (driver.has_laser, driver.fixed_integration) == (spec.has_laser, spec.fixed_integration)
        with driver:
            if not driver.fixed_integration:
                driver.set_integration_time(0.02)
            m = measure(driver, spec.simulated_laser_nm)
        assert driver.port is None  # closed again
        assert m.intensity.shape == (device.instrument.pixels,) and np.all(np.diff(m.shift) > 0)
        assert m.meta["protocol"] == name
        assert m.intensity.max() - np.median(m.intensity) > 5 * device.instrument.read_noise  # the scene is seen
    finally:
        server.stop()


@pytest.mark.slow
def test_the_real_driver_path_does_not_import_the_simulators():
    code = ("import sys, firmware_bridge.registry as r\n"
            "from firmware_bridge.errors import PortGoneError\n"
            "for name in r.PROTOCOLS:\n"
            "    d = r.make_driver(name, '/dev/raman-edge-no-such-port', coefficients=None)\n"
            "    try:\n"
            "        d.open()\n"
            "    except PortGoneError:\n"
            "        pass\n"
            "print(sorted(m for m in sys.modules if m.startswith('firmware_bridge.sim') or m.endswith('.simulator')))\n"
            "r.make_driver('obp', 'sim://obp?paced=0').open()\n"
            "print('firmware_bridge.sim.serve' in sys.modules)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines() == ["[]", "True"]  # True: the control, a sim:// URL loads them
