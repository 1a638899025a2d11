"""Reference libraries: search against outside oracles, leave-one-out calibration, bad input, tampering."""
from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import scipy.stats

from device.errors import LibraryError
from device.inference.library import MIN_OVERLAP, load_library, unit_rows, write_library
from device.inference.preprocess import Chain
from device.inference.spectrum import Axis, Spectrum
from tests.conftest import ROOT, SERS, _need
from trainer.data.dataset import load_dataset
from trainer.library import LibraryBuildError, build_library, calibration, leave_one_out_hqi


@pytest.fixture(scope="module")
def sers_subset():
    """300 real SERS spectra, 50 per class, on the set's own axis."""
    ds = load_dataset(_need(SERS / "sersformer_pesticides.npz"))
    rng = np.random.default_rng(0)
    keep = np.sort(np.concatenate([rng.choice(np.flatnonzero(ds.y == k), 50, replace=False)
                                   for k in range(len(ds.class_names))]))
    return ds.subset(keep)


@pytest.fixture(scope="module")
def library(sers_subset, tmp_path_factory):
    return build_library(sers_subset, tmp_path_factory.mktemp("lib") / "pesticides", name="pesticides",
                         matching="derivative", source="sersformer_pesticides.npz")


@pytest.mark.slow
def test_hqi_is_pearson_correlation_after_the_chain(library, sers_subset):
    """Every HQI is 100 x scipy.stats.pearsonr of the preprocessed sample and the entry's mean reference."""
    chain = library.preprocess
    x = sers_subset.X[7]
    found = library.search(Spectrum(sers_subset.axis.values, x), top=len(library.entry_names))
    P = chain.apply(sers_subset.X)
    for hit in found.hits:
        k = library.entry_names.index(hit.name)
        reference = P[sers_subset.y == k].mean(axis=0)
        r = scipy.stats.pearsonr(chain.apply(x[None])[0], reference).statistic
        assert hit.hqi == pytest.approx(100 * r, abs=2e-3)
    assert [h.hqi for h in found.hits] == sorted((h.hqi for h in found.hits), reverse=True)
    # negative control: the same spectrum with its points shuffled matches nothing
    shuffled = np.random.default_rng(1).permutation(x)
    assert library.search(Spectrum(sers_subset.axis.values, shuffled)).hits[0].hqi < 20


@pytest.mark.slow
def test_search_on_its_own_axis_and_on_a_partial_one(library, sers_subset):
    """A spectrum on another grid is resampled; one covering 85 % of the axis is matched on that part only."""
    values = sers_subset.axis.values
    x = sers_subset.X[100]
    full = library.search(Spectrum(values, x))
    assert full.hits[0].name == sers_subset.class_names[sers_subset.y[100]] and full.match
    cut = values <= values[0] + 0.85 * (values[-1] - values[0])
    part = library.search(Spectrum(values[cut], x[cut]), top=3)
    y = library.preprocess.apply(x[cut][None])[0]
    k = library.entry_names.index(part.hits[0].name)
    oracle = np.corrcoef(y, library.references[k, :cut.sum()].astype(float))[0, 1]
    assert part.hits[0].hqi == pytest.approx(100 * oracle, abs=2e-3)
    assert np.isnan(part.sample[~cut]).all() and np.isfinite(part.sample[cut]).all()


@pytest.mark.slow
def test_axes_that_overlap_too_little_are_refused_with_both_ranges(library, sers_subset):
    values = sers_subset.axis.values
    cut = values <= values[0] + (MIN_OVERLAP - 0.1) * (values[-1] - values[0])
    with pytest.raises(LibraryError, match=r"covers 501-1\d{3} cm-1 and the library .* 501-1999 cm-1: they overlap "
                                           r"on 70 %"):
        library.search(Spectrum(values[cut], sers_subset.X[0][cut]))
    with pytest.raises(LibraryError, match="overlap on 0 %"):
        library.search(Spectrum(np.linspace(2500, 3000, 200), np.random.default_rng(0).random(200)))


@pytest.mark.slow
def test_leave_one_out_matches_rebuilding_the_library_without_each_spectrum(sers_subset):
    """The vectorised leave-one-out equals the obvious loop that recomputes the own reference without i."""
    P = Chain.parse("snv", 1.0).apply(sers_subset.X[::5])
    owner = sers_subset.y[::5]
    refs = np.zeros(len(owner), bool)
    refs[::2] = True  # half the spectra make the references
    E = len(sers_subset.class_names)
    hqi, query, _ = leave_one_out_hqi(P, owner, refs, E)
    for i in range(len(owner)):
        keep = refs.copy()
        keep[i] = False
        for e in range(E):
            members = keep & (owner == e)
            if not members.any():
                assert not query[i]
                continue
            assert hqi[i, e] == pytest.approx(100 * np.corrcoef(P[i], P[members].mean(axis=0))[0, 1], abs=1e-9)


