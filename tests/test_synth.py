"""The synthetic set respects the facts the paper gives."""
import numpy as np
import pytest
import scipy.signal

from trainer.data.dataset import load_dataset
from trainer.data.synth import AXIS, BANDS, CLASSES, CONCENTRATIONS_UM, MIXTURES_UM, _coverages, generate, write


@pytest.fixture(scope="module")
def spectra():
    return generate(seed=3)


def test_axis_and_counts(spectra):
    assert (AXIS.start, AXIS.stop, AXIS.points, AXIS.step) == (440.0, 1800.0, 2721, 0.5)
    assert [sum(s.label == c for s in spectra) for c in CLASSES] == [36, 36, 29, 15]
    assert all(s.intensity.shape == (2721,) and np.isfinite(s.intensity).all() for s in spectra)
    assert len(generate((2, 3, 4, 5), seed=1)) == 14


def test_design_follows_the_paper(spectra):
    edif = sorted(s.edifenphos_um for s in spectra if s.label == "edifenphos")
    assert edif == sorted(list(CONCENTRATIONS_UM) * 3)  # 12 concentrations x 3 repetitions
    mixes = {(s.edifenphos_um, s.parathion_um) for s in spectra if s.label == "mixture"}
    assert mixes == set(MIXTURES_UM) and (0.6, 1.0) in mixes and (1.0, 0.6) in mixes
    assert {s.power_mw for s in spectra} == {50, 100}
    assert all(s.edifenphos_um == s.parathion_um == 0 for s in spectra if s.label == "control")


@pytest.mark.slow
def test_deterministic_for_a_seed(tmp_path):
    a = write(tmp_path / "a", seed=5)
    b = write(tmp_path / "b", seed=5)
    c = write(tmp_path / "c", seed=6)
    assert [p.read_bytes() for p in a] == [p.read_bytes() for p in b]
    assert [p.read_bytes() for p in a] != [p.read_bytes() for p in c]


def test_intensity_saturates_with_concentration():
    cov = [_coverages(c, 0)[0] for c in sorted(CONCENTRATIONS_UM)]
    assert np.all(np.diff(cov) > 0)
    assert cov[-1] / cov[0] < 0.1 * (10 / 0.01)  # far from linear over three decades
    assert cov[-1] < 1


@pytest.mark.parametrize("label, strongest", [("edifenphos", 1080), ("ethyl_parathion", 1265)])
def test_bands_at_the_papers_positions(spectra, label, strongest):
    top = [s.intensity for s in spectra if s.label == label and max(s.edifenphos_um, s.parathion_um) >= 4]
    y = np.mean(top, axis=0)
    baseline = scipy.signal.savgol_filter(y, 301, 2)  # the fluorescence background is broad
    peaks, props = scipy.signal.find_peaks(y - baseline, prominence=0.1 * np.ptp(y - baseline))
    found = AXIS.values[peaks]
    for pos, _, _ in BANDS[label]:
        assert np.min(np.abs(found - pos)) <= 2.0, (pos, found)
    assert abs(found[np.argmax(props["prominences"])] - strongest) <= 2.0


def test_files_are_labelled_synthetic_and_load(tmp_path):
    files = write(tmp_path, counts=(3, 3, 3, 2), seed=0)
    assert all(p.read_text().startswith("# SYNTHETIC") for p in files)
    assert "SYNTHETIC" in (tmp_path / "README.txt").read_text()
    assert len((tmp_path / "metadata.csv").read_text().splitlines()) == 12
    ds = load_dataset(tmp_path)
    assert ds.X.shape == (11, 2721) and set(ds.class_names) == set(CLASSES) and str(ds.axis) == "440:1800:2721"
