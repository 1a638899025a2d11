"""Splits: one specification for every command, groups carried with the data, honest figures on grouped data."""
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from sklearn.model_selection import LeaveOneGroupOut, StratifiedGroupKFold, StratifiedKFold

from trainer.data.dataset import DatasetError, load_dataset
from trainer.data.splits import make_splits, parse_split

TRAIN = str(Path(sys.executable).parent / "raman-train")
MICROPLASTICS = (Path(__file__).resolve().parents[1] / ".." / "shared" / "datasets" / "rampp_microplastics"
                 / "rampp_microplastics.npz")
AXIS = np.linspace(300.0, 1300.0, 201)
CENTRES = [(500, 900), (650, 1100), (800, 1200)]
PATIENTS = ("P01", "P02", "P03", "P04")


def _spectrum(k: int, g: int, rng) -> np.ndarray:
    """Class ``k``'s two bands plus a band of patient ``g`` (what a random split lets a model learn)."""
    bands = sum(np.exp(-0.5 * ((AXIS - c - rng.normal(0, 3)) / 12) ** 2) for c in CENTRES[k])
    bands = bands + 0.5 * np.exp(-0.5 * ((AXIS - 350 - 60 * g) / 10) ** 2)
    return rng.uniform(500, 1500) * (bands + 0.03 * rng.normal(size=AXIS.size)) + 200


def write_grouped(root: Path, per_group: int = 3, patients=PATIENTS, classes=3) -> Path:
    """``DATA/c<k>/<patient>/<patient>_s<i>.csv``: every class measured on every patient."""
    rng = np.random.default_rng(0)
    for k in range(classes):
        for g, p in enumerate(patients):
            (root / f"c{k}" / p).mkdir(parents=True)
            for i in range(per_group):
                np.savetxt(root / f"c{k}" / p / f"{p}_s{i}.csv", np.column_stack([AXIS, _spectrum(k, g, rng)]),
                           delimiter=",")
    return root


@pytest.fixture(scope="module")
def grouped(tmp_path_factory) -> Path:
    return write_grouped(tmp_path_factory.mktemp("grouped") / "data")


@pytest.fixture(scope="module")
def grouped_npz(grouped, tmp_path_factory) -> Path:
    """The same spectra as ``grouped`` in an .npz with a ``patient`` key."""
    ds = load_dataset(grouped, groups="folder")
    out = tmp_path_factory.mktemp("npz") / "grouped.npz"
    np.savez(out, X=ds.X, y=ds.y, wavenumber=ds.axis.values, class_names=np.array(ds.class_names),
             patient=ds.groups, concentration=np.arange(len(ds.y), dtype=float))
    return out


def run(*args):
    return subprocess.run([TRAIN, *map(str, args)], capture_output=True, text=True, timeout=300)


def both_sides(pair: dict) -> set:
    return set(pair["train_groups"]) & set(pair["test_groups"])


# Groups from the three sources.

def test_groups_from_a_folder_a_file_name_pattern_and_an_npz_key_agree(grouped, grouped_npz):
    by_folder = load_dataset(grouped, groups="folder")
    by_name = load_dataset(grouped, groups=r"^(P\d+)_")
    by_key = load_dataset(grouped_npz, groups="patient")
    expected = [Path(s).parent.name for s in by_folder.sources]
    assert by_folder.groups.shape == (36,) and by_folder.groups.tolist() == expected
    assert by_name.groups.tolist() == expected and by_key.groups.tolist() == expected
    assert by_folder.group_source == "the folder under the class" and by_key.group_source == ".npz key 'patient'"
    assert by_folder.subset(np.arange(5)).groups.tolist() == expected[:5]
    assert load_dataset(grouped).groups is None  # group folders are read; groups only when asked for


def test_a_group_key_that_does_not_exist_lists_the_keys_there_are(grouped, grouped_npz, tmp_path):
    with pytest.raises(DatasetError, match="no per-spectrum 'donor'; the keys it has: patient, concentration"):
        load_dataset(grouped_npz, groups="donor")
    r = run("evaluate", grouped_npz, "--report", tmp_path / "r", "--groups", "donor", "--split", "logo")
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert "error: --groups donor: the data have no per-spectrum 'donor'; the keys it has: patient" in r.stderr
    assert not (tmp_path / "r").exists()
    with pytest.raises(DatasetError, match="the keys it has: no per-spectrum arrays or folder"):
        load_dataset(grouped, groups="patient")


