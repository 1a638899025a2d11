"""raman-train on the data and command lines users bring.

Small classes, flat spectra, odd axes and labels, existing outputs, a quiet console, deployable default
bundles, figures for many classes.
"""
import json
import re
import struct
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest

from device.errors import InvalidAxisError
from device.inference.bundle import load_bundle
from device.inference.classifier import Classifier
from device.inference.quality import is_flat, problems
from device.inference.spectrum import Axis
from device.service.measurement import self_test
from trainer.cli import build_parser
from trainer.data.dataset import Dataset, DatasetError, load_dataset
from trainer.evaluation.metrics import confusion_matrix, one_vs_rest_auc
from trainer.evaluation.ood import fit_detector, threshold_warning
from trainer.evaluation.protocol import choose_folds
from trainer.evaluation.report import confusion_figure, roc_figure
from trainer.models import classical

TRAIN = str(Path(sys.executable).parent / "raman-train")
AXIS = np.linspace(300.0, 1300.0, 251)
CENTRES = [(500, 900), (650, 1100), (800, 1200), (450, 1000)]


def spectra(k: int, n: int, seed: int, x=AXIS) -> np.ndarray:
    """``n`` noisy spectra of class ``k``: two bands on a baseline, with gain and position jitter."""
    rng = np.random.default_rng([k, seed])
    bands = [sum(np.exp(-0.5 * ((x - c - rng.normal(0, 3)) / 12) ** 2) for c in CENTRES[k]) for _ in range(n)]
    return np.array([rng.uniform(500, 1500) * (b + 0.03 * rng.normal(size=x.size)) + 200 for b in bands])


def write_classes(root: Path, counts, seed: int = 0, x=AXIS) -> Path:
    """A class-folder data set: ``counts[k]`` two-column CSV files in folder ``c{k}``."""
    for k, n in enumerate(counts):
        (root / f"c{k}").mkdir(parents=True)
        for i, row in enumerate(spectra(k, n, seed, x)):
            np.savetxt(root / f"c{k}" / f"s{i:02d}.csv", np.column_stack([x, row]), delimiter=",")
    return root


def run(*args):
    return subprocess.run([TRAIN, *map(str, args)], capture_output=True, text=True, timeout=300)


def png_size(path: Path) -> tuple[int, int]:
    return struct.unpack(">II", path.read_bytes()[16:24])


@pytest.fixture(scope="module")
def fitted(tmp_path_factory):
    """``raman-train fit`` with its defaults (no --examples) on 3 classes x 10 spectra."""
    root = tmp_path_factory.mktemp("fit")
    data = write_classes(root / "data", (10, 10, 10))
    r = run("fit", data, "--out", root / "bundle", "--model", "compact", "--epochs", "30")
    assert r.returncode == 0, r.stderr
    return root, r


@pytest.mark.slow
def test_a_default_fit_ships_examples_that_pass_the_device_self_test(fitted):
    root, _ = fitted
    b = load_bundle(root / "bundle")
    labels = [label for _, label in b.examples]
    assert sorted(set(labels)) == ["c0", "c1", "c2"] and len(labels) <= 9
    assert "training spectra" in b.card["examples_from"]
    for backend in ("numpy", "tflite"):
        assert self_test(b, Classifier(b, backend)) == {"passed": True, "examples": len(labels), "reason": None}


@pytest.mark.slow
def test_fit_stderr_has_progress_and_none_of_the_libraries_lines(fitted):
    _, r = fitted
    lines = r.stderr.splitlines()
    assert any(re.fullmatch(r"  epoch 30/30: loss [0-9.]+, [0-9.]+ s, ETA 0 s", ln) for ln in lines), r.stderr
    assert any(ln.startswith("  epoch 3/30: loss") for ln in lines)
    leaked = [ln for ln in lines if re.search(r"absl|cuda|cuInit|oneDNN|XNNPACK|TensorFlow|Warning|^[IWE]\d{4}", ln,
                                              re.IGNORECASE)]
    assert leaked == []
    assert "Traceback" not in r.stderr and r.stderr.strip()  # the negative control: stderr is read at all


