"""The measurement service against simulated spectrometers, and the control-port protocol."""
import json
import shutil
import threading
from pathlib import Path

import numpy as np
import pytest
from helpers import shipped_variant

from device.service.config import parse_config
from device.service.control import COMMANDS, LineReader, dispatch, read_reply, reply
from device.service.measurement import Service
from device.service.record import RECORD_FILE
from firmware_bridge.sim.instrument import Scene

pytestmark = pytest.mark.device  # needs only the device extra


def config(tmp_path, bundle, port, protocol="obp", extra="", laser_nm=785.0):
    if port.startswith("sim://") and "scene=" not in port:  # the shipped examples, also from an installed wheel
        port += f"&scene={Path(bundle) / 'examples'}"
    text = f"""
[spectrometer]
protocol = "{protocol}"
port = "{port}"
laser_nm = {laser_nm}
integration_s = 0.05
averages = 2
{extra}
[model]
bundle = "{bundle}"
min_confidence = 0.8
[data]
directory = "{tmp_path / 'data'}"
"""
    return parse_config(text)


def first_sample_label(bundle) -> str:
    """The label of the example the simulator's default scene shows first (the shipped examples, in order)."""
    name = Scene.from_path(bundle.path / "examples").current()[2]
    return {p.name: label for p, label in bundle.examples}[name]


@pytest.mark.slow
def test_measure_records_and_replies(tmp_path, shipped_bundle):
    svc = Service(config(tmp_path, shipped_bundle.path, "sim://obp?paced=0&seed=2"))
    assert svc.self_test == {"passed": True, "examples": 12, "reason": None}
    r = svc.measure("command")
    assert r["ok"] and r["id"] == 1 and r["model"] == shipped_bundle.model_id
    assert r["verdict"] == first_sample_label(shipped_bundle) and r["confidence"] >= 0.8, r
    row = svc.store.last()
    assert row.trigger == "command" and row.raw.shape == (1024,) and row.shift.shape == (1024,)
    assert row.device["serial"] == "STS04211" and row.device["dark_subtracted"] is True
    assert row.model_files["model.npz"] == shipped_bundle.card["files"]["model.npz"]["sha256"]
    assert svc._spectrometer.port.line.device.laser_on is False
    assert svc.status()["state"] == "ready" and svc.status()["records"] == 1
    svc.close()
    assert (tmp_path / "data" / RECORD_FILE).is_file()


def test_busy_while_measuring(tmp_path, shipped_bundle):
    """A trigger while a measurement acquires is told busy; the running one is not disturbed."""
    acquiring, release = threading.Event(), threading.Event()

    def laser(on):  # the GPIO laser line: the first switch-on holds the acquisition until released
        if on and not acquiring.is_set():
            acquiring.set()
            release.wait(30)

    cfg = config(tmp_path, shipped_bundle.path, "sim://tcd1304?paced=0", "tcd1304",
                 "coefficients = [772.5, 0.086, -2.1e-6]")
    svc = Service(cfg, laser=laser)
    first = {}
    t = threading.Thread(target=lambda: first.update(svc.measure("button")), daemon=True)
    t.start()
    try:
        assert acquiring.wait(30), "the measurement never switched the laser on"
        assert svc.measure("control-port") == {"ok": False, "busy": True, "error": "busy: a measurement is running"}
        assert svc.status()["state"] == "measuring"
    finally:
        release.set()
        t.join(30)
    assert not t.is_alive() and first["ok"] and svc.counts["busy"] == 1 and svc.store.count() == 1
    assert svc.store.last().trigger == "button" and svc.status()["state"] == "ready"
    svc.close()


def test_missing_spectrometer_is_reported_and_recorded(tmp_path, shipped_bundle):
    svc = Service(config(tmp_path, shipped_bundle.path, "/dev/ttyNOSUCH"))
    r = svc.measure("button")
    assert not r["ok"] and "cannot open /dev/ttyNOSUCH" in r["error"]
    assert svc.status()["state"] == "no spectrometer"
    row = svc.store.last()
    assert row.verdict is None and row.error.startswith("PortGoneError")
    svc.close()


def test_self_test_failure_refuses_verdicts(tmp_path, shipped_bundle):
    bundle = tmp_path / "bundle"
    shutil.copytree(shipped_bundle.path, bundle)
    card = json.loads((bundle / "model.json").read_text())
    first = card["examples"][0]
    first["label"] = "Oxamyl_present" if first["label"] == "No_pest_present" else "No_pest_present"
    (bundle / "model.json").write_text(json.dumps(card))
    svc = Service(config(tmp_path, bundle, "sim://obp?paced=0"))
    assert not svc.self_test["passed"] and "expected" in svc.self_test["reason"]
    r = svc.measure("button")
    assert not r["ok"] and "self-test" in r["error"] and svc.status()["state"] == "self-test failed"
    svc.close()


