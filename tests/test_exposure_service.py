"""Auto-exposure in the measuring service: each sample's integration time chosen and recorded, the bright refused."""
import pytest
from test_service import config, first_sample_label

from device.service.config import ConfigError, parse_config
from device.service.measurement import Service

pytestmark = pytest.mark.device

AUTO = '[acquisition]\nexposure = "auto"\nmax_integration_s = 2.0\n'
TCD1304 = ("tcd1304", 'coefficients = [772.5, 0.086, -2.1e-6]\n')


@pytest.mark.parametrize("protocol, extra", [("obp", ""), TCD1304])
def test_each_brightness_gets_its_own_time_and_the_right_verdict(tmp_path, shipped_bundle, protocol, extra):
    chosen = {}
    for brightness in (0.3, 3.0, 300.0):
        port = f"sim://{protocol}?paced=0&hold=1&seed=1&brightness={brightness}"
        svc = Service(config(tmp_path / str(brightness), shipped_bundle.path, port, protocol, extra + AUTO))
        try:
            r = svc.measure("command")
            row = svc.store.last()
        finally:
            svc.close()
        assert r["ok"] and r["verdict"] == first_sample_label(shipped_bundle), r
        exposure = row.device["exposure"]
        assert row.device["integration_s"] == exposure["integration_s"] and exposure["probes"]
        chosen[brightness] = exposure["integration_s"]
    assert chosen[0.3] > chosen[3.0] > chosen[300.0]  # 100x brighter: about 100x shorter, unless held at a limit
    assert chosen[3.0] / chosen[300.0] == pytest.approx(100, rel=0.3)


def test_the_fixed_mode_integrates_for_the_configured_time(tmp_path, shipped_bundle):
    svc = Service(config(tmp_path, shipped_bundle.path, "sim://obp?paced=0&hold=1&brightness=3"))
    try:
        assert svc.measure("command")["ok"]
        row = svc.store.last()
    finally:
        svc.close()
    assert row.device["integration_s"] == pytest.approx(0.05) and "exposure" not in row.device


def test_too_bright_is_refused_with_the_laser_off_and_the_service_goes_on(tmp_path, shipped_bundle):
    svc = Service(config(tmp_path, shipped_bundle.path, "sim://obp?paced=0&hold=1&brightness=1000000", extra=AUTO))
    try:
        r = svc.measure("button")
        assert r["ok"] is False and r["rejected"] is True
        assert "too bright: reduce laser power or move the sample" in r["error"]
        assert svc._spectrometer.port.line.device.laser_on is False
        status = svc.status()
        assert status["state"] == "ready" and status.get("spectrometer_error") is None
        assert svc.store.last().error.startswith("rejected: too bright")
    finally:
        svc.close()


def test_a_fixed_integration_device_cannot_take_auto_exposure():
    text = f"""
[spectrometer]
protocol = "groupgets"
port = "/dev/ttyUSB0"
laser_nm = 532.0
{AUTO}
[model]
bundle = "m"
[data]
directory = "d"
"""
    with pytest.raises(ConfigError, match="acquisition.exposure: the GroupGets sketch's integration time is fixed"):
        parse_config(text)
    with pytest.raises(ConfigError, match="spectrometer.integration_s: integration time 20 s exceeds the microspec"):
        parse_config(text.replace('"groupgets"', '"microspec"').replace(AUTO, "integration_s = 20\n"))
