"""Fuzz tests of the spectrum-file readers: random, mutated and type-confused files.

The reader is firmware_bridge.spectrum_files (with firmware_bridge.jcamp and firmware_bridge.spc for JCAMP-DX
and SPC); device.inference.readers builds spectra on it.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from conftest import DATASETS
from fuzzing import DTYPES, MUTATIONS, NO_UNPICKLING, SHIPPED, WATCH, Payload, fuzz_settings, mutate, npz_bytes, zip_npz
from hypothesis import example, given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from device.errors import SpectrumFileError
from device.inference.readers import read_spectra
from device.inference.spectrum import Spectrum
from firmware_bridge import errors as bridge_errors
from firmware_bridge import spectrum_files
from firmware_bridge.jcamp import read_jcamp, write_jcamp
from firmware_bridge.spc import read_spc
from firmware_bridge.spectrum_files import parse_two_columns

pytestmark = pytest.mark.device  # needs only the device extra

EXAMPLE_CSV = SHIPPED / "examples" / "No_pest_present" / "Phosmet_not_spinach (145).CSV"


def _spectra_or_error(path: Path):
    with WATCH.only(NO_UNPICKLING):
        try:
            spectra = read_spectra(path)
        except SpectrumFileError:
            return None
    assert spectra and all(isinstance(s, Spectrum) and len(s) >= 3 for s in spectra)
    return spectra


VALID_NPZ = npz_bytes(X=np.random.default_rng(0).normal(size=(2, 50)), wavenumber=np.linspace(400, 1800, 50))
SUFFIXES = [".csv", ".CSV", ".txt", ".dat", ".npz", ".jdx", ".spc"]
#: Real JCAMP-DX files of every compressed form (DIFDUP, SQZ+DUP cut to its first 3 kB of data, DIF+DUP),
#: and SPC files of every layout read (even X with integer Y, TXVALS, TMULTI with a log block).
JCAMP_SAMPLES = ["jtpolysd.jdx", "dupinc1.jdx", "tannic_acid.jdx"]
SPC_SAMPLES = ["raman_atacamit.spc", "PST_WITEcAlpha532_100x_075_10000ms_000_Spec.Data_1.spc",
               "Witec_timeseries3x_SPC_Data_1.spc", "PST_Reflex532_Z050_010_10000msx2.spc"]


def _sample(kind: str, name: str) -> bytes:
    path = DATASETS / "formats" / kind / name
    if not path.exists():
        pytest.skip(f"sample file not found at {path}; set RAMAN_EDGE_DATASETS to the datasets folder")
    return path.read_bytes()


@fuzz_settings(300)
@given(st.one_of(st.binary(max_size=400),
                 st.text(alphabet="0123456789.,;\t \n\r#eE+-naif\u00e9x", max_size=400).map(str.encode)))
def test_parse_two_columns_random_bytes(data):
    try:
        x, y = parse_two_columns(data, "fuzz.csv")
    except bridge_errors.SpectrumFileError:
        return
    assert x.dtype == y.dtype == np.float64 and x.shape == y.shape and x.ndim == 1 and x.size >= 1


@fuzz_settings(150)
@given(st.binary(max_size=400), st.sampled_from(SUFFIXES))
def test_read_spectra_random_bytes(tmp_path, data, suffix):
    path = tmp_path / f"fuzz{suffix}"
    path.write_bytes(data)
    _spectra_or_error(path)


@fuzz_settings(150)
@given(st.sampled_from(["csv", "npz"]), MUTATIONS)
@pytest.mark.slow
def test_read_spectra_mutated_files(tmp_path, kind, ops):
    path = tmp_path / f"fuzz.{kind}"
    path.write_bytes(mutate(EXAMPLE_CSV.read_bytes() if kind == "csv" else VALID_NPZ, ops))
    _spectra_or_error(path)


@fuzz_settings(150)
@given(hnp.arrays(DTYPES, hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=6)),
       hnp.arrays(DTYPES, hnp.array_shapes(min_dims=0, max_dims=2, min_side=0, max_side=6)),
       st.booleans())
@pytest.mark.slow
def test_read_spectra_npz_type_confusion(tmp_path, X, wavenumber, both):
    path = tmp_path / "fuzz.npz"
    path.write_bytes(npz_bytes(X=X, wavenumber=wavenumber) if both else npz_bytes(X=X))
    spectra = _spectra_or_error(path)
    if spectra is not None:
        assert X.dtype.kind in "iuf" and wavenumber.dtype.kind in "iuf"


@fuzz_settings(150)
@given(st.integers(3, 60).flatmap(lambda n: st.tuples(
    st.lists(st.floats(-1e6, 1e6) | st.integers(-10**6, 10**6).map(float), min_size=n, max_size=n),
    st.lists(st.floats(-1e12, 1e12) | st.integers(0, 10**5).map(float), min_size=n, max_size=n))),
    st.sampled_from([",", ";", "\t", " "]), st.booleans(), st.sampled_from(["{!r}", "{:g}", "{:.6e}"]),
    st.booleans())
@pytest.mark.slow
@example(([500.0, 500.5, 501.0], [1.0, 2.0, 3.0]), ";", True, "{:g}", False)  # "500;1" then "500,5;2"
def test_two_column_text_round_trip(columns, sep, decimal_comma, number_format, header):
    decimal_comma &= sep in ";\t"
    text = "# exported\nRaman shift" + sep + "counts\n" if header else ""
    for a, b in zip(*columns):
        a, b = (number_format.format(v).replace(".", "," if decimal_comma else ".") for v in (a, b))
        text += f"{a}{sep}{b}\n"
    x, y = parse_two_columns(text.encode(), "round-trip.csv")
    rtol = 0 if number_format == "{!r}" else 1e-5
    np.testing.assert_allclose(x, columns[0], rtol=rtol)
    np.testing.assert_allclose(y, columns[1], rtol=rtol)


@fuzz_settings(300)
@given(st.sampled_from(["(X++(Y..Y))", "(XY..XY)"]),
       st.text(alphabet="0123456789.,; \n+-eE?@ABIabiJKRjkr%STZs$#=", max_size=300))
def test_read_jcamp_random_tables(form, table):
    data = f"##TITLE=fuzz\n##FIRSTX=100\n##LASTX=200\n##NPOINTS=11\n##XYDATA={form}\n{table}\n##END=\n"
    try:
        spectra = read_jcamp(data.encode(), "fuzz.jdx")
    except bridge_errors.SpectrumFileError:
        return
    for s in spectra:
        assert s.x.dtype == s.y.dtype == np.float64 and s.x.shape == s.y.shape and s.x.ndim == 1


@fuzz_settings(150)
@given(st.sampled_from(JCAMP_SAMPLES), MUTATIONS)
def test_read_jcamp_mutated_files(name, ops):
    data = _sample("jcamp", name)
    try:
        spectra = read_jcamp(mutate(data, ops), name)
    except bridge_errors.SpectrumFileError:
        return
    assert spectra and all(s.x.shape == s.y.shape for s in spectra)


@fuzz_settings(150)
@given(st.sampled_from(SPC_SAMPLES), MUTATIONS)
def test_read_spc_mutated_files(name, ops):
    data = _sample("spc", name)
    try:
        f = read_spc(mutate(data, ops), name)
    except bridge_errors.SpectrumFileError:
        return
    assert f.y.ndim == 2 and f.y.shape[1] == f.x.size and f.z.size == f.y.shape[0]


@fuzz_settings(150)
@given(st.binary(min_size=0, max_size=2000), st.sampled_from([0x00, 0x80, 0x94, 0x95, 0x05]))
def test_read_spc_random_bytes_behind_a_header_mark(data, flags):
    try:
        f = read_spc(bytes([flags, 0x4B]) + data, "fuzz.spc")
    except bridge_errors.SpectrumFileError:
        return
    assert np.all(np.isfinite(f.y)) and np.all(np.isfinite(f.x))


@fuzz_settings(100)
@given(st.sampled_from(JCAMP_SAMPLES + SPC_SAMPLES), MUTATIONS)
@pytest.mark.slow
def test_read_spectra_mutated_jcamp_and_spc(tmp_path, name, ops):
    kind = "spc" if name.endswith(".spc") else "jcamp"
    path = tmp_path / name
    path.write_bytes(mutate(_sample(kind, name), ops))
    _spectra_or_error(path)


@fuzz_settings(150)
@given(st.lists(st.integers(3, 40).flatmap(lambda n: st.tuples(
    st.lists(st.floats(-1e6, 1e6), min_size=n, max_size=n), st.lists(st.floats(-1e300, 1e300), min_size=n,
                                                                      max_size=n))), min_size=1, max_size=3))
def test_jcamp_write_read_round_trip(blocks):
    data = write_jcamp([(x, y, {}) for x, y in blocks], "round trip")
    spectra = read_jcamp(data, "round-trip.jdx")
    assert len(spectra) == len(blocks)
    for s, (x, y) in zip(spectra, blocks):
        np.testing.assert_array_equal(s.x, x)
        np.testing.assert_array_equal(s.y, y)


@pytest.mark.parametrize("key", ["X", "wavenumber"])
def test_npz_object_arrays_are_never_unpickled(tmp_path, key):
    arrays = {"X": np.ones(5), "wavenumber": np.arange(5.0)}
    arrays[key] = np.array([Payload()] * 5, dtype=object)
    path = tmp_path / "pickle.npz"
    path.write_bytes(npz_bytes(**arrays))
    with WATCH.only(NO_UNPICKLING), pytest.raises(SpectrumFileError, match="not a readable .npz"):
        read_spectra(path)


@pytest.mark.parametrize("arrays, words", [
    ({"X": np.ones(5, complex), "wavenumber": np.arange(5.0)}, "complex128 values"),
    ({"X": np.ones((0, 5)), "wavenumber": np.arange(5.0)}, "holds no spectra"),
    ({"X": np.ones((400_000, 3), np.uint8), "wavenumber": np.arange(3.0)}, "split the file"),
])
def test_npz_regressions(tmp_path, arrays, words):
    path = tmp_path / "bad.npz"
    path.write_bytes(npz_bytes(**arrays))
    with pytest.raises(SpectrumFileError, match=words):
        read_spectra(path)


def test_npz_that_unpacks_too_large_is_refused_unread(tmp_path, monkeypatch):
    monkeypatch.setattr(spectrum_files, "MAX_FILE_BYTES", 1 << 20)
    path = tmp_path / "bomb.npz"
    path.write_bytes(zip_npz({"X": np.zeros(1 << 18), "wavenumber": np.arange(1 << 18, dtype=float)}))
    assert path.stat().st_size < 1 << 20
    with pytest.raises(SpectrumFileError, match="unpack to"):
        read_spectra(path)


def test_npz_entry_without_npy_header_is_refused(tmp_path):  # AttributeError before the fix
    path = tmp_path / "raw.npz"
    path.write_bytes(zip_npz({"wavenumber": np.arange(5.0)}, {"X": b"1,2,3,4,5"}))
    with pytest.raises(SpectrumFileError, match="'X' is not a NumPy array"):
        read_spectra(path)


def test_text_larger_than_its_limit_is_refused():
    with pytest.raises(bridge_errors.SpectrumFileError, match="too large for a text spectrum"):
        parse_two_columns(b"1 2\n" * (spectrum_files.MAX_TEXT_BYTES // 4 + 1), "big.csv")