@pytest.mark.slow
def test_convolutional_fit_shows_step_progress_and_ships_examples(fitted, tmp_path):
    root, _ = fitted
    r = run("fit", root / "data", "--out", tmp_path / "cnn", "--model", "cnn", "--steps", "100")
    assert r.returncode == 0, r.stderr
    steps = [ln for ln in r.stderr.splitlines() if ln.startswith("  step ")]
    assert steps and re.fullmatch(r"  step (\d+)/\1: loss [0-9.]+, [0-9.]+ s, ETA 0 s", steps[-1]), r.stderr
    assert not re.search(r"absl|cuInit|XNNPACK|Warning", r.stderr)
    b = load_bundle(tmp_path / "cnn")
    assert b.examples and self_test(b, Classifier(b))["passed"]


@pytest.mark.slow
def test_fit_states_the_axis_it_chose(fitted):
    _, r = fitted
    axis = [ln for ln in r.stderr.splitlines() if ln.startswith("axis: ")]
    assert axis == ["axis: 300 to 1300 cm-1, 251 points, step 4 cm-1 (the data's own grid, shared and uniform); "
                    "no point of any spectrum outside it"]
    assert "classes: 3 (c0 10, c1 10, c2 10), 30 spectra" in r.stderr


def test_the_common_range_says_what_it_drops_and_a_low_start_is_warned(tmp_path):
    write_classes(tmp_path / "d", (4, 4))
    wide = np.linspace(-20.0, 1300.0, 331)  # one spectrum from below the laser line
    np.savetxt(tmp_path / "d" / "c0" / "wide.csv", np.column_stack([wide, spectra(0, 1, 9, wide)[0]]), delimiter=",")
    notes = []
    ds = load_dataset(tmp_path / "d", log=notes.append)
    assert ds.axis.start == 300 and "the range every spectrum covers" in notes[0]
    assert "80 points outside it dropped (from 1 of 9 spectra)" in notes[0]
    assert not any(n.startswith("warning") for n in notes)
    low = tmp_path / "low"
    write_classes(low, (4, 4), x=wide)
    notes = []
    load_dataset(low, log=notes.append)
    warning = [n for n in notes if n.startswith("warning: the axis starts at -20 cm-1")]
    assert len(warning) == 1 and "laser line" in warning[0] and "--axis 100:1300:301" in warning[0]
    notes = []
    load_dataset(low, Axis.parse("200:1200:251"), log=notes.append)  # chosen by the user: no warning
    assert not any(n.startswith("warning") for n in notes) and "(as given)" in notes[0]


@pytest.mark.parametrize("make", [
    lambda out: ("fit", "DATA", "--out", out),
    lambda out: ("evaluate", "DATA", "--report", out),
    lambda out: ("compare", "DATA", "--report", out),
    lambda out: ("ood-eval", "DATA", "--report", out),
    lambda out: ("synth", "--out", out),
    lambda out: ("explain", "BUNDLE", "FILE", "--out", out),
])
@pytest.mark.slow
def test_an_existing_output_is_refused_without_force(tmp_path, make):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "precious.txt").write_text("keep me")
    r = run(*make(out))
    assert r.returncode == 2 and r.stderr.splitlines() == [
        f"error: {out} already exists; give --force to replace it, or choose another {make(out)[-2]}"]
    assert [p.name for p in out.iterdir()] == ["precious.txt"]


@pytest.mark.slow
def test_force_replaces_an_existing_output_whole(tmp_path):
    out = tmp_path / "syn"
    out.mkdir()
    (out / "old.txt").write_text("old")
    r = run("synth", "--out", out, "--counts", "2,2,2,2", "--force")
    assert r.returncode == 0, r.stderr
    assert sorted(p.name for p in out.iterdir()) == ["README.txt", "control", "edifenphos", "ethyl_parathion",
                                                     "metadata.csv", "mixture"]