def test_each_group_source_mistake_has_its_message(grouped, grouped_npz, tmp_path):
    with pytest.raises(DatasetError, match="--groups folder: the data are not a class-folder directory"):
        load_dataset(grouped_npz, groups="folder")
    with pytest.raises(DatasetError, match="exactly one capture group"):
        load_dataset(grouped, groups=r"^(P)(\d+)_")
    with pytest.raises(DatasetError, match=r"the file name 'P01_s0.csv' .* does not match"):
        load_dataset(grouped, groups=r"^(Q\d+)_")
    loose = tmp_path / "loose"
    write_grouped(loose, per_group=1, patients=("P01", "P02"))
    (loose / "c0" / "P01" / "P01_s0.csv").rename(loose / "c0" / "P01_s0.csv")
    with pytest.raises(DatasetError, match="lie directly in the class folder"):
        load_dataset(loose, groups="folder")


# The splitter: scikit-learn's, checked, and grouped splits keep groups apart.

def test_the_splitter_is_scikit_learns(grouped):
    ds = load_dataset(grouped, groups="folder")
    zeros = np.zeros(len(ds.y))
    oracle = {
        "repeated:2x3": [p for r in range(2)
                         for p in StratifiedKFold(3, shuffle=True, random_state=7 + r).split(zeros, ds.y)],
        "group-kfold:2x3": [p for r in range(2) for p in StratifiedGroupKFold(3, shuffle=True, random_state=7 + r)
                            .split(zeros, ds.y, ds.groups)],
        "logo": list(LeaveOneGroupOut().split(zeros, ds.y, ds.groups)),
    }
    for text, expected in oracle.items():
        pairs = make_splits(parse_split(text), ds, 7).pairs
        assert len(pairs) == len(expected)
        for (tr, te), (etr, ete) in zip(pairs, expected):
            np.testing.assert_array_equal(tr, etr)
            np.testing.assert_array_equal(te, ete)


@pytest.mark.parametrize("text", ["group-kfold:3", "group-kfold:2x2", "logo", "holdout:patient=P02,P03"])
def test_grouped_splits_never_put_a_group_on_both_sides(grouped_npz, text):
    ds = load_dataset(grouped_npz, groups="patient")
    splits = make_splits(parse_split(text), ds, 0)
    assert splits.warning is None
    for train, test in splits.pairs:
        assert not set(ds.groups[train]) & set(ds.groups[test])
    random = make_splits(parse_split("kfold:3"), ds, 0)  # negative control: a random split mixes the patients
    assert any(set(ds.groups[tr]) & set(ds.groups[te]) for tr, te in random.pairs)
    assert random.warning.startswith("optimistic figure: the data carry groups (.npz key 'patient', 4 groups)")


def test_split_spellings_and_their_mistakes():
    texts = ["kfold:5", "repeated:3x5", "group-kfold:5", "group-kfold:2x5", "logo", "holdout:condition=SW",
             "holdout:0.2"]
    assert [parse_split(t).text for t in texts] == texts
    for bad, message in (("kfold", "use kfold:K"), ("kfold:1", "K >= 2"), ("kfold:2x5", "repeated:2x5"),
                         ("holdout:1.5", "between 0 and 1"), ("loo", "use kfold:K")):
        with pytest.raises(DatasetError, match=message):
            parse_split(bad)


# Bad input: refused before any training, naming the class or group and the split that would work.

