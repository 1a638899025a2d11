"""Training data loading, splits, metrics and ``raman-train fit``: what the trainer learns and reports."""
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from sklearn import metrics as skm

from device.inference.bundle import load_bundle
from device.inference.classifier import Classifier
from device.inference.inputs import Standardizer
from device.inference.spectrum import Axis
from trainer.data.dataset import DatasetError, load_dataset
from trainer.data.splits import holdout_split, parse_holdout
from trainer.evaluation.metrics import classification_report

BIN = Path(sys.executable).parent


@pytest.mark.slow
def test_class_folders_resampled_to_common_overlap(raw_subset):
    ds = load_dataset(raw_subset)
    assert ds.X.shape[0] == 180 and len(ds.class_names) == 6
    assert ds.counts() == {c: 30 for c in ds.class_names}
    # the instrument files differ slightly in their axes: the default is the range all cover
    assert 500.8 < ds.axis.start < 501.6 and 1998.2 < ds.axis.stop < 1999.3
    assert ds.axis.step == pytest.approx(0.964, abs=2e-3)
    assert np.isfinite(ds.X).all() and ds.sources[0].endswith(".CSV")


@pytest.mark.slow
def test_class_folders_on_a_chosen_axis(raw_subset):
    ds = load_dataset(raw_subset, Axis(600, 1800, 1201))
    assert ds.X.shape == (180, 1201)


def test_npz_keeps_metadata_and_wide_table_matches(sers_npz, tmp_path):
    idx = np.arange(0, 6978, 500)
    np.savez(tmp_path / "d.npz", X=sers_npz["X"][idx], y=sers_npz["y"][idx], wavenumber=sers_npz["wavenumber"],
             class_names=sers_npz["class_names"], concentration_ppm=sers_npz["concentration_ppm"][idx])
    ds = load_dataset(tmp_path / "d.npz")
    assert str(ds.axis) == "501:1999:1499"
    np.testing.assert_array_equal(ds.meta["concentration_ppm"], sers_npz["concentration_ppm"][idx])
    names = sers_npz["class_names"][sers_npz["y"][idx]]
    wn = sers_npz["wavenumber"][::-1]  # a table written high-to-low shift
    lines = ["label," + ",".join(f"{w:g}" for w in wn)]
    lines += [f"{n}," + ",".join(repr(float(v)) for v in row[::-1]) for n, row in zip(names, sers_npz["X"][idx])]
    (tmp_path / "t.csv").write_text("\n".join(lines))
    table = load_dataset(tmp_path / "t.csv")
    assert table.axis == ds.axis
    np.testing.assert_allclose(table.X, ds.X)
    assert [table.class_names[k] for k in table.y] == list(names)


@pytest.mark.slow
def test_dataset_errors(raw_subset, tmp_path):
    root = tmp_path / "folders"
    shutil.copytree(raw_subset / "Oxamyl_present", root / "A")
    (root / "B").mkdir()
    with pytest.raises(DatasetError, match="class folder .*B holds no spectrum files"):
        load_dataset(root)
    (root / "B" / "bad.csv").write_text("500,1\n501,x\n502,3\n")
    with pytest.raises(DatasetError, match="unreadable training file: .*bad.csv: line 2"):
        load_dataset(root)
    (root / "B" / "bad.csv").write_text("".join(f"{x},{x % 5}\n" for x in range(2100, 2600)))
    with pytest.raises(DatasetError, match="do not overlap"):
        load_dataset(root)
    with pytest.raises(DatasetError, match="not found"):
        load_dataset(tmp_path / "nothing")
    (tmp_path / "two.csv").write_text("label,name,500,501\na,x,1,2\n")
    with pytest.raises(DatasetError, match="exactly one label column"):
        load_dataset(tmp_path / "two.csv")
    np.savez(tmp_path / "m.npz", X=np.ones((2, 5)))
    with pytest.raises(DatasetError, match="missing"):
        load_dataset(tmp_path / "m.npz")


