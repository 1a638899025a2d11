"""Measured verification rates: the protocol on synthetic materials, a subsample of the SERS set, both shared sets."""
import numpy as np
import pytest
from conftest import DATASETS, SERS, _need
from scipy import stats

from device.inference.spectrum import Axis
from device.inference.verification import ALPHA, MIN_REPLICATES
from trainer.data.dataset import Dataset, load_dataset
from trainer.evaluation.verification import CHAINS, spread_choice, verification_rates

AXIS = Axis(400.0, 1600.0, 301)
BANDS = {"a": (600.0, 1000.0, 1300.0), "b": (700.0, 1100.0, 1450.0)}


def material(bands, n: int, rng: np.random.Generator) -> np.ndarray:
    """Spectra (n, points) of one material: its bands with varying heights and widths, gain, offset and noise."""
    x = AXIS.values
    out = []
    for _ in range(n):
        y = sum(rng.normal(1.0, 0.1) * np.exp(-0.5 * ((x - c) / rng.normal(12.0, 0.5)) ** 2) for c in bands)
        out.append(rng.uniform(500, 2000) * (y + 0.01 * rng.normal(size=x.size)) + rng.uniform(0, 100))
    return np.array(out)


def synthetic(sizes: dict, seed: int = 0) -> Dataset:
    """A data set of the given classes: ``a`` and ``a-copy`` are one material, ``b`` another, ``small``/``tiny`` a."""
    rng = np.random.default_rng(seed)
    names = tuple(sizes)
    X = np.concatenate([material(BANDS["b" if name == "b" else "a"], n, rng) for name, n in sizes.items()])
    y = np.repeat(np.arange(len(names)), list(sizes.values()))
    return Dataset(X, y, names, AXIS, [f"s{i}" for i in range(len(y))])


def test_spread_choice_takes_each_value_in_turn():
    strata = np.array([0.0] * 10 + [1.0] * 3 + [2.0] * 10)
    rng = np.random.default_rng(0)
    counts = np.bincount(strata[spread_choice(strata, 9, rng)].astype(int))
    assert counts.tolist() == [3, 3, 3]
    picked = spread_choice(strata, 20, rng)
    counts = np.bincount(strata[picked].astype(int))
    assert counts.sum() == 20 and counts[1] == 3 and abs(counts[0] - counts[2]) <= 1  # the short value all taken
    assert np.unique(picked).size == 20 and (np.diff(picked) > 0).all()


def test_rates_tell_one_material_under_two_names_from_another_material():
    ds = synthetic({"a": 80, "a-copy": 80, "b": 80})
    r = verification_rates(ds, "snv", cap=60)
    for name in ("a", "a-copy", "b"):
        e = r["entries"][name]
        assert (e["model_replicates"], e["false_fail_tested"], e["false_pass_tested"]) == (60, 20, 160)
        assert "tested on the other 20" in e["false_fail_protocol"]
    # the same material under two names passes as the other (a negative control of the false-pass rate) ...
    assert r["entries"]["a"]["false_pass_by_material"]["a-copy"] >= 0.8
    assert r["entries"]["a-copy"]["false_pass_by_material"]["a"] >= 0.8
    # ... and the other material never passes
    assert r["entries"]["a"]["false_pass_by_material"]["b"] == r["entries"]["b"]["false_pass_by_material"]["a"] == 0
    assert r["false_fail_tested"] == 60 and r["false_pass_tested"] == 480
    assert r["false_fail"] == sum(e["false_fails"] for e in r["entries"].values()) / 60
    assert r["false_fail"] * 60 <= stats.binom.ppf(0.999, 60, ALPHA)  # genuine spectra: about alpha fail
    assert (r["preprocess"], r["cap"], r["alpha"], r["skipped"]) == ("snv", 60, ALPHA, {})


def test_small_entries_are_left_one_out_or_skipped_with_the_counts():
    ds = synthetic({"a": 12, "b": 12, "small": MIN_REPLICATES, "tiny": MIN_REPLICATES - 2})
    r = verification_rates(ds, "snv")
    assert r["entries"]["a"]["false_fail_protocol"] == "leave-one-out over its 12 spectra"
    assert r["entries"]["a"]["false_fail_tested"] == 12
    assert r["entries"]["small"]["false_fail"] is None and r["entries"]["small"]["false_pass_tested"] == 24 + 3
    assert f"leaves {MIN_REPLICATES - 1}, verification needs {MIN_REPLICATES}" in r["skipped"]["small"]
    assert "tiny" not in r["entries"]
    assert f"tiny has {MIN_REPLICATES - 2} replicate spectra" in r["skipped"]["tiny"]
    assert r["false_fail_tested"] == 24


@pytest.fixture(scope="module")
def sers_subsample(sers_npz):
    """40 spectra per class of the SERS set, evenly spaced through each class (so over its concentrations)."""
    y = sers_npz["y"]
    idx = np.concatenate([own[np.linspace(0, own.size - 1, 40).astype(int)]
                          for own in (np.flatnonzero(y == c) for c in range(len(sers_npz["class_names"])))])
    return Dataset(sers_npz["X"][idx], y[idx], tuple(sers_npz["class_names"]), Axis(501, 1999, 1499),
                   [str(f) for f in sers_npz["filenames"][idx]],
                   {"concentration_ppm": sers_npz["concentration_ppm"][idx]})


def test_rates_on_a_subsample_of_the_sers_set(sers_subsample):
    r = verification_rates(sers_subsample, "snv", cap=20, spread="concentration_ppm")
    assert set(r["entries"]) == set(sers_subsample.class_names) and r["skipped"] == {}
    for e in r["entries"].values():
        assert (e["model_replicates"], e["false_fail_tested"], e["false_pass_tested"]) == (20, 20, 200)
        assert "spread over concentration_ppm (seed 0)" in e["false_fail_protocol"]
    assert r["false_fail"] <= 0.15  # 120 genuine spectra against models on 20 replicates each
    # most pesticides never pass as another; an entry whose 20 replicates hold an outlier accepts much more
    pesticides = [e["false_pass"] for name, e in r["entries"].items() if name != "No_pest_present"]
    assert np.median(pesticides) <= 0.05
    assert r["seconds"] < 30


@pytest.mark.slow
@pytest.mark.parametrize("chain", CHAINS)
def test_rates_on_both_shared_sets(chain):
    sers = load_dataset(_need(SERS / "sersformer_pesticides.npz"))
    r = verification_rates(sers, chain, spread="concentration_ppm")
    assert r["seconds"] < 120 and r["false_fail_tested"] == len(sers.y) - 6 * 60
    assert 0.01 <= r["false_fail"] <= 0.06  # honest near alpha with 60 replicates per entry
    assert r["false_pass"] <= 0.06
    plastics = load_dataset(_need(DATASETS / "rampp_microplastics" / "rampp_microplastics.npz"),
                            axis=Axis(100.0, 3679.54, 1566))
    r = verification_rates(plastics, chain)
    assert r["skipped"] == {} and r["false_fail_tested"] == len(plastics.y)
    assert r["false_fail"] <= 0.12
