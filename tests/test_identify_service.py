"""Identify, verify and mixtures through the measurement service, its control protocol, record and report."""
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from device.inference.library import load_library
from device.service.config import parse_config
from device.service.control import dispatch
from device.service.measurement import Service
from device.service.record import RecordStore, history_entry

ROOT = Path(__file__).resolve().parents[1]
MODEL = ROOT / "models" / "sers-pesticides"
LIBRARY = ROOT / "models" / "libraries" / "sers-pesticides"


def service(tmp_path, library: str = f'path = "{LIBRARY}"', seed: int = 2, scene: Path = MODEL / "examples") -> Service:
    text = f"""
[spectrometer]
protocol = "obp"
port = "sim://obp?paced=0&seed={seed}&scene={scene}"
laser_nm = 785.0
integration_s = 0.05
averages = 2
[model]
bundle = "{MODEL}"
[library]
{library}
[data]
directory = "{tmp_path / 'data'}"
"""
    return Service(parse_config(text))


def example(name: str) -> Path:
    """The first example spectrum of class ``name`` shipped with the model: a scene the simulator shows always."""
    return sorted((MODEL / "examples" / name).glob("*"))[0]


@pytest.mark.slow
def test_identify_verify_and_classify_through_the_control_protocol(tmp_path):
    truth = "Phosmet_present"
    svc = service(tmp_path, scene=example(truth))
    library = load_library(LIBRARY)
    found = dispatch("MEASURE IDENTIFY", svc)
    assert found["ok"] and found["mode"] == "identify" and found["library"] == library.library_id
    assert found["hits"][0]["name"] == truth and found["match"] and found["verdict"] == truth
    assert found["hits"][0]["hqi"] >= library.no_match_below and "mixture" in found
    passed = dispatch(f"measure verify {truth}", svc)
    assert passed["ok"] and passed["result"] == "PASS" and passed["p_value"] >= 0.05, passed
    failed = dispatch("MEASURE VERIFY Oxamyl_present", svc)
    assert failed["ok"] and failed["result"] == "FAIL" and failed["p_value"] < 0.05, failed  # negative control
    classified = dispatch("MEASURE", svc)  # the configured mode: classify, unmixed against the library
    assert classified["verdict"] == truth and classified["mixture"]["is_mixture"] is False
    unknown = dispatch("MEASURE VERIFY acetone", svc)
    assert not unknown["ok"] and "has no entry 'acetone'" in unknown["error"]
    assert svc.store.count() == 4  # a refused mode is answered before anything is acquired or recorded
    rows = svc.store.query()
    by_mode = {r.analysis["mode"]: r for r in rows if r.analysis["mode"] != "verify"}
    assert by_mode["identify"].verdict == truth and by_mode["identify"].model is None
    assert set(by_mode["identify"].evidence) >= {"axis", "sample", "hit.0", "fit", "residual"}
    assert by_mode["classify"].analysis["bands"] and "relevance" in by_mode["classify"].evidence
    assert by_mode["classify"].model == svc.bundle.model_id
    shown = [history_entry(r)["analysis"] for r in rows]
    assert any(s.startswith(f"verify {truth}: PASS") for s in shown), shown
    assert svc.status()["library"] == library.library_id
    assert svc.model_info()["library"]["entries"] == len(library.entry_names)
    svc.close()
    out = tmp_path / "report"
    r = subprocess.run([sys.executable, "-m", "trainer.cli", "report", "--db", str(tmp_path / "data" / "record.db"),
                        str(by_mode["identify"].id), "--out", str(out)], capture_output=True, text=True, cwd=ROOT)
    assert r.returncode == 0, r.stderr
    assert (out / f"{by_mode['identify'].id}.pdf").stat().st_size > 10_000


