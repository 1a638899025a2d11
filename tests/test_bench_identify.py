"""The identification benchmark: its quick run's report, the classify-mode verdict it scores, and its controls."""
import json
import re
import sys
from pathlib import Path

import numpy as np
import pytest

from device.inference.analysis import Analysis
from device.inference.bundle import load_bundle
from device.inference.classifier import Classifier, Prediction
from device.inference.library import load_library
from tests.conftest import DATASETS, ROOT
from trainer.data.dataset import load_dataset
from trainer.evaluation.mixtures import PESTICIDE_CONTROL, mixture_rates

sys.path.insert(0, str(ROOT / "benchmarks"))

import bench_identify as bi  # noqa: E402

PESTICIDES, MICROPLASTICS = bi.SETS
#: The tables of each set's section: first header cell -> (columns, rows).
TABLES = {"method": (7, 2), "chain": (6, 1), "spectra": (9, 6), "target": (3, 3)}
SHARE = re.compile(r"^(\d+\.\d\d) %")


def _need(shared):
    path = DATASETS / shared.data
    if not path.exists():
        pytest.skip(f"real data set not found at {path}; set RAMAN_EDGE_DATASETS to the datasets folder")
    return path


def tables(section: str) -> list[list[list[str]]]:
    """The Markdown tables of a section: each a list of rows (header first, separator dropped) of cells."""
    out, current = [], None
    for line in section.splitlines():
        if line.startswith("|"):
            cells = [c.strip() for c in re.split(r"(?<!\\)\|", line.strip())[1:-1]]
            if current is None:
                current = []
                out.append(current)
            if not all(set(c) <= {"-"} for c in cells):
                current.append(cells)
        else:
            current = None
    return out


@pytest.fixture(scope="module")
def quick_report(tmp_path_factory):
    _need(PESTICIDES), _need(MICROPLASTICS)
    report = tmp_path_factory.mktemp("identify") / "identify.md"
    assert bi.main(["--quick", "--write", "--report", str(report), "--datasets", str(DATASETS)]) == 0
    return report.read_text()


@pytest.fixture(scope="module")
def pesticide_sample():
    """120 SERS spectra (20 per class, seeded), their labels, axis, the shipped classifier and library chain."""
    ds = load_dataset(_need(PESTICIDES))
    rows = bi.per_class_rows(ds.y, 20, 0)
    classifier = Classifier(load_bundle(ROOT / PESTICIDES.model))
    chain = load_library(ROOT / PESTICIDES.library).preprocess
    return ds.X[rows], np.asarray(ds.class_names)[ds.y[rows]], ds.axis, classifier, chain


@pytest.mark.slow
def test_quick_report_has_every_table_with_shares(quick_report):
    assert quick_report.startswith("# Benchmark: identification")
    assert "`benchmarks/bench_identify.py --quick --write`" in quick_report
    sections = quick_report.split("\n## ")[1:]
    assert [s.splitlines()[0] for s in sections] == [PESTICIDES.title, MICROPLASTICS.title]
    for section in sections:
        found = tables(section)
        assert [t[0][0] for t in found] == list(TABLES)
        for table in found:
            columns, rows = TABLES[table[0][0]]
            assert [len(r) for r in table] == [columns] * (rows + 1), table
            for cell in (c for r in table[1:] for c in r[1:]):
                share = SHARE.match(cell)
                if share:
                    assert 0.0 <= float(share.group(1)) <= 100.0, cell
        mixtures = found[2]
        head = mixtures[0]
        for row in mixtures[1:]:
            parts = [float(SHARE.match(row[head.index(k)]).group(1))
                     for k in ("mixture or unknown", "uncertain", "one confident class")]
            assert sum(parts) == pytest.approx(100.0, abs=0.03), row
        assert [r[0] for r in mixtures[1:]] == ["mixtures 25:75", "mixtures 50:50", "mixtures 75:25", "all mixtures",
                                                "single spectra, as measured", "single spectra, degraded to SNR 50"]
        assert [r[-1] in ("yes", "**no**") for r in found[3][1:]] == [True] * 3


@pytest.mark.slow
def test_mixture_shares_are_those_of_mixture_rates(pesticide_sample):
    """Same arguments, same draws: the library's mixture verdicts are mixture_rates' (6 entries: all unmixed)."""
    Y, labels, axis, classifier, chain = pesticide_sample
    pesticides = sorted(set(labels) - {PESTICIDE_CONTROL})
    ours = bi.mixture_verdicts(Y, labels, axis, classifier, chain, components=pesticides, folds=2, count=30)
    theirs = mixture_rates(Y, labels, axis, components=pesticides, folds=2, count=30)
    for key, m in theirs["mixtures"].items():
        assert (ours["mixtures"][key]["mixture"], ours["mixtures"][key]["right_pair"]) == \
            pytest.approx((m["detected"], m["right_pair"]), abs=1e-12), key
    for key, rate in theirs["false_mixture"].items():
        assert ours["singles"][key]["mixture"] == pytest.approx(rate, abs=1e-12), key
    assert ours["thresholds"] == pytest.approx(theirs["thresholds"])
    for s in (*ours["mixtures"].values(), *ours["singles"].values()):
        assert s["mixture_or_unknown"] + s["uncertain"] + s["confident"] == pytest.approx(1.0)
        assert max(s["mixture"], s["unknown"]) <= s["mixture_or_unknown"] <= s["mixture"] + s["unknown"]