@pytest.mark.slow
def test_classes_below_the_minimum_are_refused_before_training(tmp_path):
    data = write_classes(tmp_path / "d", (10, 2, 1))
    r = run("fit", data, "--out", tmp_path / "b", "--model", "compact", "--epochs", "2")
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert "every class needs at least 3 spectra" in r.stderr and "too few in c1 (2), c2 (1)" in r.stderr
    assert "epoch" not in r.stderr and not (tmp_path / "b").exists()
    r = run("fit", write_classes(tmp_path / "e", (6, 6)), "--out", tmp_path / "b", "--cv-folds", "8")
    assert r.returncode == 2 and "--cv-folds 8 needs at least 8 spectra per class" in r.stderr
    assert "epoch" not in r.stderr


@pytest.mark.parametrize("per_class, components", [(3, 1), (4, 3), (5, 4), (8, 8), (40, 20)])
def test_the_detector_is_sized_for_small_sets(per_class, components):
    Y = np.concatenate([spectra(k, per_class, 1) for k in range(3)])
    y = np.repeat(np.arange(3), per_class)
    notes = []
    d = fit_detector(Y, y, 3, log=notes.append)
    # (smallest training fold - classes) // 2: 3 folds of 6 -> 1; 4 of 9 -> 3; 5 of 12 -> 4; 5 of 19 -> 8
    assert d.components.shape[0] == components
    assert np.isfinite(d.threshold) and threshold_warning(d, Y) is None
    assert not any(n.startswith("warning") for n in notes)
    fresh = np.concatenate([spectra(k, 20, 50) for k in range(3)])  # new spectra of the known classes
    assert np.median(d.scores(fresh)) < d.threshold
    if per_class == 3:
        return  # the least accepted: one component is too few to tell a new class here
    novel = spectra(3, 20, 50)  # a class the detector never saw
    assert np.median(d.scores(novel)) > d.threshold


def test_a_meaningless_threshold_is_warned():
    from dataclasses import replace

    Y = np.concatenate([spectra(k, 10, 1) for k in range(3)])
    d = fit_detector(Y, np.repeat(np.arange(3), 10), 3)
    assert threshold_warning(d, Y) is None
    assert "meaningless" in threshold_warning(replace(d, threshold=1.3e15), Y)
    assert "meaningless" in threshold_warning(replace(d, threshold=float("inf")), Y)


def dataset_of(counts) -> Dataset:
    """A data set of ``counts[k]`` (constant) spectra of class ``c{k}``, for the choice of folds."""
    y = np.repeat(np.arange(len(counts)), counts)
    return Dataset(np.ones((len(y), 3)), y, tuple(f"c{k}" for k in range(len(counts))), Axis(0, 2, 3), [""] * len(y))


def test_evaluate_folds_follow_the_data():
    ds = dataset_of((20, 20, 16))
    assert choose_folds(ds) == (15, "15-fold, as the published protocol")
    folds, why = choose_folds(dataset_of((20, 5, 8)))
    assert folds == 5 and why == "5-fold, not the published 15: the smallest class (c1) has 5 spectra"
    with pytest.raises(DatasetError, match="--folds 9: K-fold needs 2 <= K <= the size of the smallest class"):
        choose_folds(dataset_of((20, 5, 8)), 9)


def test_compare_auto_split_fits_small_classes():
    from trainer.evaluation.compare import make_split

    assert make_split("auto", dataset_of((9, 6, 5)), 0).description.startswith("stratified 5-fold")
    small = make_split("auto", dataset_of((9, 3, 5)), 0)
    assert small.description.startswith("stratified 3-fold") and len(small.pairs) == 9


