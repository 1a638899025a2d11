"""The repeated K-fold protocol: fold logic, no leakage, engines, metrics, report, CLI."""
import json
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from helpers import OutputLines
from sklearn.metrics import roc_auc_score

from device.inference.inputs import raw_inputs
from trainer.data.dataset import load_dataset
from trainer.data.splits import stratified_folds
from trainer.data.synth import write
from trainer.evaluation import protocol
from trainer.evaluation.metrics import one_vs_rest_auc, roc_curve
from trainer.models.compact import Hyperparameters

BIN = Path(sys.executable).parent


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    d = tmp_path_factory.mktemp("syn")
    write(d, counts=(9, 9, 9, 6), seed=2)
    return load_dataset(d)


def _settings(**kw):
    base = dict(folds=3, repeats=2, seed=1, hp=Hyperparameters(epochs=3, learning_rate=3e-3), permutations=1)
    base.update(kw)
    return protocol.Settings(**base)


@pytest.mark.slow
def test_every_spectrum_tested_once_per_repeat_and_shuffles_differ(small, monkeypatch):
    made = []
    real = protocol.make_splits
    monkeypatch.setattr(protocol, "make_splits", lambda *a: made.append(real(*a)) or made[-1])
    protocol.run(small, _settings(), log=lambda m: None)
    assert len(made) == 1 and made[0].spec.text == "repeated:2x3"
    seen = made[0].repeats
    assert len(seen) == 2
    for splits in seen:
        tests = np.concatenate([te for _, te in splits])
        assert sorted(tests) == list(range(len(small.y)))
        for tr, te in splits:
            assert np.intersect1d(tr, te).size == 0
    assert not all(np.array_equal(a[1], b[1]) for a, b in zip(*seen))


def test_standardisation_sees_training_rows_only(small, monkeypatch):
    R = raw_inputs(small.X, small.axis, 0.05, protocol.Settings().normalisation)
    fitted = []
    real = protocol.Standardizer.fit
    monkeypatch.setattr(protocol.Standardizer, "fit", classmethod(lambda cls, X: fitted.append(X) or real(X)))
    splits = stratified_folds(small.y, 3, 1)
    protocol.run(small, _settings(repeats=1), log=lambda m: None)
    assert len(fitted) == 3
    for X, (tr, _) in zip(fitted, splits):
        np.testing.assert_array_equal(X, R[tr])


@pytest.mark.slow
def test_result_structure_and_engines_agree(small):
    fast = protocol.run(small, _settings(), log=lambda m: None)
    ref = protocol.run(small, _settings(engine="naive"), log=lambda m: None)
    assert len(fast["folds"]) == 6 and len(fast["repeats"]) == 2
    assert fast["accuracy_mean"] == pytest.approx(np.mean([r["accuracy"] for r in fast["repeats"]]))
    np.testing.assert_allclose(fast["roc_data"]["p"], ref["roc_data"]["p"], atol=1e-4)
    assert fast["accuracy_mean"] == ref["accuracy_mean"]
    np.testing.assert_allclose(fast["loss_curves"]["train_mean"], ref["loss_curves"]["train_mean"], rtol=1e-4)
    imp = fast["importance"]
    assert len(imp["features"]) == 22
    assert max([*imp["features"].values(), *(b["importance"] for b in imp["bands"])]) == 1.0
    assert sum(len(r) for r in [fast["pooled"]["per_class"]]) == 4


def test_roc_and_auc_match_scikit_learn():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, 300)
    p = rng.dirichlet(np.ones(3), 300)
    p[np.arange(300), y] += rng.uniform(0, 0.5, 300)
    p = np.round(p / p.sum(1, keepdims=True), 2)  # ties in the scores
    for c, auc in enumerate(one_vs_rest_auc(y, p)):
        assert auc == pytest.approx(roc_auc_score(y == c, p[:, c]))
    fpr, tpr = roc_curve(y == 0, p[:, 0])
    assert fpr[0] == tpr[0] == 0 and fpr[-1] == tpr[-1] == 1 and np.all(np.diff(fpr) >= 0)


@pytest.mark.slow
def test_synth_and_evaluate_cli_write_a_full_report(tmp_path):
    r = subprocess.run([str(BIN / "raman-train"), "synth", "--out", str(tmp_path / "syn"), "--counts", "6,6,6,4"],
                       capture_output=True, text=True)
    assert r.returncode == 0 and "SYNTHETIC" in r.stdout
    r = subprocess.run([str(BIN / "raman-train"), "evaluate", str(tmp_path / "syn"), "--report", str(tmp_path / "rep"),
                        "--folds", "3", "--repeats", "2", "--epochs", "2"], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert "repeat 1/2" in r.stdout and "repeat 2/2" in r.stdout
    rep = json.loads((tmp_path / "rep" / "report.json").read_text())
    assert rep["settings"]["folds"] == 3 and rep["data"]["spectra"] == 22 and len(rep["results"]["folds"]) == 6
    assert rep["software"]["numpy"] and rep["data"]["fingerprint_sha256"]
    for fig in ("confusion_matrix.png", "roc.png", "loss.png", "importance.png"):
        assert (tmp_path / "rep" / fig).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    md = (tmp_path / "rep" / "report.md").read_text()
    assert "| class | precision | recall | F1 |" in md and "98.58 %" in md
    assert sorted(p.name for p in tmp_path.iterdir()) == ["rep", "syn"]


@pytest.mark.slow
def test_ctrl_c_leaves_no_half_written_report(tmp_path):
    # 1000 repeats of 40 epochs take over a minute, far longer than the interrupt takes to arrive, and their
    # progress lines stay below a pipe's buffer, so the interrupted process never waits on a full pipe
    write(tmp_path / "syn", counts=(6, 6, 6, 4), seed=0)
    proc = subprocess.Popen([str(BIN / "raman-train"), "evaluate", str(tmp_path / "syn"), "--report",
                             str(tmp_path / "rep"), "--folds", "3", "--repeats", "1000", "--epochs", "40"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        OutputLines(proc).read_until(lambda line: line.startswith("repeat 1/"), timeout=300)
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    err = proc.stderr.read()
    assert proc.returncode == 130 and "interrupted: nothing was written" in err and "Traceback" not in err, \
        (proc.returncode, err[-3000:])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["syn"]
