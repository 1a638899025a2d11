"""Spectrum files: the shared reader of firmware_bridge.spectrum_files and the device's spectra of it."""
import codecs

import numpy as np
import pytest

from device.errors import SpectrumFileError
from device.inference.readers import read_spectra
from firmware_bridge import errors as bridge_errors
from firmware_bridge.spectrum_files import parse_two_columns

pytestmark = pytest.mark.device  # needs only the device extra


def test_reads_real_instrument_csv(raw_files):
    s = read_spectra(raw_files[0])[0]
    ref = np.loadtxt(raw_files[0], delimiter=",")
    np.testing.assert_array_equal(s.shift, ref[:, 0])
    np.testing.assert_array_equal(s.intensity, ref[:, 1])
    assert s.meta["source"] == str(raw_files[0])


@pytest.mark.parametrize("text", [
    "500.0,1.5\n501.0,2.5\n502.0,3.5\n",
    "shift,intensity\n500.0,1.5\n501.0,2.5\n502.0,3.5\n",
    "# exported 2026\nRaman Shift (cm-1);Counts\n500,0;1,5\n501,0;2,5\n502,0;3,5\n",
    "500.0\t1.5\n501.0\t2.5\n502.0\t3.5\n",
    "500.0   1.5\n  501.0 2.5  \n\n502.0 3.5",
    "5.000e+002,1.5e0\r\n5.010e+002,2.5E+00\r\n5.020e+002,0.35e1\r\n",
    "500.0,1.5,\n501.0,2.5,\n502.0,3.5,\n",
    "\ufeff500.0;1.5\n501.0;2.5\n502.0;3.5\n",
])
def test_text_variants(text):
    x, y = parse_two_columns(text.encode("utf-8"))
    np.testing.assert_allclose(x, [500, 501, 502])
    np.testing.assert_allclose(y, [1.5, 2.5, 3.5])


@pytest.mark.parametrize("text, words", [
    ("", "empty file"),
    ("# only a comment\n", "empty file"),
    ("shift,intensity\n", "no line holds two numbers"),
    ("500,1\n501\n", "line 2 is not two numbers"),
    ("500,1,2\n501,1,2\n", "no line holds two numbers"),
    ("500,1\n501,abc\n502,3\n", "line 2"),
    ("500,1\x00\n", "binary data"),
])
def test_text_errors_name_the_problem(text, words):
    with pytest.raises(bridge_errors.SpectrumFileError, match=words):
        parse_two_columns(text.encode("latin-1"), "f.csv")


def test_invalid_spectrum_in_file_names_file(tmp_path):
    f = tmp_path / "nan.csv"
    f.write_text("500,1\n501,nan\n502,3\n")
    with pytest.raises(SpectrumFileError, match="nan.csv: .*non-finite"):
        read_spectra(f)
    g = tmp_path / "dup.csv"
    g.write_text("500,1\n500,2\n502,3\n")
    with pytest.raises(SpectrumFileError, match="dup.csv: .*strictly"):
        read_spectra(g)


def test_missing_file_and_directory(tmp_path):
    with pytest.raises(SpectrumFileError, match="cannot open"):
        read_spectra(tmp_path / "absent.csv")
    with pytest.raises(SpectrumFileError, match="is a directory"):
        read_spectra(tmp_path)


def test_npz_one_and_many(tmp_path):
    wn = np.linspace(500, 600, 50)
    np.savez(tmp_path / "one.npz", X=np.arange(50.0), wavenumber=wn)
    np.savez(tmp_path / "many.npz", X=np.ones((3, 50)), wavenumber=wn)
    assert len(read_spectra(tmp_path / "one.npz")) == 1
    many = read_spectra(tmp_path / "many.npz")
    assert [s.meta["index"] for s in many] == [0, 1, 2]


def test_npz_errors(tmp_path):
    np.savez(tmp_path / "keys.npz", Y=np.ones(5))
    with pytest.raises(SpectrumFileError, match="needs arrays 'X' and 'wavenumber'"):
        read_spectra(tmp_path / "keys.npz")
    np.savez(tmp_path / "obj.npz", X=np.array([{"a": 1}], dtype=object), wavenumber=np.ones(1))
    with pytest.raises(SpectrumFileError, match="not a readable .npz"):
        read_spectra(tmp_path / "obj.npz")
    (tmp_path / "junk.npz").write_bytes(b"PK\x03\x04 not really a zip")
    with pytest.raises(SpectrumFileError, match="not a readable .npz"):
        read_spectra(tmp_path / "junk.npz")
    np.savez(tmp_path / "cube.npz", X=np.ones((2, 2, 5)), wavenumber=np.arange(5.0))
    with pytest.raises(SpectrumFileError, match="shape"):
        read_spectra(tmp_path / "cube.npz")


TWO_COLUMNS = "shift,intensity\n500.0,1.5\n501.0,2.5\n502.0,3.5\n"


@pytest.mark.parametrize("data", [
    TWO_COLUMNS.encode("utf-16"),  # with the machine's byte-order mark, as Windows "Unicode" saves
    codecs.BOM_UTF16_LE + TWO_COLUMNS.encode("utf-16-le"),
    codecs.BOM_UTF16_BE + TWO_COLUMNS.encode("utf-16-be"),
    TWO_COLUMNS.encode("utf-32"),
    codecs.BOM_UTF8 + TWO_COLUMNS.encode("utf-8"),
], ids=["utf-16", "utf-16-le", "utf-16-be", "utf-32", "utf-8-bom"])
def test_unicode_text_with_a_byte_order_mark(data):
    x, y = parse_two_columns(data, "u.csv")
    np.testing.assert_allclose(x, [500, 501, 502])
    np.testing.assert_allclose(y, [1.5, 2.5, 3.5])


def test_utf16_without_a_byte_order_mark_names_the_encoding():
    for data in (TWO_COLUMNS.encode("utf-16-le"), TWO_COLUMNS.encode("utf-16-be")):
        with pytest.raises(bridge_errors.SpectrumFileError,
                           match="UTF-16 text without a byte-order mark; save it as UTF-8"):
            parse_two_columns(data, "u.csv")
    with pytest.raises(bridge_errors.SpectrumFileError, match="binary data"):  # other NULs are still binary data
        parse_two_columns(b"500,1\x00\x01\x02\n501,2\n", "b.csv")


def test_a_utf16_instrument_file_reads_as_its_utf8_original(raw_files, tmp_path):
    original = raw_files[0]
    saved = tmp_path / "unicode.csv"
    saved.write_bytes(original.read_bytes().decode("latin-1").encode("utf-16"))
    assert saved.read_bytes()[:2] in (codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)
    (a,), (b,) = read_spectra(original), read_spectra(saved)
    np.testing.assert_array_equal(a.shift, b.shift)
    np.testing.assert_array_equal(a.intensity, b.intensity)
