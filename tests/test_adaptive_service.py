"""Adaptive acquisition in the measuring service: scans until the verdict is certain, and says why it stopped."""
import json
import os
import shutil
import signal
import subprocess
import tty

import pytest
from helpers import OutputLines, wait_ready
from test_runner import BIN, read_lines, write_config
from test_service import config, first_sample_label

from device.service.config import ConfigError, parse_config
from device.service.measurement import Service
from firmware_bridge.protocols.groupgets.driver import GroupGetsSpectrometer

pytestmark = pytest.mark.device

ADAPTIVE = '[acquisition]\nstop = "adaptive"\nmin_time_s = 0.2\nmax_time_s = 2.0\n'
TCD1304 = ("tcd1304", 'coefficients = [772.5, 0.086, -2.1e-6]\n')


@pytest.fixture()
def ruled_bundle(tmp_path, shipped_bundle):
    """The shipped model with a stop rule in its card: two agreeing running means at 90 %."""
    path = tmp_path / "bundle"
    shutil.copytree(shipped_bundle.path, path)
    card = json.loads((path / "model.json").read_text())
    card["acquisition"] = {"rule": {"min_confidence": 0.9, "stable_scans": 2}}
    (path / "model.json").write_text(json.dumps(card))
    return path


def _laser_nm(protocol: str) -> float:
    return 532.0 if protocol == "microspec" else 785.0  # the microspec range covers the model's axis at 532 nm


def _measure(tmp_path, bundle, port, protocol="obp", extra="", trigger="command"):
    svc = Service(config(tmp_path, bundle, port, protocol, extra + ADAPTIVE, _laser_nm(protocol)))
    try:
        return svc.measure(trigger), svc.store.last()
    finally:
        svc.close()


@pytest.mark.parametrize("protocol, extra", [("obp", ""), TCD1304])
def test_a_strong_sample_stops_as_soon_as_it_is_certain(tmp_path, ruled_bundle, shipped_bundle, protocol, extra):
    port = f"sim://{protocol}?paced=0&hold=1&seed=1&brightness=1"
    r, row = _measure(tmp_path, ruled_bundle, port, protocol, extra)
    fixed = Service(config(tmp_path / "fixed", ruled_bundle, port, protocol, extra, _laser_nm(protocol)))
    try:
        expected = fixed.measure("command")["verdict"]
    finally:
        fixed.close()
    assert r["ok"] and r["verdict"] == expected, r  # the fixed mode's verdict, sooner
    assert expected == first_sample_label(shipped_bundle)
    run = row.device["acquisition"]
    assert run["stop_reason"] == "certain" and run["rule"] == {"min_confidence": 0.9, "stable_scans": 2}
    assert run["min_scans"] <= run["scans"] < run["max_scans"]
    assert r["acquisition"]["scans"] == run["scans"]
    quick = run["quick_look"]  # at an eighth of a scan first; min_time_s (0.2 s) keeps it from stopping there
    assert quick == {"scan_s": pytest.approx(run["scan_s"] / 8), "stopped": False}
    assert run["integration_total_s"] == pytest.approx(run["scans"] * run["scan_s"] + quick["scan_s"])


def test_a_quick_look_gives_a_bright_samples_verdict_in_a_fraction_of_a_scan(tmp_path, shipped_bundle):
    def adaptive(min_time_s):
        svc = Service(config(tmp_path / str(min_time_s), shipped_bundle.path,
                             "sim://obp?paced=0&hold=1&seed=1&brightness=1",
                             extra=f'[acquisition]\nstop = "adaptive"\nmin_time_s = {min_time_s}\n'))
        try:
            return svc.measure("command"), svc.store.last().device["acquisition"]
        finally:
            svc.close()

    r, run = adaptive(0)
    assert r["ok"] and r["verdict"] == first_sample_label(shipped_bundle) and run["stop_reason"] == "certain"
    assert run["quick_look"]["stopped"] is True and run["scans"] == 0
    assert run["integration_total_s"] == pytest.approx(run["scan_s"] / 8)
    r, run = adaptive(0.05)  # negative control: a least time longer than the quick look
    assert r["verdict"] == first_sample_label(shipped_bundle) and run["quick_look"]["stopped"] is False
    assert run["scans"] >= 1