@pytest.mark.slow
def test_evaluate_a_small_real_like_set_and_its_report(tmp_path):
    data = write_classes(tmp_path / "d", (6, 5, 7))
    r = run("evaluate", data, "--report", tmp_path / "r", "--repeats", "1", "--epochs", "2")
    assert r.returncode == 0, r.stderr
    rep = json.loads((tmp_path / "r" / "report.json").read_text())
    assert rep["settings"]["folds"] == 5 and "smallest class (c1) has 5" in rep["settings"]["folds_chosen"]
    md = (tmp_path / "r" / "report.md").read_text()
    assert "Split: stratified 5-fold cross-validation (seed 0) (`--split kfold:5`; 5-fold, not the published 15" in md
    assert "published" in md and "98.58" not in md  # the paper's figure belongs to the synthetic set only


def test_help_states_defaults_in_words():
    fit = build_parser()._subparsers._group_actions[0].choices["fit"]
    assert "spectra per optimizer step (default: 32)" in " ".join(fit.format_help().split())


def test_flat_spectra_one_definition():
    x = np.linspace(0, 1, 200)
    band = np.exp(-0.5 * ((x - 0.5) / 0.02) ** 2)
    plateau = np.ones(200)
    plateau[:40] = 0.2  # most of it at its maximum: max == median, yet not constant
    assert is_flat(np.full(200, 7.0)) and is_flat(plateau) and not is_flat(band + 3)
    assert list(is_flat(np.stack([band, plateau, np.zeros(200)]))) == [False, True, True]
    assert problems(plateau)[0].startswith("flat: ")  # the service refuses what the trainer drops


@pytest.mark.slow
def test_flat_spectra_are_dropped_on_loading_and_compare_runs(tmp_path):
    data = write_classes(tmp_path / "d", (6, 6))
    flat = spectra(0, 1, 3)[0]
    flat[flat < np.median(flat)] -= 50  # dips only: its maximum equals its median
    flat[flat >= np.median(flat)] = np.median(flat)
    for i in range(2):
        np.savetxt(data / "c1" / f"flat{i}.csv", np.column_stack([AXIS, flat]), delimiter=",")
    notes = []
    ds = load_dataset(data, log=notes.append)
    assert ds.X.shape[0] == 12 and not any("flat" in Path(s).name for s in ds.sources)
    dropped = [n for n in notes if n.startswith("dropped 2 flat spectra of 14")]
    assert len(dropped) == 1 and "flat0.csv" in dropped[0]
    r = run("compare", data, "--report", tmp_path / "r", "--models", "linear-svm,knn", "--split", "kfold:2",
            "--snr", "50,5")
    assert r.returncode == 0, r.stderr
    assert "dropped 2 flat spectra of 14" in r.stderr and "Warning" not in r.stderr
    r = run("compare", data, "--report", tmp_path / "none", "--models", "linear-svm,pca-lda", "--split", "kfold:2",
            "--snr", "")
    assert r.returncode == 0, r.stderr
    res = json.loads((tmp_path / "none" / "report.json").read_text())["results"]
    assert res["conditions"] == ["clean"] and not (tmp_path / "none" / "snr.png").exists()
    assert "No acquisition-quality sweep" in (tmp_path / "none" / "report.md").read_text()


def test_a_class_of_flat_spectra_only_is_refused(tmp_path):
    data = write_classes(tmp_path / "d", (4, 4))
    (data / "dead").mkdir()
    for i in range(3):
        np.savetxt(data / "dead" / f"{i}.csv", np.column_stack([AXIS, np.full(AXIS.size, 100.0)]), delimiter=",")
    with pytest.raises(DatasetError, match="every spectrum of dead is flat"):
        load_dataset(data)