@pytest.mark.slow
def test_too_few_spectra_or_groups_for_the_split_are_refused_before_training(grouped, tmp_path):
    cases = [
        (("--split", "kfold:13"), "error: --split kfold:13 needs at least 13 spectra per class; class c0 has 12: "
                                  "use --split kfold:12"),
        (("--groups", "folder", "--split", "group-kfold:5"),
         "error: --split group-kfold:5 needs at least 5 groups; the data have 4 (P01, P02, P03, P04; the folder under "
         "the class): use --split group-kfold:4 or logo"),
        (("--split", "logo"), "error: --split logo keeps each group on one side, but the data carry no groups: give "
                              "--groups KEY"),
        (("--split", "logo", "--folds", "3"), "error: --split logo states the folds and repeats itself"),
    ]
    for args, message in cases:
        r = run("evaluate", grouped, "--report", tmp_path / "r", "--epochs", "2", *args)
        assert r.returncode == 2 and message in r.stderr and "Traceback" not in r.stderr, (args, r.stderr)
        assert "repeat 1" not in r.stdout and not (tmp_path / "r").exists()


def test_a_holdout_the_data_cannot_fill_names_what_they_have(grouped_npz):
    ds = load_dataset(grouped_npz, groups="patient")
    with pytest.raises(DatasetError, match=r"--split holdout:patient=P09: no spectrum has patient in \['P09'\]; its "
                                           "values are P01, P02, P03, P04"):
        make_splits(parse_split("holdout:patient=P09"), ds, 0)
    with pytest.raises(DatasetError, match="no spectrum of c0, c1, c2 is left for training"):
        make_splits(parse_split("holdout:patient=P01,P02,P03,P04"), ds, 0)


@pytest.mark.slow
def test_a_class_seen_in_one_group_only_is_refused_by_name(tmp_path):
    data = write_grouped(tmp_path / "d", per_group=2, patients=("P01", "P02"))
    for f in (data / "c2" / "P02").iterdir():
        f.rename(data / "c2" / "P01" / f.name.replace("P02", "P01x"))
    (data / "c2" / "P02").rmdir()
    r = run("fit", data, "--out", tmp_path / "b", "--groups", "folder", "--split", "logo", "--model", "compact",
            "--epochs", "2")
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert "error: --split logo: every spectrum of class c2 belongs to group P01" in r.stderr
    assert "epoch" not in r.stderr and not (tmp_path / "b").exists()


# Every consumer: groups apart under a grouped split, and the optimistic figure said first under a random one.

@pytest.mark.slow
def test_evaluate_keeps_groups_apart_and_says_a_random_split_is_optimistic(grouped, tmp_path):
    r = run("evaluate", grouped, "--report", tmp_path / "g", "--groups", "folder", "--split", "logo", "--epochs", "3")
    assert r.returncode == 0, r.stderr
    rep = json.loads((tmp_path / "g" / "report.json").read_text())
    assert rep["settings"]["split"] == "logo" and len(rep["results"]["folds"]) == 4
    assert all(not both_sides(f) and len(f["test_groups"]) == 1 for f in rep["results"]["folds"])
    md = (tmp_path / "g" / "report.md").read_text()
    assert "optimistic" not in md + r.stdout and "Split: leave one group out by the folder under the class" in md
    r = run("evaluate", grouped, "--report", tmp_path / "k", "--groups", "folder", "--split", "kfold:3",
            "--epochs", "3")
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines()[0].startswith("warning: optimistic figure: the data carry groups")
    md = (tmp_path / "k" / "report.md").read_text().splitlines()
    assert md[2].startswith("**Warning: optimistic figure: the data carry groups (the folder under the class, 4")
    folds = json.loads((tmp_path / "k" / "report.json").read_text())["results"]["folds"]
    assert any(both_sides(f) for f in folds)


@pytest.mark.slow
def test_evaluate_defaults_to_a_grouped_split_with_a_valid_k_when_groups_are_given(grouped, tmp_path):
    r = run("evaluate", grouped, "--report", tmp_path / "r", "--groups", "folder", "--repeats", "1", "--epochs", "2")
    assert r.returncode == 0, r.stderr
    s = json.loads((tmp_path / "r" / "report.json").read_text())["settings"]
    assert s["split"] == "group-kfold:4" and s["folds_chosen"].startswith("4-fold, not the published 15: the data have "
                                                                          "4 groups")
    assert "optimistic" not in r.stdout


