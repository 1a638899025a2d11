"""The model benchmark's pure parts: card reading, the family from a selection, targets, tables, FLOP."""
import json
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

import bench_models as bm  # noqa: E402


def card(selection=None, cv=True):
    """A model card with the fields the benchmark reads, optionally with a cross-validation and a selection."""
    c = {"metrics": {"holdout": {"split": "holdout:condition=SW", "accuracy": 0.9444, "macro_f1": 0.931},
                     "training": {"accuracy": 1.0}},
         "flop_per_spectrum": {"resample": 4863, "normalise": 8105, "network": 35673, "total": 48641}}
    if cv:
        c["metrics"]["cross_validation"] = {"accuracy_mean": 0.97, "accuracy_std": 0.01, "macro_f1_mean": 0.965}
    if selection is not None:
        c["selection"] = selection
    return c


SELECTION = {"winner": "logreg-C10", "inner_split": "group-kfold:5 on the training spectra",
             "rule": "highest inner-CV accuracy within the FLOP budget",
             "candidates": [
                 {"name": "logreg-C10", "options": ["--model", "logreg", "--C", "10", "--preprocess", "snv"],
                  "flop": 40000, "cv_accuracy_mean": 0.98, "cv_accuracy_std": 0.01, "cv_macro_f1_mean": 0.97,
                  "cv_weak_accuracy_mean": {"snr10": 0.96, "snr5": 0.91}, "cv_score_mean": 0.95, "within_budget": True},
                 {"name": "cnn", "options": ["--model", "cnn"], "flop": 9_000_000, "cv_accuracy_mean": 0.99,
                  "cv_accuracy_std": 0.01, "cv_macro_f1_mean": 0.99, "within_budget": False},
                 {"name": "compact", "options": ["--model", "compact"], "flop": 77000, "cv_accuracy_mean": 0.95,
                  "cv_accuracy_std": 0.02, "cv_macro_f1_mean": 0.94, "within_budget": True}]}


def test_card_figures_holdout_and_cross_validation():
    f = bm.card_figures(card(), holdout=True)
    assert f == {"accuracy": 0.9444, "macro_f1": 0.931, "cv_accuracy": 0.97, "flop": 48641, "winner": None}
    f = bm.card_figures(card(), holdout=False)
    assert (f["accuracy"], f["macro_f1"]) == (0.97, 0.965)
    assert bm.card_figures(card(cv=False), holdout=True)["cv_accuracy"] is None


def test_card_figures_of_the_shipped_card():
    """A card written by raman-train fit itself, read as the benchmark reads the cards of its fits."""
    shipped = json.loads((ROOT / "models" / "sers-pesticides" / "model.json").read_text())
    f = bm.card_figures(shipped, holdout=True)
    assert f["accuracy"] == shipped["metrics"]["holdout"]["accuracy"]
    assert f["flop"] == shipped["flop_per_spectrum"]["total"] == sum(
        v for k, v in shipped["flop_per_spectrum"].items() if k != "total")


def test_card_without_the_split_metrics_is_named():
    with pytest.raises(KeyError, match="metrics.cross_validation"):
        bm.card_figures(card(cv=False), holdout=False)


def test_family_from_selection_keeps_candidates_within_budget():
    members, source = bm.family_of(card(SELECTION))
    assert members == [("logreg-C10", ["--model", "logreg", "--C", "10", "--preprocess", "snv"]),
                       ("compact", ["--model", "compact"])]
    assert "winner logreg-C10" in source
    assert bm.card_figures(card(SELECTION), holdout=True)["winner"] == "logreg-C10"


def test_family_options_are_options_fit_takes():
    """Each member's options, with a split option, parse as raman-train fit's command line."""
    from trainer.cli import build_parser

    for _, options in [*bm.family_of(card())[0], *bm.family_of(card(SELECTION))[0]]:
        args = build_parser().parse_args(["fit", "data.npz", "--out", "o", *options,
                                          *bm.split_options("holdout:condition=SW")])
        assert args.holdout == "condition=SW"


def test_family_without_selection_is_the_fixed_list():
    members, source = bm.family_of(card())
    assert [m for m, _ in members] == ["compact", "logreg", "linear-svm", "pca-logreg"]
    assert all(opts[-2:] == ["--preprocess", "snv"] for _, opts in members)
    assert "no selection" in source


@pytest.mark.parametrize("broken, problem", [
    ({"winner": "a", "candidates": []}, "winner and a list of candidates"),
    ({"candidates": SELECTION["candidates"]}, "winner and a list of candidates"),
    ({"winner": "a", "candidates": [{"name": "a", "options": []}]}, "lacks within_budget"),
])
def test_malformed_selection_is_refused(broken, problem):
    with pytest.raises(ValueError, match=problem):
        bm.family_of(card(broken))


def test_split_options():
    assert bm.split_options("holdout:concentration_ppm=0.5") == ["--holdout", "concentration_ppm=0.5"]
    assert bm.split_options("repeated:3x5") == ["--split", "repeated:3x5"]
    assert bm.split_options("holdout:0.2") == ["--split", "holdout:0.2"]


def test_targets_hold_at_the_threshold_and_fail_just_past_it():
    sers = bm.CASES[0]
    good = {"accuracy": 0.99, "flop": 1e6, "gap": 1.0, "seconds": 300.0}
    assert [ok for _, _, ok in bm.check_targets(good, sers.targets)] == [True] * 4
    for key, bad in (("accuracy", 0.9899), ("flop", 1e6 + 1), ("gap", 1.01), ("seconds", 300.5)):
        rows = bm.check_targets({**good, key: bad}, sers.targets)
        failed = [t.key for t, (_, _, ok) in zip(sers.targets, rows) if not ok]
        assert failed == [key]


