"""``raman-train fit --preset paper``: the published compact network and its training rules, exactly."""
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from device.inference.bundle import load_bundle
from device.inference.features import FEATURE_NAMES

TRAIN = Path(sys.executable).parent / "raman-train"


def fit(*args):
    return subprocess.run([str(TRAIN), "fit", *map(str, args)], capture_output=True, text=True, timeout=900)


@pytest.fixture(scope="module")
def paper_and_default(raw_subset, tmp_path_factory):
    root = tmp_path_factory.mktemp("preset")
    for out, extra in (("paper", ["--preset", "paper"]), ("default", [])):
        r = fit(raw_subset, "--out", root / out, *extra)
        assert r.returncode == 0, r.stderr
    return load_bundle(root / "paper"), load_bundle(root / "default")


@pytest.mark.slow
def test_preset_paper_is_the_published_network(paper_and_default):
    b, _ = paper_and_default
    card = json.loads((b.path / "model.json").read_text())
    width = b.axis.points + len(FEATURE_NAMES)  # the intensities plus the 22 engineered features
    assert [layer.kernel.shape for layer in b.layers] == [(width, 5), (5, len(b.class_names))]
    assert [layer.activation for layer in b.layers] == ["leaky_relu", "softmax"] and b.leaky_slope == 0.3
    assert b.normalisation == "none"  # raw intensities, each column standardised
    assert np.all(b.standardizer.scale > 0) and b.standardizer.mean.shape == (width,)
    hp = card["hyperparameters"]
    assert (hp["epochs"], hp["batch_size"], hp["optimizer"], hp["loss"]) == \
        (50, 32, "Adam", "sparse categorical cross-entropy")
    assert hp["chosen_by"].startswith("--preset paper")


@pytest.mark.slow
def test_the_default_fit_is_not_the_preset(paper_and_default):
    """The negative control: without the preset the inputs are SNV-normalised."""
    paper, default = paper_and_default
    assert default.normalisation == "snv" != paper.normalisation


@pytest.mark.parametrize("against, named", [
    (["--preprocess", "snv"], "--preprocess snv"),
    (["--model", "cnn"], "--model cnn"),
    (["--hidden", "8"], "--hidden 8"),
    (["--epochs", "10"], "--epochs 10"),
])
@pytest.mark.slow
def test_options_against_the_preset_are_refused(against, named, tmp_path):
    r = fit(tmp_path / "nothing-read", "--out", tmp_path / "b", "--preset", "paper", *against)
    assert r.returncode == 2 and not (tmp_path / "b").exists()
    assert r.stderr.startswith("error: --preset paper sets --model compact, --preprocess none") and \
        f"remove {named}, or leave out --preset" in r.stderr, r.stderr
