"""Unknown samples: the out-of-distribution detector, its threshold, bundles and the verdict ``unknown``."""
import hashlib
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from device.errors import BundleError
from device.inference.bundle import NPZ_FILE, load_bundle
from trainer.evaluation.ood import fit_detector

BIN = Path(sys.executable).parent
AXIS = np.linspace(400.0, 1600.0, 601)
CENTRES = {"alpha": (600, 1000), "beta": (700, 1200), "gamma": (850, 1400), "novel": (500, 950, 1300)}


def spectra(name: str, n: int, seed: int) -> np.ndarray:
    """Bands of one substance with position jitter, gain, baseline and noise."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        y = sum(np.exp(-0.5 * ((AXIS - c - rng.normal(0, 2)) / 10) ** 2) for c in CENTRES[name])
        out.append(rng.uniform(200, 2000) * (y + 0.05 * rng.normal(size=AXIS.size)) + rng.uniform(100, 500))
    return np.array(out)


def known(n: int, seed: int):
    Y = np.concatenate([spectra(c, n, seed + i) for i, c in enumerate(("alpha", "beta", "gamma"))])
    return Y, np.repeat(np.arange(3), n)


def test_a_novel_substance_scores_above_the_threshold_and_known_ones_below():
    Y, y = known(60, 0)
    d = fit_detector(Y, y, 3, false_rejection=0.02)
    assert d.false_rejection <= 0.02  # share of held-out known scores above the threshold, by construction
    Yk, _ = known(40, 100)  # fresh spectra of the known substances
    assert (d.scores(Yk) > d.threshold).mean() <= 0.1
    assert (d.scores(spectra("novel", 40, 200)) > d.threshold).mean() >= 0.95


def test_the_threshold_is_the_quantile_of_held_out_scores():
    Y, y = known(40, 1)
    loose, strict = fit_detector(Y, y, 3, false_rejection=0.2), fit_detector(Y, y, 3, false_rejection=0.01)
    assert loose.threshold < strict.threshold
    assert 0.1 <= loose.false_rejection <= 0.2


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A compact bundle trained with raman-train fit on three known substances (class folders of CSV files)."""
    root = tmp_path_factory.mktemp("ood")
    for i, name in enumerate(("alpha", "beta", "gamma", "novel")):
        folder = root / ("novel" if name == "novel" else "data") / name
        folder.mkdir(parents=True)
        for j, row in enumerate(spectra(name, 30, 10 + i)):
            np.savetxt(folder / f"{name}-{j}.csv", np.column_stack([AXIS, row]), delimiter=",")
    r = subprocess.run([str(BIN / "raman-train"), "fit", str(root / "data"), "--out", str(root / "bundle"),
                        "--model", "compact", "--epochs", "30"], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    return root


@pytest.mark.slow
def test_fit_stores_the_detector_and_classify_reports_unknown(trained):
    b = load_bundle(trained / "bundle")
    assert b.ood is not None and b.card["out_of_distribution"]["target_false_unknown"] == 0.01
    novel = sorted((trained / "novel" / "novel").iterdir())
    knownfiles = sorted((trained / "data" / "alpha").iterdir())[:10]
    r = subprocess.run([str(BIN / "raman-device"), "classify", "--model", str(b.path), *map(str, novel + knownfiles)],
                       capture_output=True, text=True)
    rows = [json.loads(line) for line in r.stdout.splitlines()]
    assert sum(row["unknown"] for row in rows[:len(novel)]) >= 0.9 * len(novel)
    assert not any(row["unknown"] for row in rows[len(novel):])
    assert all(row["label"] == "alpha" for row in rows[len(novel):])


@pytest.mark.slow
def test_a_malformed_detector_is_refused(trained, tmp_path):
    import shutil

    copy = tmp_path / "b"
    shutil.copytree(trained / "bundle", copy)
    with np.load(copy / NPZ_FILE) as z:
        arrays = {k: z[k] for k in z.files}
    arrays["ood.components"] = arrays["ood.components"][:, :-1]
    with open(copy / NPZ_FILE, "wb") as f:
        np.savez(f, **arrays)
    card = json.loads((copy / "model.json").read_text())
    card["files"][NPZ_FILE]["sha256"] = hashlib.sha256((copy / NPZ_FILE).read_bytes()).hexdigest()
    (copy / "model.json").write_text(json.dumps(card))
    with pytest.raises(BundleError, match="out-of-distribution detector is malformed"):
        load_bundle(copy)


@pytest.mark.slow
def test_ood_eval_cli(trained, tmp_path):
    r = subprocess.run([str(BIN / "raman-train"), "ood-eval", str(trained / "data"), "--report", str(tmp_path / "r"),
                        "--false-rejection", "0.05"], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    rows = json.loads((tmp_path / "r" / "report.json").read_text())["results"]["rows"]
    assert [row["left_out"] for row in rows] == ["alpha", "beta", "gamma"]
    assert all(row["unknown"] + row["uncertain"] + row["wrongly_labelled"] == pytest.approx(1.0) for row in rows)
    assert "| class left out |" in (tmp_path / "r" / "report.md").read_text()


@pytest.mark.slow
def test_detector_command_refits_without_touching_the_network(trained, tmp_path):
    import shutil

    copy = tmp_path / "b"
    shutil.copytree(trained / "bundle", copy)
    before = load_bundle(copy)
    r = subprocess.run([str(BIN / "raman-train"), "detector", str(copy), str(trained / "data"), "--false-rejection",
                        "0.1"], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    after = load_bundle(copy)
    assert after.ood.threshold < before.ood.threshold and after.model_id != before.model_id
    assert all(np.array_equal(a.kernel, b.kernel) for a, b in zip(after.layers, before.layers))
    assert [label for _, label in after.examples] == [label for _, label in before.examples]
    assert "by raman-train detector" in after.card["out_of_distribution"]["fitted"]
    wrong = subprocess.run([str(BIN / "raman-train"), "detector", str(copy), str(trained / "novel")],
                           capture_output=True, text=True)
    assert wrong.returncode == 2 and "give the data the model was trained on" in wrong.stderr


def test_principal_axes_of_tall_data_are_the_svds():
    from trainer.evaluation.ood import principal_axes

    rng = np.random.default_rng(0)
    X = rng.normal(size=(400, 30)) * np.linspace(5, 0.1, 30)
    Xc = X - X.mean(axis=0)
    svd = np.linalg.svd(Xc, full_matrices=False)[2][:6]
    ours = principal_axes(Xc, 6)
    assert np.allclose(np.abs(np.sum(ours * svd, axis=1)), 1.0, atol=1e-8)  # the same axes up to sign
    # Negative control: the axes of other data differ.
    other = principal_axes(rng.normal(size=(400, 30)), 6)
    assert not np.allclose(np.abs(np.sum(other * svd, axis=1)), 1.0, atol=1e-3)