def test_calibration_threshold_and_rates():
    """Hand-made HQI values: the threshold is the stated quantile, and each rate counts what it says."""
    hqi = np.array([[90.0, 10.0, 5.0], [80.0, 85.0, 0.0], [20.0, 30.0, 95.0], [60.0, 50.0, 40.0]])
    owner = np.array([0, 1, 2, 0])
    cal = calibration(hqi, owner, 0.25)
    assert cal["no_match_below"] == pytest.approx(np.quantile([90, 85, 95, 60], 0.25))
    assert cal["top1"] == 1.0 and cal["top3"] == 1.0
    others = np.array([10.0, 80.0, 30.0, 50.0])  # the best hit among the other entries
    assert cal["false_match_absent"] == pytest.approx((others >= cal["no_match_below"]).mean())
    wrong = calibration(hqi, np.array([1, 0, 2, 0]), 0.25)  # negative control: mislabelled queries
    assert wrong["top1"] == 0.5


@pytest.mark.slow
def test_the_card_states_what_was_chosen_and_measured(library):
    card = library.card
    assert card["kind"] == "reference-library" and card["id"] == library.library_id
    assert card["matching"]["preprocess"] == library.preprocess.text == "savgol:9:2:1,snv"
    assert card["calibration"]["false_no_match"] == 0.05
    assert 0.9 < card["calibration"]["top1"] <= 1.0
    assert [e["name"] for e in card["entries"]] == list(library.entry_names)
    assert all(e["replicates_stored"] == 50 for e in card["entries"])
    assert set(card["files"]) == {"library.npz"}


@pytest.mark.slow
def test_a_library_of_single_spectra_cannot_be_calibrated(sers_subset, tmp_path):
    one = sers_subset.subset(np.array([np.flatnonzero(sers_subset.y == k)[0] for k in range(6)]))
    with pytest.raises(LibraryBuildError, match="every spectrum alone makes its entry's reference"):
        build_library(one, tmp_path / "lib", name="x")
    assert not (tmp_path / "lib").exists()


@pytest.mark.slow
@pytest.mark.parametrize("damage, message", [
    (lambda p: p.joinpath("library.npz").write_bytes(p.joinpath("library.npz").read_bytes()[:-10] + b"0" * 10),
     "library.npz does not match its SHA-256"),
    (lambda p: p.joinpath("extra.txt").write_text("x"), "extra.txt is not listed"),
    (lambda p: p.joinpath("library.json").write_text(
        json.dumps({**json.loads(p.joinpath("library.json").read_text()), "kind": "model"})), "not the card of a "
                                                                                           "reference library"),
    (lambda p: p.joinpath("library.json").write_text(
        json.dumps({**json.loads(p.joinpath("library.json").read_text()), "schema_version": 9})),
     "unknown library schema version 9"),
    (lambda p: p.joinpath("library.json").unlink(), "library.json is missing"),
])
def test_a_damaged_or_tampered_library_is_refused(library, tmp_path, damage, message):
    import shutil

    copy = tmp_path / "lib"
    shutil.copytree(library.path, copy)
    damage(copy)
    with pytest.raises(LibraryError, match=message):
        load_library(copy)


def test_a_model_bundle_is_not_a_library():
    with pytest.raises(LibraryError, match="library.json is missing"):
        load_library(ROOT / "models" / "sers-pesticides")


def test_inconsistent_arrays_are_refused(tmp_path):
    axis = Axis(0.0, 99.0, 100)
    good = dict(name="t", axis=axis, preprocess=Chain.parse("snv", 1.0), entry_names=["a", "b"],
                references=np.random.default_rng(0).random((2, 100)), spectra=np.zeros((0, 100)),
                spectrum_entry=np.zeros(0, int), no_match_below=50.0, false_no_match=0.05, card={})
    write_library(tmp_path / "ok", **good)
    for change, message in [({"entry_names": ["a", "a"]}, "distinct"),
                            ({"spectra": np.ones((1, 100)), "spectrum_entry": np.array([5])}, "entry indices"),
                            ({"no_match_below": 300.0}, "an HQI")]:
        with pytest.raises(LibraryError, match=message):
            write_library(tmp_path / "bad", **{**good, **change})


def test_unit_rows_against_scipy_zscore():
    X = np.random.default_rng(3).normal(size=(4, 50))
    expected = scipy.stats.zscore(X, axis=1) / np.sqrt(50)
    assert np.allclose(unit_rows(X), expected)
    assert np.array_equal(unit_rows(np.ones((1, 5))), np.zeros((1, 5)))


def _cli(*args, check=True):
    r = subprocess.run([sys.executable, "-m", "device.cli", *args], capture_output=True, text=True, cwd=ROOT)
    if check:
        assert r.returncode == 0, r.stderr
    return r