@pytest.mark.slow
def test_with_the_threshold_at_infinity_nothing_is_a_mixture(pesticide_sample):
    Y, labels, axis, classifier, chain = pesticide_sample
    pesticides = sorted(set(labels) - {PESTICIDE_CONTROL})
    never = bi.mixture_verdicts(Y, labels, axis, classifier, chain, components=pesticides, folds=2, count=30,
                                threshold=np.inf)
    assert never["thresholds"] == [np.inf, np.inf]
    for s in (*never["mixtures"].values(), *never["singles"].values()):
        assert s["mixture"] == 0.0 and not s["right_pair"]
        assert s["mixture_or_unknown"] == s["unknown"]
    # and the other way: every statistic above 0 is a mixture, so more single spectra are called mixtures
    always = bi.mixture_verdicts(Y, labels, axis, classifier, chain, components=pesticides, folds=2, count=30,
                                 threshold=0.0)
    assert always["mixtures"]["all"]["mixture"] >= 0.95
    assert always["singles"]["as_measured"]["mixture"] > 0.5


def _prediction(label="a", confidence=0.9, unknown=False):
    return Prediction(label, confidence, {label: confidence}, "m@0", 1.0, unknown)


def _analysis(mixture: bool | None):
    part = {} if mixture is None else {"mixture": {"is_mixture": mixture, "components": [
        {"name": "b", "fraction": 0.6}, {"name": "c", "fraction": 0.4}] if mixture else [{"name": "b", "fraction": 1}]}}
    return Analysis("b", {"mode": "identify", **part})


def test_classify_mode_verdict_is_the_services_rule():
    assert bi.classify_mode_verdict(_prediction(), _analysis(True), 0.8) == "mixture of b + c"
    assert bi.classify_mode_verdict(_prediction(unknown=True), _analysis(True), 0.8) == "mixture of b + c"
    assert bi.classify_mode_verdict(_prediction(unknown=True), _analysis(False), 0.8) == "unknown"
    assert bi.classify_mode_verdict(_prediction(confidence=0.79), _analysis(False), 0.8) == "uncertain"
    assert bi.classify_mode_verdict(_prediction(confidence=0.8), _analysis(None), 0.8) == "a"
    assert bi.MIN_CONFIDENCE == 0.8


def test_shares_of_outcomes():
    out = bi.Outcome
    s = bi.shares([out(True, True, True, False, False, False), out(False, False, True, False, False, False),
                   out(False, False, False, True, False, False), out(False, False, False, False, True, True),
                   out(False, False, False, False, True, False)])
    assert s == {"count": 5, "mixture": 0.2, "right_pair": 0.2, "unknown": 0.4, "mixture_or_unknown": 0.4,
                 "uncertain": 0.2, "confident": 0.4, "held": 0.2}
    assert bi.shares([out(False, None, True, False, False, False)])["right_pair"] is None


def test_targets_hold_only_when_every_one_does():
    def result(worst, false, confident):
        mixtures = {"25:75": {"mixture_or_unknown": worst}, "50:50": {"mixture_or_unknown": 1.0},
                    "all": {"confident": confident}}
        return {"mixtures": mixtures, "singles": {"as_measured": {"mixture": 0.0}, "degraded": {"mixture": false}}}

    assert [ok for _, _, ok in bi.mixture_targets(result(0.9, 0.01, 0.0))] == [True, True, True]
    assert [ok for _, _, ok in bi.mixture_targets(result(0.89, 0.011, 0.001))] == [False, False, False]


def test_sets_follow_the_shipped_library_recipes():
    for shared in bi.SETS:
        card = json.loads((ROOT / shared.library / "library.json").read_text())
        refs = card["data"]["references"]
        assert refs == ("all spectra of each entry" if shared.references is None
                        else f"{shared.references[0]}={','.join(shared.references[1])}")
        assert card["verification"]["spread"] == shared.spread
        assert card["mixture"]["blank"] == shared.blank
        assert card["mixture"]["measured"]["spectra_per_entry_at_most"] == (shared.mixture_per_class or 400)
        model = json.loads((ROOT / shared.model / "model.json").read_text())
        assert [e["name"] for e in card["entries"]] == model["classes"]
        assert (card["axis"]["start"], card["axis"]["points"]) == (model["axis"]["start"], model["axis"]["points"])
        recipe = (ROOT / "models" / "recipes" / f"{Path(shared.library).name}-library.sh").read_text()
        assert (shared.references is None) == ("--references" not in recipe)


def test_missing_data_is_one_message(tmp_path, capsys):
    assert bi.main(["--quick", "--datasets", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: data set(s) not found under") and "Traceback" not in err