@pytest.mark.slow
def test_holdout_split_tests_every_class(sers_npz, tmp_path):
    np.savez(tmp_path / "d.npz", **{k: sers_npz[k] for k in ("X", "y", "wavenumber", "class_names",
                                                             "concentration_ppm")})
    ds = load_dataset(tmp_path / "d.npz")
    train, test, desc = holdout_split(ds, *parse_holdout("concentration_ppm=0.5"), seed=0)
    assert np.intersect1d(train, test).size == 0 and train.size + test.size == 6978
    conc = ds.meta["concentration_ppm"]
    assert set(conc[train]) == {0, 1, 2, 5, 10} and set(conc[test]) == {0, 0.5}
    control = list(ds.class_names).index("No_pest_present")
    share = (conc == 0.5).sum() / (conc > 0).sum()
    assert (ds.y[test] == control).sum() == round(share * 663)
    assert "No_pest_present" in desc
    with pytest.raises(DatasetError, match="no per-spectrum 'dose'"):
        holdout_split(ds, "dose", [1.0], 0)


def test_metrics_match_scikit_learn():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 4, 500)
    p = np.where(rng.random(500) < 0.7, y, rng.integers(0, 4, 500))
    p[p == 3] = 2  # class 3 never predicted: precision 0 by convention
    rep = classification_report(y, p, ["a", "b", "c", "d"])
    prec, rec, f1, sup = skm.precision_recall_fscore_support(y, p, labels=[0, 1, 2, 3], zero_division=0)
    assert rep["accuracy"] == pytest.approx(skm.accuracy_score(y, p))
    assert rep["macro_f1"] == pytest.approx(skm.f1_score(y, p, average="macro", zero_division=0))
    for i, c in enumerate("abcd"):
        assert rep["per_class"][c]["precision"] == pytest.approx(prec[i])
        assert rep["per_class"][c]["recall"] == pytest.approx(rec[i])
        assert rep["per_class"][c]["f1"] == pytest.approx(f1[i])
        assert rep["per_class"][c]["support"] == sup[i]
    assert rep["confusion_matrix"] == skm.confusion_matrix(y, p).tolist()


def test_scaler_is_fitted_on_training_rows_only(monkeypatch):
    from device.inference.spectrum import Axis
    from trainer.models.candidates import Candidate, TrainingSpectra, train
    from trainer.models.compact import Hyperparameters

    seen = []
    real = Standardizer.fit
    monkeypatch.setattr(Standardizer, "fit", classmethod(lambda cls, X: seen.append(X.copy()) or real(X)))
    rng = np.random.default_rng(0)
    axis = Axis(500, 529, 30)
    Y = rng.normal(size=(40, 30)) + np.exp(-0.5 * ((axis.values - 515) / 2) ** 2) * 5
    Y[30:] += 1000.0  # test rows are far away: any leak would show in the statistics
    y = np.tile([0, 1], 20)
    spectra = TrainingSpectra(Y, y, axis, 0, augment=False)
    train(Candidate("compact", "none", Hyperparameters(epochs=1), augment=False), spectra, np.arange(30), 2, 0)
    assert len(seen) == 1 and seen[0].shape[0] == 30 and np.array_equal(seen[0][:, :30], Y[:30])


