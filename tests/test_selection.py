"""Choosing the model: the family, the budget, the rule, and what the choice may see."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from trainer import selection
from trainer.data.dataset import DatasetError, load_dataset
from trainer.models.candidates import Candidate, TrainingSpectra, train
from trainer.models.linear import LinearSettings, fit_linear, row_space

BIN = Path(sys.executable).parent


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory):
    """The SYNTHETIC organophosphate set (116 spectra, 4 classes) with a per-spectrum batch key."""
    from trainer.data.synth import write

    root = tmp_path_factory.mktemp("synth")
    write(root / "data", (36, 36, 29, 15), 0)
    ds = load_dataset(root / "data", None, log=lambda m: None)
    batch = np.array([f"B{i % 6}" for i in range(ds.y.size)])
    np.savez(root / "d.npz", X=ds.X, y=ds.y, wavenumber=ds.axis.values, class_names=np.array(ds.class_names),
             batch=batch)
    return root


def row(name, acc, std, flop, weak=None):
    weak = acc if weak is None else weak
    return {"name": name, "cv_accuracy_mean": acc, "cv_weak_accuracy_mean": {"snr10": weak, "snr5": weak},
            "cv_score_mean": (acc + 2 * weak) / 3, "cv_accuracy_std": std, "flop": flop}


def test_the_best_score_on_spectra_and_degraded_copies_wins_and_cost_decides_only_between_equals():
    a, b, c = (Candidate("logreg"), Candidate("pca-logreg"), Candidate("compact"))
    # A cheaper candidate a little less accurate does not win.
    winner, why = selection.choose([(c, row("c", 0.95, 0.04, 80_000)), (b, row("b", 0.945, 0.01, 40_000))])
    assert winner is c and why.startswith("highest inner-CV score, 0.9500")
    # More accurate on the test spectra, weaker on them at SNR 10 and 5: the robust one wins.
    winner, why = selection.choose([(c, row("c", 0.98, 0.04, 80_000, weak=0.80)), (b, row("b", 0.96, 0.01, 90_000))])
    assert winner is b and "SNR 10 0.9600, SNR 5 0.9600" in why
    # Equal accuracy (to the last digit of a sum in another order): the fewest FLOP, named with the others.
    winner, why = selection.choose([(c, row("c", 0.1 + 0.2, 0.04, 80_000)), (b, row("b", 0.3, 0.01, 40_000))])
    assert winner is b and "shared with compact" in why and "40,000" in why
    # Equal accuracy and cost: family order.
    winner, _ = selection.choose([(a, row("a", 0.9, 0.0, 1000)), (b, row("b", 0.9, 0.0, 1000))])
    assert winner is a


def test_inner_cross_validation_is_grouped_when_the_data_carry_groups(synthetic):
    ds = load_dataset(synthetic / "d.npz", None, log=lambda m: None, groups="batch")
    rows = np.flatnonzero(ds.groups != "B0")
    inner = selection.inner_split(ds, rows, 0)
    assert "group 5-fold" in inner.description and "batch" in inner.description
    for tr, te in inner.pairs:
        assert set(tr) | set(te) <= set(rows)
        assert not set(ds.groups[tr]) & set(ds.groups[te])
    # Negative control: without groups the folds mix batches.
    plain = load_dataset(synthetic / "d.npz", None, log=lambda m: None)
    inner = selection.inner_split(plain, rows, 0)
    assert "group" not in inner.description
    assert any(set(ds.groups[tr]) & set(ds.groups[te]) for tr, te in inner.pairs)


def test_large_training_sets_are_subsampled_for_the_choice(synthetic, monkeypatch):
    ds = load_dataset(synthetic / "d.npz", None, log=lambda m: None)
    monkeypatch.setattr(selection, "INNER_MAX_SPECTRA", 60)
    inner = selection.inner_split(ds, np.arange(ds.y.size), 0)
    used = np.concatenate(inner.pairs[0])
    assert used.size == 60 and "random 60" in inner.description
    assert set(np.unique(ds.y[used])) == set(range(len(ds.class_names)))


def test_a_small_training_set_is_cross_validated_repeatedly_with_new_shuffles(synthetic, monkeypatch):
    ds = load_dataset(synthetic / "d.npz", None, log=lambda m: None)
    rows = np.arange(ds.y.size)
    monkeypatch.setattr(selection, "INNER_MIN_PREDICTIONS", 2 * rows.size + 1)
    inner = selection.inner_split(ds, rows, 4)
    assert (inner.folds, inner.repeats, len(inner.pairs)) == (5, 3, 15) and "repeated 3 times" in inner.description
    for r in range(3):  # every repeat tests each spectrum once
        tests = np.concatenate([te for _, te in inner.pairs[5 * r:5 * r + 5]])
        assert np.array_equal(np.sort(tests), rows)
    assert not all(np.array_equal(a[1], b[1]) for a, b in zip(inner.pairs[:5], inner.pairs[5:10]))
    # Enough spectra: one K-fold, as before.
    monkeypatch.setattr(selection, "INNER_MIN_PREDICTIONS", rows.size)
    assert selection.inner_split(ds, rows, 4).repeats == 1
    # Grouped with a fold per group: a repeat would be the same folds, so there is none.
    grouped = load_dataset(synthetic / "d.npz", None, log=lambda m: None, groups="batch")
    monkeypatch.setattr(selection, "INNER_MIN_PREDICTIONS", 10 * rows.size)
    few = np.flatnonzero(np.isin(grouped.groups, ["B0", "B1", "B2"]))
    assert selection.inner_split(grouped, few, 4).repeats == 1
    assert selection.inner_split(grouped, rows, 4).repeats == 10


@pytest.mark.slow
def test_the_budget_leaves_out_what_costs_too_much(synthetic, monkeypatch):
    monkeypatch.setattr(selection, "INNER_MIN_PREDICTIONS", 1)  # one 5-fold: the budget does not depend on repeats
    ds = load_dataset(synthetic / "d.npz", None, log=lambda m: None)
    cands = selection.family(ds.axis, 80)
    costs = {c.name: c.flop(ds.axis, 4) for c in cands}
    budget = sorted(costs.values())[len(costs) // 2]
    chosen = selection.select(ds, np.arange(ds.y.size), 0, max_flop=budget, chains=("snv", "savgol:11:2,snv"),
                              log=lambda m: None)
    assert chosen.winner.flop(ds.axis, 4) <= budget
    for r in chosen.table:
        assert (r["cv_accuracy_mean"] is None) == (r["flop"] > budget)
        assert r["within_budget"] == (r["flop"] <= budget)
    with pytest.raises(DatasetError, match="raise --max-flop to at least"):
        selection.select(ds, np.arange(ds.y.size), 0, max_flop=min(costs.values()) - 1, log=lambda m: None)


@pytest.mark.slow
def test_the_device_cost_known_before_training_is_the_trained_models(synthetic):
    from trainer.models.candidates import device_flop

    ds = load_dataset(synthetic / "d.npz", None, log=lambda m: None)
    spectra = TrainingSpectra(ds.X, ds.y, ds.axis, 0)
    for c in selection.family(ds.axis, 100, chains=("savgol:11:2:1,snv",)):
        if c.kind == "compact":
            c = Candidate("compact", c.chain, type(c.settings)(epochs=1))
        trained = train(c, spectra, np.arange(ds.y.size), 4, 0, final=False)
        assert c.flop(ds.axis, 4) == device_flop(trained)["total"], c.name


def test_augmented_copies_follow_the_spectra_and_differ_from_them(synthetic):
    ds = load_dataset(synthetic / "d.npz", None, log=lambda m: None)
    s = TrainingSpectra(ds.X[:10], ds.y[:10], ds.axis, 3)
    assert s.Y.shape == (20, ds.axis.points) and np.array_equal(s.y, np.tile(ds.y[:10], 2))
    assert np.array_equal(s.rows(np.array([2, 5]), True), [2, 5, 12, 15])
    assert np.array_equal(s.rows(np.array([2, 5]), False), [2, 5])
    assert np.allclose(s.Y[:10], ds.X[:10]) and not np.allclose(s.Y[10:], ds.X[:10])
    again = TrainingSpectra(ds.X[:10], ds.y[:10], ds.axis, 3)
    assert np.array_equal(again.Y, s.Y)  # seeded
    assert not np.array_equal(TrainingSpectra(ds.X[:10], ds.y[:10], ds.axis, 4).Y, s.Y)


def test_logistic_regression_on_the_row_space_is_scikit_learns_on_the_spectra():
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(0)
    X = rng.normal(size=(40, 300))
    y = (X[:, :3].sum(axis=1) > 0).astype(int) + (X[:, 3] > 0.5)
    V = row_space(X)
    assert V.shape == (300, 40) and np.allclose(V.T @ V, np.eye(40))
    ours = fit_linear(LinearSettings("logreg", C=0.1), X, y, 3, 0)
    theirs = LogisticRegression(C=0.1, solver="newton-cg", tol=1e-10, max_iter=10_000).fit(X, y)
    T = rng.normal(size=(25, 300))
    assert np.abs(ours.probabilities(T) - theirs.predict_proba(T)).max() < 1e-3  # both to tol 1e-4 or better
    # Negative control: another C is another model, far beyond that tolerance.
    other = LogisticRegression(C=10, solver="newton-cg", tol=1e-10, max_iter=10_000).fit(X, y)
    assert np.abs(ours.probabilities(T) - other.predict_proba(T)).max() > 1e-2


@pytest.mark.parametrize("n", (40, 400))  # fewer spectra than points (dual solver, row space) and more (primal)
def test_linear_svm_on_the_row_space_is_scikit_learns_on_the_spectra(n):
    from sklearn.svm import LinearSVC

    from trainer.models.classical import LINEAR_SVM_ITERATIONS, LINEAR_SVM_TOLERANCE

    rng = np.random.default_rng(1)
    X = rng.normal(size=(n, 300))
    y = (X[:, :3].sum(axis=1) > 0).astype(int) + (X[:, 3] > 0.5)
    ours = fit_linear(LinearSettings("linear-svm", C=0.1), X, y, 3, 0, calibrate=False)
    theirs = LinearSVC(C=0.1, random_state=0, tol=1e-8, max_iter=100_000).fit(X, y)
    T = rng.normal(size=(25, 300))
    logits = T @ ours.network.layers[0].kernel + ours.network.layers[0].bias
    assert np.abs(logits - theirs.decision_function(T)).max() < 1e-2 * np.abs(logits).max()
    # Negative control: another C is another model, far beyond that tolerance.
    other = LinearSVC(C=0.001, random_state=0, tol=LINEAR_SVM_TOLERANCE, max_iter=LINEAR_SVM_ITERATIONS).fit(X, y)
    assert np.abs(logits - other.decision_function(T)).max() > 1e-1 * np.abs(logits).max()


@pytest.mark.slow
def test_fit_without_a_model_chooses_on_the_training_spectra_only_and_ships_the_winner(synthetic, tmp_path,
                                                                                      monkeypatch):
    from trainer import fit

    ds = load_dataset(synthetic / "d.npz", None, log=lambda m: None, groups="batch")
    held = set(np.flatnonzero(ds.groups == "B5"))
    seen = []
    real = selection.inner_split

    def spy(ds_, rows, seed):
        inner = real(ds_, rows, seed)
        seen.append(set(np.concatenate([np.concatenate(p) for p in inner.pairs])))
        return inner

    monkeypatch.setattr(selection, "inner_split", spy)
    bundle = fit.fit_bundle(synthetic / "d.npz", tmp_path / "auto", groups="batch", chains=("snv",),
                            validation=(fit_split("holdout:batch=B5"),), log=lambda m: None)
    assert seen and all(not (s & held) for s in seen)
    assert all(len(s) == ds.y.size - len(held) for s in seen)
    card = bundle.card
    sel = card["selection"]
    assert [r["name"] for r in sel["candidates"]] == [c.name for c in selection.family(ds.axis, 60, ("snv",))]
    assert sel["winner"].startswith(card["network"]["kind"])
    assert "group" in sel["inner_split"] and "held-out spectra never seen" in sel["scope"]
    assert card["metrics"]["holdout"]["test_spectra"] == len(held)
    # The winner's options train the same model (same seed, same data): the same weights.
    r = subprocess.run([str(BIN / "raman-train"), "fit", str(synthetic / "d.npz"), "--out", str(tmp_path / "again"),
                        *sel["winner_options"]], capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr
    again = json.loads((tmp_path / "again" / "model.json").read_text())
    a, b = np.load(tmp_path / "auto" / "model.npz"), np.load(tmp_path / "again" / "model.npz")
    assert again["network"]["kind"] == card["network"]["kind"]
    assert np.allclose(a["layer0_kernel"], b["layer0_kernel"], atol=1e-5)


@pytest.mark.slow
def test_nested_cross_validation_chooses_inside_each_fold_and_names_each_folds_choice(synthetic, tmp_path,
                                                                                      monkeypatch):
    from trainer import fit

    ds = load_dataset(synthetic / "d.npz", None, log=lambda m: None, groups="batch")
    monkeypatch.setattr(selection, "INNER_MIN_PREDICTIONS", 1)  # one K-fold per choice: nesting is what is tested
    seen = []
    real = selection.inner_split

    def spy(ds_, rows, seed):
        seen.append(np.asarray(rows))
        return real(ds_, rows, seed)

    monkeypatch.setattr(selection, "inner_split", spy)
    bundle = fit.fit_bundle(synthetic / "d.npz", tmp_path / "nested", groups="batch", chains=("snv",),
                            validation=(fit_split("group-kfold:3"),), log=lambda m: None)
    everything = set(range(ds.y.size))
    folds = [set(r.tolist()) for r in seen if r.size < ds.y.size]
    assert len(folds) == 3 and any(r.size == ds.y.size for r in seen)  # three folds' choices, then the final one
    tests = [everything - f for f in folds]
    assert set().union(*tests) == everything and sum(map(len, tests)) == ds.y.size  # each spectrum tested once
    for test in tests:  # a choice never saw its fold's test spectra, nor any spectrum of their batches
        batches = set(ds.groups[sorted(test)])
        assert test == {i for i in everything if ds.groups[i] in batches}
    names = {c.name for c in selection.family(ds.axis, 60, ("snv",))}
    cv = bundle.card["metrics"]["cross_validation"]
    assert len(cv["folds"]) == 3 and all(f["model"] in names for f in cv["folds"])
    assert "the choice of model and its weights" in cv["protocol"]


def fit_split(text):
    from trainer.data.splits import parse_split

    return parse_split(text)


@pytest.mark.slow
def test_model_options_without_a_model_are_refused(synthetic, tmp_path):
    r = subprocess.run([str(BIN / "raman-train"), "fit", str(synthetic / "d.npz"), "--out", str(tmp_path / "b"),
                        "--C", "3"], capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and "give --model KIND too" in r.stderr and "Traceback" not in r.stderr
    assert not (tmp_path / "b").exists()
    r = subprocess.run([str(BIN / "raman-train"), "fit", str(synthetic / "d.npz"), "--out", str(tmp_path / "b"),
                        "--model", "logreg", "--hidden", "8"], capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and "--model logreg takes no --hidden" in r.stderr


def test_a_class_of_one_group_is_dealt_into_every_inner_fold():
    groups = np.array(["1", "1", "2", "2", "5", "5"] + ["0"] * 10)
    y = np.array([0, 1, 0, 1, 0, 1] + [2] * 10)
    out = selection.lone_class_shares(groups, y, 5, 0)
    assert list(out[:6]) == list(groups[:6])  # classes spread over groups keep them
    assert np.unique(out[6:]).size == 5 and all(g.startswith("0#") for g in out[6:])
    from sklearn.model_selection import StratifiedGroupKFold

    folds = list(StratifiedGroupKFold(3).split(y, y, out))
    assert all((y[tr] == 2).any() for tr, _ in folds)
    # Negative control: with the one group kept, some training fold lacks the control class.
    folds = list(StratifiedGroupKFold(3).split(y, y, groups))
    assert not all((y[tr] == 2).any() for tr, _ in folds)


@pytest.mark.slow
def test_a_linear_model_on_intensities_and_features_exports_with_both_backends_agreeing(synthetic, tmp_path):
    from device.inference.backends import NumpyBackend, TFLiteBackend
    from device.inference.bundle import INPUT_LAYOUT, load_bundle
    from device.inference.features import FEATURE_NAMES

    r = subprocess.run([str(BIN / "raman-train"), "fit", str(synthetic / "d.npz"), "--out", str(tmp_path / "b"),
                        "--model", "logreg", "--features"], capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr
    bundle = load_bundle(tmp_path / "b")
    P = bundle.axis.points
    assert bundle.input_layout == INPUT_LAYOUT and bundle.input_size == P + len(FEATURE_NAMES)
    # The intensities pass unscaled, the features are standardised by the training spectra.
    assert np.all(bundle.standardizer.mean[:P] == 0) and np.all(bundle.standardizer.scale[:P] == 1)
    assert np.any(bundle.standardizer.scale[P:] != 1)
    assert bundle.card["export_check"]["passed"] and bundle.card["hyperparameters"]["features"] is True
    ds = load_dataset(synthetic / "d.npz", None, log=lambda m: None)
    Z = bundle.inputs(ds.X)
    numpy_p = NumpyBackend(bundle).probabilities(Z)
    tflite_p = TFLiteBackend(bundle.tflite_path.read_bytes(), Z.shape[1]).probabilities(Z)
    assert np.abs(numpy_p - tflite_p).max() < 1e-5
    assert (numpy_p.argmax(1) == ds.y).mean() > 0.9