def test_gpio_laser_is_off_after_success_and_error(tmp_path, shipped_bundle):
    states = []
    cfg = config(tmp_path, shipped_bundle.path, "sim://tcd1304?paced=0", "tcd1304",
                 "coefficients = [772.5, 0.086, -2.1e-6]")
    svc = Service(cfg, laser=states.append)
    assert svc.measure("button")["ok"]
    assert states[-1] is False and True in states
    svc._spectrometer.port.line.vanish(10)  # the spectrometer disappears mid-use
    r = svc.measure("button")
    assert not r["ok"] and states[-1] is False
    svc.close()


@pytest.mark.slow
def test_control_protocol(tmp_path, shipped_bundle):
    svc = Service(config(tmp_path, shipped_bundle.path, "sim://obp?paced=0"))
    reader = LineReader()
    lines = reader.feed(b"help\r\nSTATUS\nMODEL\nLAST\nfoo\nMEASURE now\n" + b"X" * 100 + b"\n\xff\n\n")
    replies = [json.loads(reply(dispatch(text, svc) if text is not None else {"ok": False, "error": err}))
               for text, err in lines]
    assert replies[0]["commands"] == COMMANDS
    assert replies[1]["state"] == "ready" and replies[2]["classes"] == list(shipped_bundle.class_names)
    assert replies[3] == {"command": "LAST", "ok": False, "error": "no measurement recorded yet"}
    assert "unknown command 'foo'" in replies[4]["error"]
    assert "MEASURE takes no argument or one of CLASSIFY, IDENTIFY, VERIFY NAME, not 'now'" in replies[5]["error"]
    assert "longer than 64 bytes" in replies[6]["error"] and "not ASCII" in replies[7]["error"]
    assert "empty line" in replies[8]["error"]
    m = dispatch("measure", svc)
    assert m["command"] == "MEASURE" and m["ok"] and dispatch("LAST", svc)["id"] == m["id"]
    assert svc.store.count() == 1  # only the real MEASURE made a record
    assert reader.feed(b"STAT") == [] and reader.feed(b"US\n") == [("STATUS", None)]
    svc.close()


def test_bundle_without_examples_names_the_fix(tmp_path, shipped_bundle):
    bare = shipped_variant(shipped_bundle, tmp_path / "bare", "bare", examples=False)
    svc = Service(config(tmp_path, bare.path, "sim://obp?paced=0"))
    reason = svc.self_test["reason"]
    assert not svc.self_test["passed"] and "no example spectra" in reason
    assert "raman-train fit" in reason and "--examples DIR" in reason and "raman-device update-model" in reason
    r = svc.measure("button")
    assert not r["ok"] and "raman-train fit" in r["error"]
    svc.close()


def test_self_test_failure_names_the_fix(tmp_path, shipped_bundle):
    wrong = shipped_variant(shipped_bundle, tmp_path / "wrong", "wrong", relabel=True)
    svc = Service(config(tmp_path, wrong.path, "sim://obp?paced=0"))
    assert not svc.self_test["passed"] and "expected" in svc.self_test["reason"]
    assert "raman-device update-model --rollback" in svc.self_test["reason"]
    svc.close()


def sts_shift_range(laser_nm):
    """The simulated STS unit's Raman-shift range: its polynomial over its 1024 pixels, for a laser line."""
    from firmware_bridge.protocols.obp.simulator import STS_COEFFICIENTS

    nm = np.polynomial.polynomial.polyval(np.arange(1024), STS_COEFFICIENTS)
    shift = 1e7 / laser_nm - 1e7 / nm
    return shift.min(), shift.max()


@pytest.mark.slow
def test_a_model_axis_the_spectrometer_cannot_cover_is_refused(tmp_path, shipped_bundle):
    lo, hi = sts_shift_range(900.0)
    assert lo < 501 and 1000 < hi < 1999  # the shipped axis, 501-1999 cm-1, is not covered with this laser
    svc = Service(config(tmp_path, shipped_bundle.path, "sim://obp?paced=0", laser_nm=900.0))
    assert svc.try_connect()
    status = svc.status()
    assert status["state"] == "model does not fit the spectrometer"
    assert status["shift_range_cm-1"] == [round(lo, 1), round(hi, 1)]
    expected = f"axis 501..1999 cm-1 is outside what the spectrometer covers, {lo:.0f}..{hi:.0f} cm-1 with laser 900 nm"
    assert expected in status["model_problem"]
    r = svc.measure("button")
    assert not r["ok"] and expected in r["error"]
    assert svc._spectrometer.port.line.device.laser_on is False
    assert svc.store.last().error.startswith("refused: ") and svc.store.last().raw is None  # nothing acquired
    svc.close()
    control = Service(config(tmp_path, shipped_bundle.path, "sim://obp?paced=0", laser_nm=785.0))
    assert control.try_connect() and control.status()["state"] == "ready" and control.status()["model_problem"] is None
    control.close()