def fit(data, out, *options):
    r = subprocess.run([str(BIN / "raman-train"), "fit", str(data), "--out", str(out), "--data-licence", "MIT",
                        *options], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    return load_bundle(out), json.loads((out / "model.json").read_text())


@pytest.mark.slow
def test_fit_cli_end_to_end(sers_npz, tmp_path):
    rng = np.random.default_rng(0)
    idx = np.sort(np.concatenate([rng.choice(np.flatnonzero(sers_npz["y"] == k), 40, replace=False)
                                  for k in range(6)]))
    np.savez(tmp_path / "d.npz", X=sers_npz["X"][idx], y=sers_npz["y"][idx], wavenumber=sers_npz["wavenumber"],
             class_names=sers_npz["class_names"], concentration_ppm=sers_npz["concentration_ppm"][idx])
    bundle, card = fit(tmp_path / "d.npz", tmp_path / "bundle", "--model", "compact", "--epochs", "3",
                       "--holdout", "concentration_ppm=0.5", "--cv-folds", "2", "--axis", "600:1800:601")
    assert card["axis"]["points"] == 601 and card["data"]["licence"] == "MIT"
    assert card["export_check"]["passed"] and max(card["export_check"]["max_abs_difference"].values()) <= 1e-5
    # The hold-out is the split holdout_split makes, and its accuracy is what its confusion matrix says.
    ds = load_dataset(tmp_path / "d.npz", Axis(600, 1800, 601))
    train, test, _ = holdout_split(ds, *parse_holdout("concentration_ppm=0.5"), seed=0)
    holdout = card["metrics"]["holdout"]
    assert (holdout["train_spectra"], holdout["test_spectra"]) == (train.size, test.size)
    confusion = np.array(holdout["confusion_matrix"])
    assert confusion.sum() == test.size and holdout["accuracy"] == pytest.approx(np.trace(confusion) / test.size)
    assert len(card["metrics"]["cross_validation"]["folds"]) == 2
    assert card["network"]["parameters"] == (601 + 22) * 5 + 5 + 5 * 6 + 6
    assert card["flop_per_spectrum"]["total"] < 2e5
    # The training accuracy on the card is the device runtime's, on the same spectra.
    on_axis = np.array([np.interp(bundle.axis.values, sers_npz["wavenumber"], x) for x in sers_npz["X"][idx]])
    predicted = Classifier(bundle).probabilities_on_axis(on_axis).argmax(1)
    device_accuracy = (predicted == sers_npz["y"][idx]).mean()
    assert abs(card["metrics"]["training"]["accuracy"] - device_accuracy) <= 2 / idx.size


def separable_spectra(rng, labels, wavenumber):
    """Three classes, each one narrow band (800, 1100 or 1400 cm-1) on a sloping baseline, with noise."""
    centres = np.array([800.0, 1100.0, 1400.0])[labels]
    band = 300 * np.exp(-0.5 * ((wavenumber - centres[:, None]) / 8) ** 2)
    return 200 + 0.05 * wavenumber + band + rng.normal(0, 5, (labels.size, wavenumber.size))


@pytest.mark.slow
def test_fit_learns_separable_classes_and_not_shuffled_labels(tmp_path):
    """Known-separable classes are learnt (cross-validated and on fresh spectra); shuffled labels stay at chance."""
    rng = np.random.default_rng(0)
    wavenumber = np.arange(501.0, 2000.0)
    y = np.repeat(np.arange(3), 30)
    X = separable_spectra(rng, y, wavenumber)
    options = ("--model", "compact", "--epochs", "20", "--cv-folds", "2")
    np.savez(tmp_path / "separable.npz", X=X, y=y, wavenumber=wavenumber, class_names=np.array(["a", "b", "c"]))
    bundle, card = fit(tmp_path / "separable.npz", tmp_path / "separable", *options)
    assert card["metrics"]["cross_validation"]["accuracy_mean"] >= 0.95
    fresh_y = np.tile(np.arange(3), 10)
    fresh = separable_spectra(rng, fresh_y, wavenumber)
    on_axis = np.array([np.interp(bundle.axis.values, wavenumber, x) for x in fresh])
    assert (Classifier(bundle).probabilities_on_axis(on_axis).argmax(1) == fresh_y).mean() >= 0.95
    # Negative control: the same spectra with their labels shuffled carry nothing to learn.
    np.savez(tmp_path / "shuffled.npz", X=X, y=rng.permutation(y), wavenumber=wavenumber,
             class_names=np.array(["a", "b", "c"]))
    _, shuffled = fit(tmp_path / "shuffled.npz", tmp_path / "shuffled", *options)
    assert shuffled["metrics"]["cross_validation"]["accuracy_mean"] <= 0.6  # chance is 1/3
    assert shuffled["metrics"]["training"]["accuracy"] >= 0.9  # memorised, which only cross-validation exposes


def test_fit_cli_reports_data_errors_without_traceback(tmp_path):
    (tmp_path / "only").mkdir()
    r = subprocess.run([str(BIN / "raman-train"), "fit", str(tmp_path / "only"), "--out", str(tmp_path / "b")],
                       capture_output=True, text=True)
    assert r.returncode == 2 and "no class sub-folders" in r.stderr and "Traceback" not in r.stderr