@pytest.mark.slow
def test_a_mixture_is_never_one_confident_class(tmp_path):
    """A 50:50 sum of two pesticides' example spectra, shown by the simulator, is reported as their mixture."""
    scene_dir = tmp_path / "scene"
    a, b = (example(name) for name in ("Phosmet_present", "Coumaphos_present"))
    from device.inference.readers import read_spectra
    from device.inference.snr import band_height

    sa, sb = read_spectra(a)[0], read_spectra(b)[0]
    mixed = sa.intensity / band_height(sa.intensity) + np.interp(sa.shift, sb.shift, sb.intensity) / band_height(
        sb.intensity)
    (scene_dir / "mixture").mkdir(parents=True)
    np.savetxt(scene_dir / "mixture" / "mix.csv", np.column_stack([sa.shift, 1000 * mixed]), delimiter=",")
    svc = service(tmp_path, seed=1, scene=scene_dir)
    r = svc.measure("command")
    assert r["ok"] and r["verdict"].startswith("mixture of ") and r["confidence"] is None, r
    assert {c["name"] for c in r["mixture"]["components"]} == {"Phosmet_present", "Coumaphos_present"}
    found = svc.measure("command", "identify")
    assert found["verdict"] in ("mixture of Phosmet_present + Coumaphos_present",
                                "mixture of Coumaphos_present + Phosmet_present")
    svc.close()


def _measured_library(tmp_path, classes, repeats: int = 6) -> Path:
    """A library of spectra recorded by the service on the simulator: ``repeats`` of each class's first example."""
    from trainer.data.dataset import load_dataset
    from trainer.library import build_library

    data = tmp_path / "measured"
    for name in classes:
        svc = service(tmp_path / name, library="", seed=len(name), scene=example(name))
        (data / name).mkdir(parents=True)
        for i in range(repeats):
            assert svc.measure("command")["ok"]
            rec = svc.store.last()
            np.savetxt(data / name / f"{i}.csv", np.column_stack([rec.shift, rec.intensity]), delimiter=",")
        svc.close()
    ds = load_dataset(data, axis=load_library(LIBRARY).axis)
    return build_library(ds, tmp_path / "library", name="measured", matching="derivative").path


@pytest.mark.slow
def test_verify_against_a_library_recorded_on_the_instrument(tmp_path):
    """References recorded on the same (simulated) instrument: the right material passes, others fail."""
    classes = ("Phosmet_present", "Coumaphos_present", "Oxamyl_present")
    measured = _measured_library(tmp_path, classes)
    svc = service(tmp_path / "verify", library=f'path = "{measured}"\nmode = "verify"\nexpect = "Phosmet_present"',
                  seed=99, scene=example("Phosmet_present"))
    passed = dispatch("MEASURE", svc)  # the configured mode and expected entry
    assert passed["ok"] and passed["result"] == "PASS" and passed["p_value"] >= 0.05, passed
    for other in classes[1:]:  # negative controls
        failed = dispatch(f"MEASURE VERIFY {other}", svc)
        assert failed["ok"] and failed["result"] == "FAIL" and failed["p_value"] < 0.05, failed
    assert svc.store.last().analysis["expected"] == classes[-1]
    svc.close()


def test_modes_need_a_library_and_verify_an_entry(tmp_path):
    svc = service(tmp_path, library="")
    r = dispatch("MEASURE IDENTIFY", svc)
    assert not r["ok"] and "identify needs a reference library" in r["error"]
    assert "needs the library entry" in dispatch("MEASURE VERIFY", svc)["error"]
    assert "not 'fast'" in dispatch("MEASURE fast", svc)["error"]
    assert "takes nothing more" in dispatch("MEASURE IDENTIFY now", svc)["error"]
    assert svc.store is None or svc.store.count() == 0
    svc.close()
    with pytest.raises(Exception, match="has no entry 'acetone'"):
        service(tmp_path, library=f'path = "{LIBRARY}"\nmode = "verify"\nexpect = "acetone"')


def test_the_record_keeps_analysis_and_evidence_across_reopening(tmp_path):
    store = RecordStore(tmp_path / "r.db")
    from device.service.record import Record

    axis = np.linspace(500, 2000, 50)
    rid = store.add(Record(trigger="t", device={}, verdict="PASS", analysis={"mode": "verify", "expected": "x",
                                                                              "p_value": 0.4, "alpha": 0.05,
                                                                              "result": "PASS"},
                           evidence={"axis": axis, "sample": np.sin(axis)}))
    store.close()
    again = RecordStore(tmp_path / "r.db").get(rid)
    assert again.analysis["result"] == "PASS" and np.array_equal(again.evidence["sample"], np.sin(axis))
    assert json.loads(json.dumps(history_entry(again)))["analysis"].startswith("verify x: PASS")