@pytest.mark.slow
def test_reload_refuses_a_model_the_spectrometer_cannot_cover(tmp_path, shipped_bundle):
    installed = tmp_path / "current"
    shutil.copytree(shipped_bundle.path, installed)
    svc = Service(config(tmp_path, installed, "sim://obp?paced=0"))
    assert svc.try_connect()
    lo, hi = sts_shift_range(785.0)
    shifted = shipped_variant(shipped_bundle, tmp_path / "shifted", "shifted", shift_cm1=-1102.0)
    assert shifted.axis.start < lo  # -601 cm-1: below what the spectrometer delivers
    shutil.rmtree(installed)
    shutil.copytree(shifted.path, installed)
    r = svc.reload()
    assert not r["ok"] and f"still serving {shipped_bundle.model_id}" in r["error"]
    assert f"axis -601..897 cm-1 is outside what the spectrometer covers, {lo:.0f}..{hi:.0f} cm-1 with laser 785 nm" \
        in r["error"]
    m = svc.measure("command")
    assert m["ok"] and m["model"] == shipped_bundle.model_id
    svc.close()


@pytest.mark.slow
def test_unknown_sample_is_reported_as_unknown_everywhere(tmp_path, shipped_bundle):
    """A single broad band is unlike every pesticide class: the reply, LAST and the record all say unknown."""
    x = np.arange(200.0, 3000.0)
    band = tmp_path / "band.csv"
    band.write_text("".join(f"{v},{1 + 100 * np.exp(-0.5 * ((v - 1200) / 30) ** 2):.6g}\n" for v in x))
    svc = Service(config(tmp_path, shipped_bundle.path, f"sim://obp?paced=0&seed=3&scene={band}"))
    r = svc.measure("command")
    assert r["ok"] and r["verdict"] == "unknown" and r["ood_score"] > 1, r
    assert r["label"] == "unknown" and r["confidence"] is None and r["nearest"] in shipped_bundle.class_names
    assert r["nearest"] == max(r["probabilities"], key=r["probabilities"].get)
    last = dispatch("LAST", svc)
    assert last["verdict"] == "unknown" and last["confidence"] is None
    row = svc.store.last()
    assert row.verdict == "unknown" and row.confidence is None and row.probabilities[r["nearest"]] > 0
    svc.close()
    known = Service(config(tmp_path / "known", shipped_bundle.path, "sim://obp?paced=0&seed=3"))
    k = known.measure("command")  # a known sample: its label and confidence, no nearest
    assert k["ok"] and k["verdict"] == k["label"] == first_sample_label(shipped_bundle), k
    assert isinstance(k["confidence"], float) and "nearest" not in k
    known.close()


@pytest.mark.slow
def test_last_shows_the_time_as_history_does(tmp_path, shipped_bundle):
    import subprocess
    import sys
    from datetime import datetime, timezone

    svc = Service(config(tmp_path, shipped_bundle.path, "sim://obp?paced=0"))
    assert svc.measure("command")["ok"]
    last = dispatch("LAST", svc)
    stored = svc.store.last().time
    svc.close()
    shown = datetime.fromisoformat(last["time"])
    assert shown.tzinfo == timezone.utc and abs(shown.timestamp() - stored) < 1  # ISO 8601 UTC, to the second
    history = subprocess.run([str(Path(sys.executable).parent / "raman-device"), "history", "--db",
                              str(tmp_path / "data" / RECORD_FILE)], capture_output=True, text=True)
    assert json.loads(history.stdout)["time"] == last["time"]


def test_a_reply_read_in_pieces_is_the_payload_sent():
    payload = {"ok": True, "verdict": "alpha", "probabilities": {"alpha": 0.9, "beta": 0.1}}
    line = reply(payload)
    pieces = iter([line[:5], line[5:17], line[17:], b"the next reply"])
    assert read_reply(lambda: next(pieces)) == payload
    assert next(pieces) == b"the next reply"  # read up to the end of the line, no further
    with pytest.raises(ValueError):  # closed before the line ended
        read_reply(iter([line[:-3], b""]).__next__)
