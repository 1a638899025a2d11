import json
import subprocess
import sys
from pathlib import Path

import pytest

BIN = Path(sys.executable).parent


def run(tool, *args):
    return subprocess.run([str(BIN / tool), *map(str, args)], capture_output=True, text=True)


def test_classify_prints_one_json_line_per_spectrum(shipped_bundle):
    files = [p for p, _ in shipped_bundle.examples]
    r = run("raman-device", "classify", "--model", shipped_bundle.path, *files)
    assert r.returncode == 0, r.stderr
    rows = [json.loads(line) for line in r.stdout.splitlines()]
    assert [row["file"] for row in rows] == [str(f) for f in files]
    for row, (_, label) in zip(rows, shipped_bundle.examples):
        assert row["label"] == label and row["model"] == shipped_bundle.model_id
        assert set(row["probabilities"]) == set(shipped_bundle.class_names)


def test_bad_files_are_reported_and_the_rest_classified(shipped_bundle, tmp_path):
    good = shipped_bundle.examples[0][0]
    nan = tmp_path / "nan.csv"
    nan.write_text("600,1\n601,nan\n602,1\n")
    narrow = tmp_path / "narrow.csv"
    narrow.write_text("".join(f"{x},{x % 7}\n" for x in range(800, 1200)))
    r = run("raman-device", "classify", "--model", shipped_bundle.path, nan, good, tmp_path / "absent.csv", narrow)
    assert r.returncode == 1
    assert len(r.stdout.splitlines()) == 1 and json.loads(r.stdout)["file"] == str(good)
    err = r.stderr
    assert "nan.csv" in err and "non-finite" in err
    assert "absent.csv: cannot open" in err
    assert "narrow.csv" in err and "does not cover" not in err and "refused rather than extrapolated" in err
    assert "3 of 4 file(s) could not be classified" in err
    assert "Traceback" not in err


def test_npz_input_gives_a_line_per_row(shipped_bundle, sers_npz, tmp_path):
    import numpy as np

    np.savez(tmp_path / "three.npz", X=sers_npz["X"][:3], wavenumber=sers_npz["wavenumber"])
    r = run("raman-device", "classify", "--model", shipped_bundle.path, tmp_path / "three.npz")
    assert r.returncode == 0, r.stderr
    assert [json.loads(x)["index"] for x in r.stdout.splitlines()] == [0, 1, 2]


def test_table_format_and_tflite_backend(shipped_bundle):
    files = [p for p, _ in shipped_bundle.examples]
    r = run("raman-device", "classify", "--model", shipped_bundle.path, "--format", "table", "--backend", "tflite",
            *files)
    assert r.returncode == 0, r.stderr
    assert "tflite backend" in r.stdout and "expected" in r.stdout
    assert len(r.stdout.splitlines()) == 3 + len(files)


@pytest.mark.parametrize("problem", ["absent", "corrupt"])
def test_bad_bundle_is_a_clear_error(shipped_bundle, tmp_path, problem):
    import shutil

    model = tmp_path / "m"
    if problem == "corrupt":
        shutil.copytree(shipped_bundle.path, model)
        (model / "model.npz").write_bytes(b"garbage")
    r = run("raman-device", "classify", "--model", model, shipped_bundle.examples[0][0])
    assert r.returncode == 2 and r.stderr.startswith("error: model bundle")
    assert "Traceback" not in r.stderr


def test_info_and_bridge_help(shipped_bundle):
    r = run("raman-device", "info", "--model", shipped_bundle.path)
    info = json.loads(r.stdout)
    assert info["id"] == shipped_bundle.model_id and info["flop_per_spectrum"] < 2e5
    bridge_help = run("raman-bridge", "--help")
    assert bridge_help.returncode == 0 and all(c in bridge_help.stdout for c in ("simulate", "probe", "acquire",
                                                                                  "calibrate"))
    assert "usage" in run("raman-train", "--help").stdout
