"""One training engine for the compact network: fit, evaluate and compare train a pair the same way."""
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import trainer.evaluation.compare
from device.inference.features import DEFAULT_PROMINENCE
from device.inference.inputs import raw_inputs
from device.inference.network import forward
from trainer.data.dataset import load_dataset
from trainer.data.splits import SplitSpec, make_splits
from trainer.data.synth import write
from trainer.evaluation import protocol
from trainer.models.compact import Hyperparameters, fit_compact, pair_seed

BIN = Path(sys.executable).parent
HP = Hyperparameters(epochs=3, learning_rate=3e-3)
SEED = 5


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    d = tmp_path_factory.mktemp("syn")
    write(d, counts=(9, 9, 9, 6), seed=2)
    return load_dataset(d)


@pytest.fixture(scope="module")
def evaluated(small):
    """The protocol's result on one repeat of 3 folds, and those folds."""
    spec = SplitSpec("kfold", folds=3, repeats=1)
    settings = protocol.Settings(folds=3, repeats=1, seed=SEED, hp=HP, permutations=1)
    return protocol.run(small, settings, log=lambda m: None), make_splits(spec, small, SEED).pairs


@pytest.mark.slow
def test_each_fold_of_evaluate_is_fit_compact_with_its_seed(small, evaluated):
    result, pairs = evaluated
    R = raw_inputs(small.X, small.axis, DEFAULT_PROMINENCE, "snv")
    R.flags.writeable = False
    oof = np.zeros((len(small.y), len(small.class_names)))
    for f, (tr, te) in enumerate(pairs):
        fitted = fit_compact(R[tr], small.y[tr], len(small.class_names), HP, pair_seed(SEED, 0, f))
        assert len(fitted.loss) == HP.epochs
        assert fitted.loss[-1] == pytest.approx(result["folds"][f]["final_train_loss"], rel=1e-10)
        assert all(layer.kernel.dtype == np.float32 for layer in fitted.layers)
        oof[te] = forward(fitted.standardizer.transform(R[te]), fitted.layers, HP.leaky_slope)
        other = fit_compact(R[tr], small.y[tr], len(small.class_names), HP, pair_seed(SEED, 0, f) + 1)
        assert not np.allclose(other.layers[0].kernel, fitted.layers[0].kernel)  # the seed matters
        assert other.loss[-1] != pytest.approx(fitted.loss[-1], rel=1e-6)
    np.testing.assert_allclose(oof, result["roc_data"]["p"], rtol=0, atol=1e-5)  # float32 weights


def test_compare_trains_the_compact_network_as_evaluate(small, evaluated, monkeypatch):
    result, _ = evaluated
    split = make_splits(SplitSpec("kfold", folds=3, repeats=1), small, SEED)
    monkeypatch.setattr(trainer.evaluation.compare, "Hyperparameters", lambda: HP)  # compare trains with the defaults
    out = trainer.evaluation.compare.compare(small, split, models=("compact",), snr_levels=(), seed=SEED,
                                             log=lambda m: None)
    assert [s["clean"]["accuracy"] for s in out["models"]["compact"]["splits"]] == \
        [f["accuracy"] for f in result["folds"]]


def _run(*args):
    r = subprocess.run([str(BIN / "raman-train"), *map(str, args)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    return r


@pytest.mark.slow
def test_fit_cross_validation_reports_evaluate_folds(tmp_path):
    """raman-train fit --split repeated:1x5 and evaluate --split repeated:1x5 report the same folds."""
    _run("synth", "--out", tmp_path / "syn", "--counts", "12,12,10,8", "--seed", "3")
    options = ["--split", "repeated:1x5", "--epochs", "2", "--learning-rate", "2e-3"]

    def fit_folds(seed):
        out = tmp_path / f"b{seed}"
        _run("fit", tmp_path / "syn", "--out", out, "--seed", seed, "--model", "compact", "--no-augment", *options)
        card = json.loads((out / "model.json").read_text())
        return [f["accuracy"] for f in card["metrics"]["cross_validation"]["folds"]], card

    def evaluate_folds(seed):
        rep = tmp_path / f"r{seed}"
        _run("evaluate", tmp_path / "syn", "--report", rep, "--seed", seed, *options)
        report = json.loads((rep / "report.json").read_text())
        return [f["accuracy"] for f in report["results"]["folds"]], report["settings"]["hyperparameters"]

    fitted, card = fit_folds(4)
    evaluated, hp = evaluate_folds(4)
    given = Hyperparameters(epochs=2, learning_rate=2e-3).as_dict()  # the rest: the dataclass defaults
    assert hp == given and {k: card["hyperparameters"][k] for k in given} == given
    assert len(fitted) == 5 and fitted == evaluated
    assert fitted != evaluate_folds(6)[0]  # negative control: another seed, other folds and weights


@pytest.mark.slow
def test_counts_of_the_training_options_must_be_positive(tmp_path):
    for command, option in (("fit", "--epochs"), ("evaluate", "--hidden"), ("compare", "--steps")):
        r = subprocess.run([str(BIN / "raman-train"), command, str(tmp_path), "--out" if command == "fit" else
                            "--report", str(tmp_path / "o"), option, "0"], capture_output=True, text=True)
        assert r.returncode == 2 and f"argument {option}: takes a whole number of at least 1; got '0'" in r.stderr
        assert not (tmp_path / "o").exists()