def _groupgets_service(tmp_path, bundle):
    """A service on the GroupGets simulator: its sketch fixes the integration, so no integration_s."""
    return Service(parse_config(f"""
[spectrometer]
protocol = "groupgets"
port = "sim://groupgets?paced=0&hold=1&seed=1"
laser_nm = 532.0
averages = 2
[model]
bundle = "{bundle}"
min_confidence = 0.8
{ADAPTIVE}
[data]
directory = "{tmp_path / 'data'}"
"""))


@pytest.mark.parametrize("protocol", ["microspec", "groupgets"])
def test_a_model_that_does_not_fit_the_instrument_never_stops_early(tmp_path, ruled_bundle, protocol):
    # The C12880MA's 15 nm line spread (about 450 cm-1 at 532 nm) blurs the SERS bands the model needs:
    # its running means never agree with confidence, so it scans to the maximum and says it is uncertain.
    if protocol == "microspec":
        r, row = _measure(tmp_path, ruled_bundle, "sim://microspec?paced=0&hold=1&seed=1&brightness=1", "microspec")
    else:
        svc = _groupgets_service(tmp_path, ruled_bundle)
        try:
            r, row = svc.measure("command"), svc.store.last()
        finally:
            svc.close()
    run = row.device["acquisition"]
    assert r["ok"] and r["verdict"] == "uncertain" and run["stop_reason"] == "max_time", r
    assert run["scans"] == run["max_scans"]
    if protocol == "groupgets":  # a scan is its fixed line period times the averages; no quick look
        assert run["quick_look"] is None and run["scan_s"] == pytest.approx(2 * GroupGetsSpectrometer.PERIOD)
        assert run["max_scans"] == int(2.0 // run["scan_s"])


def test_without_a_calibrated_rule_it_scans_for_the_maximum_time(tmp_path, shipped_bundle):
    path = tmp_path / "bundle"  # as a bundle written before the rule's calibration
    shutil.copytree(shipped_bundle.path, path)
    card = json.loads((path / "model.json").read_text())
    del card["acquisition"]
    (path / "model.json").write_text(json.dumps(card))
    r, row = _measure(tmp_path, path, "sim://obp?paced=0&hold=1&seed=1&brightness=1")
    run = row.device["acquisition"]
    assert r["ok"] and run["stop_reason"] == "max_time" and run["scans"] == run["max_scans"] and run["rule"] is None


def test_the_shipped_models_carry_their_calibrated_rule(tmp_path, shipped_bundle):
    rule = shipped_bundle.card["acquisition"]["rule"]
    checked = shipped_bundle.card["acquisition"]["checked"]
    assert checked["error"] <= checked["full_length_error"] + 0.005  # early stops no worse than full ones (held out)
    r, row = _measure(tmp_path, shipped_bundle.path, "sim://obp?paced=0&hold=1&seed=1&brightness=1")
    run = row.device["acquisition"]
    assert r["ok"] and run["stop_reason"] == "certain" and run["scans"] < run["max_scans"]
    # applied at the configured least confidence of a verdict (0.8) where the card's is lower
    assert run["rule"] == {"min_confidence": max(rule["min_confidence"], 0.8), "stable_scans": rule["stable_scans"]}
    assert r["verdict"] != "uncertain"


def test_a_sample_too_weak_at_the_maximum_time_is_refused_and_says_so(tmp_path, ruled_bundle):
    r, row = _measure(tmp_path, ruled_bundle, "sim://obp?paced=0&hold=1&seed=1&brightness=0.0001")
    assert r["ok"] is False and r["acquisition"]["stop_reason"] == "too_weak", r
    assert row.device["acquisition"]["scans"] == row.device["acquisition"]["max_scans"]


@pytest.mark.parametrize("protocol, extra", [("obp", ""), TCD1304, ("microspec", ""), ("groupgets", "")])
def test_the_button_trigger_measures_adaptively_too(tmp_path, ruled_bundle, protocol, extra):
    if protocol == "groupgets":
        svc = _groupgets_service(tmp_path, ruled_bundle)
        try:
            r, row = svc.measure("button"), svc.store.last()
        finally:
            svc.close()
    else:
        r, row = _measure(tmp_path, ruled_bundle, f"sim://{protocol}?paced=0&hold=1&seed=1&brightness=1", protocol,
                          extra, trigger="button")
    assert r["ok"] and row.trigger == "button" and row.device["acquisition"]["stop"] == "adaptive"
    # certain where the model fits the instrument; the C12880MA's blur keeps it scanning to the maximum
    assert row.device["acquisition"]["stop_reason"] == ("certain" if protocol in ("obp", "tcd1304") else "max_time")


@pytest.mark.parametrize("extra, message", [
    ('stop = "sometimes"\n', "acquisition.stop"),
    ("min_time_s = 5\nmax_time_s = 2\n", "min_time_s"),
    ("max_time_s = 0\n", "max_time_s"),
])
def test_bad_acquisition_settings_are_refused(tmp_path, shipped_bundle, extra, message):
    with pytest.raises(ConfigError, match=message):
        config(tmp_path, shipped_bundle.path, "sim://obp?paced=0", extra=f"[acquisition]\n{extra}")


@pytest.mark.parametrize("protocol, extra", [("obp", ""), TCD1304, ("microspec", "")])
def test_a_burning_sample_is_refused_never_averaged_into_a_verdict(tmp_path, ruled_bundle, protocol, extra):
    strict = ruled_bundle / "model.json"
    card = json.loads(strict.read_text())
    card["acquisition"]["rule"] = {"min_confidence": 0.9999999, "stable_scans": 6}  # keeps scanning
    strict.write_text(json.dumps(card))
    r, row = _measure(tmp_path, ruled_bundle, f"sim://{protocol}?paced=0&hold=1&seed=1&burn=0.5", protocol, extra)
    assert r["ok"] is False and r["rejected"] is True and r["acquisition"]["stop_reason"] == "drift", r
    assert "burning, bleaching or moving" in r["error"] and row.verdict is None
    assert row.device["acquisition"]["drift"]["drifted"] is True
    # negative control: the same sample, not burning, is not drift
    r, row = _measure(tmp_path / "stable", ruled_bundle, f"sim://{protocol}?paced=0&hold=1&seed=1", protocol, extra)
    assert r["acquisition"]["stop_reason"] != "drift" and not row.device["acquisition"]["drift"]["drifted"]


@pytest.mark.slow
def test_the_control_port_and_the_local_socket_measure_adaptively(tmp_path, ruled_bundle):
    master, slave = os.openpty()
    tty.setraw(slave)
    cfg = write_config(tmp_path, ruled_bundle, f"sim://obp?paced=0&hold=1&seed=1&scene={ruled_bundle / 'examples'}",
                       os.ttyname(slave), extra=ADAPTIVE)
    proc = subprocess.Popen([str(BIN / "raman-device"), "run", "--config", str(cfg)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    output = OutputLines(proc)
    try:
        assert wait_ready(output).startswith("ready: ready")
        os.write(master, b"MEASURE\n")
        (port_reply,) = read_lines(master, 1)
        local = subprocess.run([str(BIN / "raman-device"), "measure", "--config", str(cfg)], capture_output=True,
                               text=True, timeout=60)
        socket_reply = json.loads(local.stdout)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
        os.close(master)
        os.close(slave)
    for r in (port_reply, socket_reply):
        assert r["ok"] and r["acquisition"]["stop"] == "adaptive", r
        run = r["acquisition"]
        assert run["stop_reason"] == "certain" and run["scans"] < run["max_scans"]