@pytest.mark.parametrize("text, message", [
    ("1800:600:1201", "START 1800 is above STOP 600; an axis runs from low to high shift: 600:1800:1201"),
    ("600:600:1201", "START and STOP are both 600 cm-1"),
    ("600:1800:0", "0 point(s) are too few; an axis needs at least 3"),
    ("600:1800:1", "1 point(s) are too few"),
    ("600:1800:100000000", "100000000 points are more than a model may have (65536"),
    ("600:abc:1201", "STOP 'abc' is not a number"),
    ("600:1800:12.5", "POINTS '12.5' is not a whole number"),
    ("600:1800", "an axis is START:STOP:POINTS in cm-1"),
    ("nan:1800:10", "an axis runs between finite Raman shifts in cm-1; got nan to 1800"),
])
def test_each_axis_mistake_has_its_message(text, message):
    with pytest.raises(InvalidAxisError) as err:
        Axis.parse(text, "--axis")
    assert str(err.value).startswith(f"--axis {text!r}: ") and message in str(err.value)


@pytest.mark.slow
def test_a_huge_axis_is_refused_on_the_command_line_at_once(tmp_path):
    r = run("fit", write_classes(tmp_path / "d", (3, 3)), "--out", tmp_path / "b", "--axis", "600:1800:100000000")
    assert r.returncode == 2 and "Traceback" not in r.stderr and "MemoryError" not in r.stderr
    assert r.stderr.startswith("error: --axis '600:1800:100000000': 100000000 points are more than")
    assert Axis.parse("600:1800:1201").points == 1201


def test_a_numeric_label_in_a_wide_table_is_warned_and_the_classes_listed(tmp_path):
    rows = [("PE", spectra(0, 1, i)[0]) for i in range(3)] + [("PP", spectra(1, 1, i)[0]) for i in range(3)]
    rows.append(("3", spectra(1, 1, 9)[0]))
    lines = ["polymer," + ",".join(f"{v:g}" for v in AXIS)] + [f"{lab}," + ",".join(f"{v:.3f}" for v in row)
                                                               for lab, row in rows]
    (tmp_path / "t.csv").write_text("\n".join(lines) + "\n")
    notes = []
    ds = load_dataset(tmp_path / "t.csv", log=notes.append)
    assert ds.class_names == ("3", "PE", "PP")
    assert any(n.startswith(f"warning: {tmp_path / 't.csv'}: the label(s) 3 are numbers") for n in notes)
    assert "classes: 3 (3 1, PE 3, PP 3), 7 spectra" in notes


@pytest.mark.parametrize("n", [2, 20, 200])
@pytest.mark.slow
def test_figures_stay_readable_and_bounded(tmp_path, n):
    rng = np.random.default_rng(n)
    y = np.repeat(np.arange(n), 4)
    p = rng.dirichlet(np.ones(n), y.size)
    p[np.arange(y.size), y] += 0.3
    p /= p.sum(axis=1, keepdims=True)
    names = [f"class number {i}" for i in range(n)]
    confusion_figure(confusion_matrix(y, p.argmax(1), n), names, tmp_path / "cm.png")
    roc_figure(y, p, names, dict(zip(names, one_vs_rest_auc(y, p))), tmp_path / "roc.png")
    w, h = png_size(tmp_path / "cm.png")
    assert 400 <= w <= 1500 and 400 <= h <= 1400
    assert png_size(tmp_path / "roc.png") == (935, 550)


def test_a_classical_fit_that_does_not_converge_is_reported_not_leaked(monkeypatch):
    X = np.concatenate([spectra(k, 8, 2) for k in range(3)])
    y = np.repeat(np.arange(3), 8)
    monkeypatch.setattr(classical, "LINEAR_SVM_ITERATIONS", 2)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # any warning escaping the fit fails the test
        _, note = classical.fit_classical("linear-svm", 0, X, y)
    assert note.startswith("did not converge: ")
    monkeypatch.setattr(classical, "LINEAR_SVM_ITERATIONS", 10000)
    assert classical.fit_classical("linear-svm", 0, X, y)[1] is None
