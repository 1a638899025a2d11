"""The raman-device command line: classify (JSON, table, TFLite), info, and the errors a user meets."""
import json
import subprocess
import sys
from pathlib import Path

import pytest

BIN = Path(sys.executable).parent


def run(tool, *args):
    return subprocess.run([str(BIN / tool), *map(str, args)], capture_output=True, text=True)


@pytest.mark.slow
def test_classify_prints_one_json_line_per_spectrum(shipped_bundle):
    files = [p for p, _ in shipped_bundle.examples]
    r = run("raman-device", "classify", "--model", shipped_bundle.path, *files)
    assert r.returncode == 0, r.stderr
    rows = [json.loads(line) for line in r.stdout.splitlines()]
    assert [row["file"] for row in rows] == [str(f) for f in files]
    for row, (_, label) in zip(rows, shipped_bundle.examples):
        assert row["label"] == label and row["model"] == shipped_bundle.model_id
        assert set(row["probabilities"]) == set(shipped_bundle.class_names)


@pytest.mark.slow
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


@pytest.mark.slow
def test_npz_input_gives_a_line_per_row(shipped_bundle, sers_npz, tmp_path):
    import numpy as np

    np.savez(tmp_path / "three.npz", X=sers_npz["X"][:3], wavenumber=sers_npz["wavenumber"])
    r = run("raman-device", "classify", "--model", shipped_bundle.path, tmp_path / "three.npz")
    assert r.returncode == 0, r.stderr
    assert [json.loads(x)["index"] for x in r.stdout.splitlines()] == [0, 1, 2]


@pytest.mark.slow
def test_table_format_and_tflite_backend(shipped_bundle):
    files = [p for p, _ in shipped_bundle.examples]
    r = run("raman-device", "classify", "--model", shipped_bundle.path, "--format", "table", "--backend", "tflite",
            *files)
    assert r.returncode == 0, r.stderr
    assert "tflite backend" in r.stdout and "expected" in r.stdout
    assert len(r.stdout.splitlines()) == 3 + len(files)


@pytest.mark.slow
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


@pytest.mark.slow
def test_info_and_bridge_help(shipped_bundle):
    r = run("raman-device", "info", "--model", shipped_bundle.path)
    info = json.loads(r.stdout)
    assert info["id"] == shipped_bundle.model_id and info["flop_per_spectrum"] < 2e5
    assert (info["kind"], info["network_kind"]) == (shipped_bundle.card["network"]["kind"], "dense")
    assert info["kind"] in ("compact", "logreg", "linear-svm", "pca-logreg", "pls-logreg")
    bridge_help = run("raman-bridge", "--help")
    assert bridge_help.returncode == 0 and all(c in bridge_help.stdout for c in ("simulate", "probe", "acquire",
                                                                                  "calibrate"))
    assert "usage" in run("raman-train", "--help").stdout


@pytest.mark.slow
def test_info_names_a_network_kind_this_release_does_not_know(tmp_path):
    import numpy as np
    from helpers import make_bundle

    import device
    from device.fileio import sha256_file
    from device.inference.bundle import CARD_FILE, NPZ_FILE

    b = make_bundle(tmp_path / "b")
    r = run("raman-device", "info", "--model", b.path)
    assert json.loads(r.stdout)["written_by"] == device.__version__
    with np.load(b.path / NPZ_FILE, allow_pickle=False) as z:
        arrays = {k: z[k] for k in z.files}
    arrays.update(network_kind=np.array("transformer"),
                  introduced_in=np.array(json.dumps({"network_kind": {"transformer": "0.7.0"}})))
    np.savez(b.path / NPZ_FILE, **arrays)
    card = json.loads((b.path / CARD_FILE).read_text())
    card["files"][NPZ_FILE]["sha256"] = sha256_file(b.path / NPZ_FILE)
    (b.path / CARD_FILE).write_text(json.dumps(card))
    r = run("raman-device", "info", "--model", b.path)
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert "network kind 'transformer' was introduced in raman-edge 0.7.0" in r.stderr
    assert "update raman-edge on the device to 0.7.0 or later" in r.stderr


def band_file(path):
    """A single broad band, unlike every class of the shipped model (its detector calls it unknown)."""
    import numpy as np

    x = np.arange(450.0, 2050.0)
    path.write_text("".join(f"{v},{1 + 100 * np.exp(-0.5 * ((v - 1200) / 30) ** 2):.6g}\n" for v in x))
    return path


@pytest.mark.slow
def test_unknown_spectrum_is_labelled_unknown_in_json_and_table(shipped_bundle, tmp_path):
    band = band_file(tmp_path / "band.csv")
    known, label = shipped_bundle.examples[0]
    r = run("raman-device", "classify", "--model", shipped_bundle.path, band, known)
    assert r.returncode == 0, r.stderr
    odd, ok = [json.loads(line) for line in r.stdout.splitlines()]
    assert odd["unknown"] is True and odd["label"] == "unknown" and odd["confidence"] is None
    assert odd["nearest"] == max(odd["probabilities"], key=odd["probabilities"].get)
    assert ok["unknown"] is False and ok["label"] == label and ok["confidence"] > 0.5 and "nearest" not in ok
    table = run("raman-device", "classify", "--model", shipped_bundle.path, "--format", "table", band)
    row = table.stdout.splitlines()[-1].split()
    assert row[:3] == ["band.csv", "unknown", "(nearest"] and row[-1] == "-"


@pytest.mark.slow
def test_table_tells_files_of_the_same_name_apart(shipped_bundle, tmp_path):
    import shutil

    picked = {}
    for path, label in shipped_bundle.examples:
        picked.setdefault(label, path)
    for label, path in picked.items():
        (tmp_path / "set" / label).mkdir(parents=True)
        shutil.copy(path, tmp_path / "set" / label / "1.txt")
    files = [tmp_path / "set" / label / "1.txt" for label in picked]
    r = run("raman-device", "classify", "--model", shipped_bundle.path, "--format", "table", *files)
    assert r.returncode == 0, r.stderr
    shown = [line.split()[0] for line in r.stdout.splitlines()[3:]]
    assert shown == [f"{label}/1.txt" for label in picked] and len(set(shown)) == 6
    alone = run("raman-device", "classify", "--model", shipped_bundle.path, "--format", "table", files[0])
    assert alone.stdout.splitlines()[-1].split()[0] == "1.txt"  # nothing to tell apart: the base name


def test_short_names():
    from device.cli import short_names

    assert short_names(["/d/A/1.txt", "/d/B/1.txt", "/d/A/2.txt"]) == ["A/1.txt", "B/1.txt", "2.txt"]
    assert short_names(["/x/a/s/1.txt", "/y/a/s/1.txt", "/x/a/s/1.txt"]) == ["x/a/s/1.txt", "y/a/s/1.txt",
                                                                              "x/a/s/1.txt"]
    assert short_names(["/1.txt", "/q/1.txt"]) == ["/1.txt", "q/1.txt"]