@pytest.mark.slow
def test_identify_command_json_table_and_errors(library, raw_files, tmp_path):
    files = [str(f) for f in raw_files[::30]]
    rows = [json.loads(line) for line in _cli("identify", "--library", str(library.path), *files).stdout.splitlines()]
    assert len(rows) == len(files)
    for row in rows:
        assert row["mode"] == "identify" and row["library"] == library.library_id
        assert len(row["hits"]) == 5 and row["hits"][0]["hqi"] >= row["hits"][1]["hqi"]
        assert row["verdict"] in (row["hits"][0]["name"], "no match") or row["verdict"].startswith("mixture of ")
    agree = sum(r["hits"][0]["name"] == f.parent.name for r, f in zip(rows, raw_files[::30]))
    assert agree >= len(files) - 1
    table = _cli("identify", "--library", str(library.path), "--format", "table", "--top", "3", files[0]).stdout
    assert table.splitlines()[0].split() == ["file", "verdict", "best", "next"]
    bad = tmp_path / "bad.csv"
    bad.write_text("not,a\nspectrum,x\n")
    r = _cli("identify", "--library", str(library.path), str(bad), files[0], check=False)
    assert r.returncode == 1 and r.stderr.count("error:") == 1 and "Traceback" not in r.stderr
    assert len(r.stdout.splitlines()) == 1
    r = _cli("identify", "--library", str(tmp_path / "nowhere"), files[0], check=False)
    assert r.returncode == 2 and "reference library" in r.stderr and "not found" in r.stderr


@pytest.mark.parametrize("name, entries", [("sers-pesticides", 6), ("microplastics", 11)])
def test_the_shipped_libraries_verify_and_carry_complete_cards(name, entries):
    lib = load_library(ROOT / "models" / "libraries" / name)
    card = lib.card
    assert len(lib.entry_names) == entries and lib.mixture is not None
    assert {"source", "licence", "attribution"} <= set(card["data"]) and card["description"]
    assert card["matching"]["preprocess"] == lib.preprocess.text and card["matching"]["chosen_by"]
    assert set(card["calibration"]) >= {"no_match_below", "top1", "top3", "false_match_absent", "protocol"}
    assert card["verification"]["false_fail"] is not None and card["verification"]["protocol"]
    assert card["mixture"]["measured"]["mixtures"] and card["mixture"]["threshold"] == lib.mixture.threshold
    assert card["id"] == lib.library_id and (ROOT / "models" / "recipes" / f"{name}-library.sh").is_file()


@pytest.mark.slow
def test_verify_command_passes_the_material_and_fails_the_others(raw_subset):
    lib = str(ROOT / "models" / "libraries" / "sers-pesticides")
    own = sorted((raw_subset / "Phosmet_present").glob("*10*"))
    other = sorted((raw_subset / "Oxamyl_present").glob("*10*"))
    rows = [json.loads(line) for line in
            _cli("verify", "--library", lib, "--expect", "Phosmet_present", *map(str, own + other)).stdout.splitlines()]
    assert [r["result"] for r in rows] == ["PASS"] * len(own) + ["FAIL"] * len(other)
    assert all(r["p_value"] >= 0.05 for r in rows[:len(own)]) and all(r["p_value"] < 0.05 for r in rows[len(own):])
    r = _cli("verify", "--library", lib, "--expect", "Glyphosate", str(own[0]), check=False)
    assert r.returncode == 2 and "has no entry 'Glyphosate'" in r.stderr and "Phosmet_present" in r.stderr
    r = _cli("verify", "--library", lib, "--expect", "Phosmet_present", "--alpha", "2", str(own[0]), check=False)
    assert r.returncode == 2 and "between 0 and 1" in r.stderr


@pytest.mark.slow
def test_verify_says_how_many_replicates_an_entry_needs(sers_subset, tmp_path):
    """An entry of three spectra is searchable, but verification names the count it has and needs."""
    keep = np.concatenate([np.flatnonzero(sers_subset.y == 0)[:3], np.flatnonzero(sers_subset.y != 0)])
    lib = build_library(sers_subset.subset(np.sort(keep)), tmp_path / "few", name="few", matching="snv")
    first = sers_subset.class_names[0]
    spectrum = Spectrum(sers_subset.axis.values, sers_subset.X[np.flatnonzero(sers_subset.y == 0)[5]])
    assert lib.search(spectrum).hits[0].name == first
    from device.inference.verification import TooFewReplicatesError

    with pytest.raises(TooFewReplicatesError, match="has 3 replicate spectra; verification needs at least 5"):
        lib.variation(first)
    np.savetxt(tmp_path / "s.csv", np.column_stack([spectrum.shift, spectrum.intensity]), delimiter=",")
    r = _cli("verify", "--library", str(lib.path), "--expect", first, str(tmp_path / "s.csv"), check=False)
    assert r.returncode == 2 and "needs at least 5" in r.stderr and "Traceback" not in r.stderr