@pytest.mark.slow
def test_compare_keeps_groups_apart_and_says_a_random_split_is_optimistic(grouped_npz, tmp_path):
    for split, optimistic in (("group-kfold:2", False), ("kfold:2", True)):
        out = tmp_path / split.replace(":", "-")
        r = run("compare", grouped_npz, "--report", out, "--groups", "patient", "--split", split,
                "--models", "linear-svm", "--snr", "")
        assert r.returncode == 0, r.stderr
        res = json.loads((out / "report.json").read_text())["results"]
        assert res["split_spec"] == split and len(res["pairs"]) == 2
        assert any(both_sides(p) for p in res["pairs"]) == optimistic
        assert ("warning: optimistic figure" in r.stdout.splitlines()[0]) == optimistic
        assert ("**Warning: optimistic figure" in (out / "report.md").read_text()) == optimistic


@pytest.mark.slow
def test_fit_keeps_groups_apart_and_says_a_random_cross_validation_is_optimistic(grouped_npz, tmp_path):
    r = run("fit", grouped_npz, "--out", tmp_path / "b", "--groups", "patient", "--split", "holdout:patient=P04",
            "--cv-folds", "2", "--model", "compact", "--epochs", "3")
    assert r.returncode == 0, r.stderr
    metrics = json.loads((tmp_path / "b" / "model.json").read_text())["metrics"]
    held, cv = metrics["holdout"], metrics["cross_validation"]
    assert held["split"] == "holdout:patient=P04" and "warning" not in held and not both_sides(held)
    assert held["test_groups"] == ["P04"] and held["test_spectra"] == 9
    assert cv["split"] == "kfold:2" and cv["warning"].startswith("optimistic figure")
    assert any(both_sides(f) for f in cv["folds"]) and "warning: optimistic figure" in r.stderr


@pytest.mark.slow
def test_ood_eval_keeps_the_known_groups_apart(tmp_path):
    data = write_grouped(tmp_path / "d", per_group=3, patients=("P01", "P02"))
    r = run("ood-eval", data, "--report", tmp_path / "r", "--groups", "folder", "--split", "logo")
    assert r.returncode == 0, r.stderr
    res = json.loads((tmp_path / "r" / "report.json").read_text())["results"]
    assert res["split"] == "logo" and res["warning"] is None and len(res["rows"]) == 3
    for row in res["rows"]:
        assert len(row["pairs"]) == 2 and all(not both_sides(p) for p in row["pairs"])
    assert "optimistic" not in r.stdout + (tmp_path / "r" / "report.md").read_text()
    from trainer.evaluation.ood import leave_one_class_out
    from trainer.models.compact import Hyperparameters

    lines = []  # negative control: a random split of the known classes, said before any training
    res = leave_one_class_out(load_dataset(data, groups="folder"), parse_split("holdout:0.5"),
                              Hyperparameters(epochs=2), log=lines.append)
    assert lines[0].startswith("warning: optimistic figure: the data carry groups") and len(lines) == 4
    assert res["warning"] == lines[0][len("warning: "):]
    assert any(both_sides(p) for row in res["rows"] for p in row["pairs"])


@pytest.mark.skipif(not MICROPLASTICS.exists(), reason="needs ../shared/datasets")
@pytest.mark.slow
def test_real_microplastics_leave_one_condition_out(tmp_path):
    r = run("evaluate", MICROPLASTICS, "--report", tmp_path / "r", "--groups", "condition", "--split", "logo",
            "--epochs", "20")
    assert r.returncode == 0, r.stderr
    rep = json.loads((tmp_path / "r" / "report.json").read_text())
    folds = rep["results"]["folds"]
    assert [f["test_groups"] for f in folds] == [["FW"], ["SW"], ["pristine"]]
    assert all(not both_sides(f) for f in folds) and sum(f["test_spectra"] for f in folds) == 129
    assert rep["data"]["groups"] == ".npz key 'condition'" and "optimistic" not in r.stdout
    r = run("compare", MICROPLASTICS, "--report", tmp_path / "c", "--split", "kfold:3", "--models", "linear-svm",
            "--snr", "")
    assert r.returncode == 0, r.stderr  # without --groups, the group-like key is named
    assert r.stdout.startswith("warning: possibly optimistic figure: the data have a per-spectrum 'condition'")