def test_missing_value_does_not_hold():
    sw = bm.CASES[1]
    rows = bm.check_targets({"accuracy": 1.0, "flop": 1, "gap": 0.0}, sw.targets)
    assert {t.key: ok for t, (_, _, ok) in zip(sw.targets, rows)} == {
        "accuracy": True, "snr10": False, "snr5": False, "flop": True, "gap": True}


def test_every_case_has_its_brief_targets():
    keys = {c.split: sorted(t.key for t in c.targets) for c in bm.CASES}
    assert keys == {"holdout:concentration_ppm=0.5": ["accuracy", "flop", "gap", "seconds"],
                    "holdout:condition=SW": ["accuracy", "flop", "gap", "snr10", "snr5"],
                    "repeated:3x5": ["accuracy", "flop", "gap"]}


def test_gap_points_sign():
    assert bm.gap_points(0.95, 0.97) == pytest.approx(2.0)
    assert bm.gap_points(0.98, 0.97) == pytest.approx(-1.0)


def test_markdown_table():
    assert bm.markdown_table(["a", "b"], [(1, "x"), (2.5, None)]) == ["| a | b |", "|---|---|", "| 1 | x |",
                                                                      "| 2.5 | None |"]
    with pytest.raises(ValueError, match="3 cells for 2 columns"):
        bm.markdown_table(["a", "b"], [(1, 2, 3)])


def test_formatting():
    assert bm.pct(0.98765) == "98.77 %" and bm.pct(None) == "-"
    assert bm.show("flop", 1234567) == "1,234,567" and bm.show("gap", 0.5) == "+0.50 points"
    assert bm.show("seconds", 12.4) == "12 s" and bm.show("snr5", 0.9) == "90.00 %"


def test_baseline_flop_against_a_hand_count():
    """The FLOP of both baselines on a small fitted problem, against counts written out here."""
    rng = np.random.default_rng(0)
    D, C = 40, 3
    X, y = rng.normal(size=(60, D)), np.repeat(np.arange(C), 20)
    front = (3 + 5) * D  # resampling 3 / point, SNV 5 / point (device.inference.cost)
    pca = bm.baseline_pipeline("sklearn PCA(30)-logreg", 0).fit(X, y)
    k = 30
    assert bm.baseline_flop(pca, D) == front + 2 * D + (D + 2 * D * k) + (2 * k * C + C) + C - 1
    svm = bm.baseline_pipeline("sklearn LinearSVC", 0).fit(X, y)
    assert bm.baseline_flop(svm, D) == front + 2 * D * C + C + C - 1
    assert bm.baseline_flop(pca, D) != bm.baseline_flop(svm, D)  # the two counts are told apart


def test_evaluation_spectra_are_the_same_for_every_caller():
    """One seed, one pair: the same degraded spectra each call; another pair number, other spectra."""
    from device.inference.spectrum import Axis
    from trainer.data.dataset import Dataset
    from trainer.evaluation.compare import evaluation_spectra

    axis = Axis(500, 600, 101)
    X = 1 + np.exp(-((axis.values[None] - np.linspace(520, 580, 6)[:, None]) / 5) ** 2)
    ds = Dataset(X=X, y=np.arange(6) % 2, class_names=("a", "b"), axis=axis, sources=[f"s{i}" for i in range(6)])
    test = np.array([1, 3, 4])
    a, b = evaluation_spectra(ds, test, (10.0, 5.0), 0, 0), evaluation_spectra(ds, test, (10.0, 5.0), 0, 0)
    assert list(a) == ["clean", "snr10", "snr5"]
    for cond in a:
        np.testing.assert_array_equal(a[cond], b[cond])
    np.testing.assert_array_equal(a["clean"], X[test])
    assert not np.allclose(a["snr5"], evaluation_spectra(ds, test, (10.0, 5.0), 0, 1)["snr5"])
    assert not np.allclose(a["snr10"], a["clean"])



def test_selection_table_marks_the_winner():
    lines = bm.selection_lines(card(SELECTION))
    rows = [ln for ln in lines if ln.startswith("| ")][1:]
    assert [r.split(" | ")[0] for r in rows] == ["| **logreg-C10**", "| cnn", "| compact"]
    assert rows[1].endswith("| no |") and "9,000,000" in rows[1]
    assert "98.00 % +/- 1.00 % | 96.00 % / 91.00 % | 95.00 %" in rows[0]
    assert bm.selection_lines(card()) == []


def test_selection_table_shows_untrained_candidates_as_such():
    """Candidates over the budget are not trained: the card holds None for their inner-CV figures."""
    sel = json.loads(json.dumps(SELECTION))
    sel["candidates"][1].update(cv_accuracy_mean=None, cv_accuracy_std=None, cv_macro_f1_mean=None)
    rows = [ln for ln in bm.selection_lines(card(sel)) if ln.startswith("| ")][1:]
    assert "not trained (over budget)" in rows[1] and rows[1].endswith("| - | no |")
    assert "not trained" not in rows[0]


def test_a_cell_with_a_pipe_stays_one_cell():
    (header, rule, row) = bm.markdown_table(["a", "b"], [("logreg C=10 | snv", "x")])
    assert row == "| logreg C=10 \\| snv | x |"
    assert len(row.replace("\\|", "").split("|")) == len(header.split("|"))
