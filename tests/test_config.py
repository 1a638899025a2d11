"""The configuration file: every problem named with its key, all at once."""
from pathlib import Path

import pytest

from device.service.config import ConfigError, load_config, parse_config

pytestmark = pytest.mark.device  # needs only the device extra

GOOD = """
[spectrometer]
protocol = "tcd1304"
port = "/dev/ttyACM0"
laser_nm = 785.03
integration_s = 0.05
averages = 20
coefficients = [772.5, 0.086, -2.1e-6]
firmware = "2019"

[model]
bundle = "models/sers-pesticides"
min_confidence = 0.75

[triggers]
button_pin = 17
control_port = "/dev/ttyAMA0"

[outputs]
laser_pin = 24

[data]
directory = "/var/lib/raman-edge"
"""


def test_good_config(tmp_path):
    path = tmp_path / "raman-edge.toml"
    path.write_text(GOOD)
    c = load_config(path)
    assert c.spectrometer.protocol == "tcd1304" and c.spectrometer.coefficients == (772.5, 0.086, -2.1e-6)
    assert c.spectrometer.dark_frame is True and c.spectrometer.baud is None
    assert c.model.bundle == (tmp_path / "models" / "sers-pesticides").resolve() and c.model.backend == "numpy"
    assert c.model.min_confidence == 0.75 and c.triggers.button_pin == 17 and c.triggers.control_baud == 115200
    assert c.outputs.laser_pin == 24 and c.outputs.led_ok_pin is None
    assert c.data_directory == Path("/var/lib/raman-edge")


def test_every_problem_is_reported_with_its_key():
    text = """
[spectrometer]
protocol = "obp"
prot = "x"
laser_nm = 1500
averages = 2.5
coefficients = [1, 2]
dark_frame = "yes"

[model]
bundle = "m"
min_confidence = 1.5

[triggers]
button_pin = true

[extras]
a = 1
"""
    with pytest.raises(ConfigError) as info:
        parse_config(text, "dev.toml")
    problems = info.value.problems
    expected = ["[extras]: unknown section", "spectrometer.prot: unknown key", "spectrometer.port: missing",
                "spectrometer.laser_nm: must be the measured laser line",
                "spectrometer.averages: must be a whole number",
                "spectrometer.dark_frame: must be true or false", "model.min_confidence: must be between 0 and 1",
                "triggers.button_pin: must be a whole number", "data.directory: missing",
                "spectrometer.coefficients: an OBP device stores its own"]
    for words in expected:
        assert any(p.startswith(words) for p in problems), (words, problems)
    assert len(problems) == len(expected)
    assert str(info.value).startswith(f"configuration dev.toml has {len(expected)} problem(s):")


@pytest.mark.parametrize("text, words", [
    ("[spectrometer\nprotocol = 1", "not valid TOML"),
    ('[spectrometer]\nprotocol = "tcd1304"\nport = "p"\nlaser_nm = 785\n[model]\nbundle = "b"\n[data]\ndirectory = "d"',
     "the TCD1304 stores no calibration"),
    ('[spectrometer]\nprotocol = "groupgets"\nport = "p"\nlaser_nm = 532\nintegration_s = 0.1\n[model]\nbundle = "b"\n'
     '[data]\ndirectory = "d"', "integration time is fixed"),
    ('[spectrometer]\nprotocol = "obp"\nport = "p"\nlaser_nm = 785\nfirmware = "2019"\n[model]\nbundle = "b"\n'
     '[data]\ndirectory = "d"', "only the TCD1304 has firmware"),
    ('spectrometer = 3\n[model]\nbundle = "b"\n[data]\ndirectory = "d"', "[spectrometer]: must be a table"),
])
def test_single_problems(text, words):
    with pytest.raises(ConfigError, match=words.replace("[", r"\[").replace("]", r"\]")):
        parse_config(text)


def test_unreadable_file(tmp_path):
    with pytest.raises(ConfigError, match="cannot read the file"):
        load_config(tmp_path / "missing.toml")
