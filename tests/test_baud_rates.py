"""Baud rates: the drivers and the device configuration accept those the protocol uses, and name them."""
import pytest

from device.service.config import ConfigError, parse_config
from firmware_bridge.errors import SettingError
from firmware_bridge.protocols import STANDARD_BAUD_RATES
from firmware_bridge.protocols.obp.codec import BAUD_RATES as OBP_BAUD_RATES
from firmware_bridge.registry import PROTOCOLS

pytestmark = pytest.mark.device  # needs only the device extra


def config(protocol, baud):
    return f"""
[spectrometer]
protocol = "{protocol}"
port = "/dev/ttyUSB0"
laser_nm = 785.0
baud = {baud}
{'coefficients = [772.5, 0.086]' if protocol == "tcd1304" else ''}
[model]
bundle = "models/sers-pesticides"
[data]
directory = "/tmp/raman-edge"
"""


@pytest.mark.parametrize("protocol", sorted(PROTOCOLS))
def test_drivers_take_only_their_protocols_rates(protocol):
    rates = PROTOCOLS[protocol].baud_rates
    driver = PROTOCOLS[protocol].driver()
    assert rates == (OBP_BAUD_RATES if protocol == "obp" else STANDARD_BAUD_RATES)
    for baud in (-5, 0, 1, 115201, 10 ** 30, float("nan"), True):
        with pytest.raises(SettingError, match=f"not one the {protocol} protocol uses: choose one of 9600"):
            driver("sim://x", baud=baud)
    for baud in rates:
        assert driver("sim://x", baud=baud).baud == baud  # nothing is opened until open()


def test_configuration_refuses_a_rate_the_obp_protocol_lacks():
    assert 921600 in STANDARD_BAUD_RATES and 921600 not in OBP_BAUD_RATES
    with pytest.raises(ConfigError, match="spectrometer.baud: an OBP device runs at 9600, .*, 460800 baud"):
        parse_config(config("obp", 921600))
    assert parse_config(config("obp", 460800)).spectrometer.baud == 460800
    assert parse_config(config("tcd1304", 921600)).spectrometer.baud == 921600
