"""JCAMP-DX and SPC files: the real sample files against their documented values, errors, units, export.

The documented point counts, ranges and values are those of ``shared/datasets/formats/README.md``, where two
independent readers per format agreed on them. The comparison with the maintained readers themselves
(``jcamp``, ``spc-spectra``) is in ``test_formats_oracles.py``.
"""
from __future__ import annotations

import warnings

import numpy as np
import pytest
from conftest import DATASETS, _need

from device.cli import main
from device.errors import SpectrumFileError
from device.inference.readers import read_spectra
from device.inference.spectrum import Axis
from device.service.export import export
from device.service.record import Record, RecordStore
from firmware_bridge import errors as bridge_errors
from firmware_bridge.errors import SpectrumFileWarning
from firmware_bridge.jcamp import read_jcamp, write_jcamp
from firmware_bridge.spc import read_spc

pytestmark = pytest.mark.device  # needs only the device extra

FORMATS = DATASETS / "formats"

#: file: (points, first x, last x, smallest y, largest y), as documented.
JCAMP_FILES = {
    "tannic_acid.jdx": (1949, 100.595, 2854.713, 4.667, 300.889),
    "throws_error_raman_1000002.jdx": (512, 10.3909, 668.802, 34, 4227),
    "jtpolys.jdx": (1844, 447.484, 4002.284, 0.34285, 1.02282),
    "jtpolysd.jdx": (1844, 447.484, 4002.284, 0.34346, 1.02463),
    "sqzdupd1.jdx": (18669, 5000.0323, 499.955, 0, 1.505),
    "dupinc1.jdx": (440, 250, 469.5, 0.0769, 3.3747),
}
#: file: (spectra, points, first x, last x, smallest y, largest y), as documented (LabRam: y of the first two).
SPC_FILES = {
    "PST10_iR532_Probe_100_3000msx7.spc": (1, 3808, 175, 3982, 618, 63000),
    "PST_Reflex532_Z050_010_10000msx2.spc": (1, 2578, 3501.06, 100.265, 286, 37800),
    "PST_WITEcAlpha532_100x_075_10000ms_000_Spec.Data_1.spc": (1, 1600, -37.886, 3731.932, 1011, 1567),
    "raman_atacamit.spc": (1, 559, 117.78, 1050.0, 0.0766, 585.5),
    "Witec_timeseries3x_SPC_Data_1.spc": (3, 1024, 28.670, 3891.320, 620, 2863),
    "LabRam-1.spc": (18, 1023, 3722.269, 550.306, 678, 4238),
}


def _file(kind: str, name: str):
    return _need(FORMATS / kind / name)


def _documented(value: float):
    """``value`` as documented: to one unit of its last decimal."""
    decimals = len(repr(float(value)).partition(".")[2].rstrip("0"))
    return pytest.approx(value, abs=1.01 * 10.0 ** -decimals)


def _y_range(y, documented):
    """The documented y range, given to 3 or 4 significant figures."""
    lo, hi = documented
    assert y.min() == pytest.approx(lo, rel=5e-3, abs=5e-5) and y.max() == pytest.approx(hi, rel=5e-3)


@pytest.mark.parametrize("name", JCAMP_FILES)
def test_jcamp_files_read_as_documented(name):
    points, first, last, lo, hi = JCAMP_FILES[name]
    (s,) = read_jcamp(_file("jcamp", name).read_bytes(), name)
    assert s.x.size == s.y.size == points == int(float(s.labels["NPOINTS"]))
    assert (s.x[0], s.x[-1]) == (_documented(first), _documented(last))
    _y_range(s.y, (lo, hi))
    assert s.warnings == () or name == "jtpolysd.jdx"


def test_the_fix_and_difdup_test_disk_files_hold_the_same_integers():
    fix, = read_jcamp(_file("jcamp", "jtpolys.jdx").read_bytes())
    difdup, = read_jcamp(_file("jcamp", "jtpolysd.jdx").read_bytes())
    a = fix.y / float(fix.labels["YFACTOR"])
    b = difdup.y / float(difdup.labels["YFACTOR"])
    np.testing.assert_allclose(a, np.round(a), atol=1e-5)
    np.testing.assert_array_equal(np.round(a), np.round(b))
    np.testing.assert_allclose(fix.x, difdup.x, atol=1e-3)


def test_a_mistyped_firsty_is_a_warning_not_a_failure():
    s, = read_jcamp(_file("jcamp", "jtpolysd.jdx").read_bytes(), "jtpolysd.jdx")
    assert s.y[0] == pytest.approx(0.983376, abs=1e-6)
    assert len(s.warnings) == 1 and "first Y is 0.983376 but ##FIRSTY=0.981633" in s.warnings[0]


def test_a_raman_jcamp_file_with_a_wrong_firsty_warns_through_the_device_reader(tmp_path):
    original = _file("jcamp", "tannic_acid.jdx")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the original: no warning at all (negative control)
        (s,) = read_spectra(original)
    changed = tmp_path / "tannic.jdx"
    changed.write_bytes(original.read_bytes().replace(b"##FIRSTY=42.644", b"##FIRSTY=43.644"))
    with pytest.warns(SpectrumFileWarning, match=r"tannic.jdx: .*first Y is 42.644 but ##FIRSTY=43.644"):
        (t,) = read_spectra(changed)
    np.testing.assert_array_equal(s.intensity, t.intensity)


def test_one_byte_changed_fails_the_dif_y_check_naming_the_line():
    data = bytearray(_file("jcamp", "jtpolysd.jdx").read_bytes())
    lines = data.split(b"\r\n")
    assert lines[21].startswith(b"232D11726930") and lines[22].startswith(b"242D18228023")
    read_jcamp(bytes(data))  # unchanged: every Y-check passes
    at = data.index(b"M56289")  # a DIF difference on file line 22
    data[at + 1] = ord("7")
    with pytest.raises(bridge_errors.SpectrumFileError, match=r"f.jdx: line 23: DIF Y-check failed: the line starts "
                                                              r"with 418228023, but line 22 ends with 418248023"):
        read_jcamp(bytes(data), "f.jdx")


def test_a_dropped_value_is_found_by_the_next_line_x():
    data = _file("jcamp", "sqzdupd1.jdx").read_bytes()
    changed = data.replace(b"5000.03B1399TB1410", b"5000.03B1399B1410", 1)  # one DUP repeat less
    with pytest.raises(bridge_errors.SpectrumFileError, match=r"line 25: X is 4996.42 but point 15 of the axis"):
        read_jcamp(changed)


@pytest.mark.parametrize("edit, words", [
    ((b"##NPOINTS=  440", b"##NPOINTS=  441"), r"line 28: X is 370 but point 241 of the axis"),
    ((b"2620G045", b"2620G0 45"), r"line 20: DIF Y-check failed: the line starts with 70, but line 19 ends with 7045"),
    ((b"2620G045", b"2630G045"), r"line 20: X is 263 but point 25 of the axis .* is at 262"),
    ((b"\r\n4600A5820", b"\r\n##END=\r\n4600A5820"), r"the table at line 18 holds 421 points, but ##NPOINTS=440"),
    ((b"##XYDATA=  (X++(Y..Y))", b"##XYDATA=  (R++(I..I))"), r"line 18: .*a table form this reader does not"),
    ((b"##END=", b""), r"the block at line 1 has no ##END=; the file is truncated"),
    ((b"l68k60", b"l68k6#"), r"line 19: character '#' at column 15"),
    ((b"##FIRSTX=   250", b"##FIRSTX=   abc"), r"##FIRSTX=abc is not a number"),
])
def test_malformed_jcamp_names_the_problem(edit, words):
    data = _file("jcamp", "dupinc1.jdx").read_bytes()
    assert edit[0] in data
    with pytest.raises(bridge_errors.SpectrumFileError, match=words):
        read_jcamp(data.replace(*edit), "dupinc1.jdx")


@pytest.mark.parametrize("name", SPC_FILES)
def test_spc_files_read_as_documented(name):
    n, points, first, last, lo, hi = SPC_FILES[name]
    f = read_spc(_file("spc", name).read_bytes(), name)
    assert f.y.shape == (n, points) and f.x.shape == (points,)
    assert (f.x[0], f.x[-1]) == (_documented(first), _documented(last))
    _y_range(f.y[:2], (lo, hi))


def test_spc_variants_as_documented():
    atacamite = read_spc(_file("spc", "raman_atacamit.spc").read_bytes())
    assert atacamite.fxtype == 1 and np.diff(atacamite.x) == pytest.approx(1.6706, abs=1e-4)
    witec = read_spc(_file("spc", "PST_WITEcAlpha532_100x_075_10000ms_000_Spec.Data_1.spc").read_bytes())
    steps = np.diff(witec.x)
    assert (steps.min(), steps.max()) == (pytest.approx(1.85, abs=5e-3), pytest.approx(2.99, abs=5e-3))
    labram = read_spc(_file("spc", "LabRam-1.spc").read_bytes())
    np.testing.assert_array_equal(labram.z[:5], [-40, -30, -20, -18, -16])
    assert labram.z[-1] == 9
    series = read_spc(_file("spc", "Witec_timeseries3x_SPC_Data_1.spc").read_bytes())
    np.testing.assert_array_equal(series.z, [0, 1, 2])
    reflex = read_spc(_file("spc", "PST_Reflex532_Z050_010_10000msx2.spc").read_bytes())
    assert reflex.log["Scan_type"] == "Continuous grating scan"


def test_the_invia_spc_is_its_own_text_export_interpolated():
    spc = read_spc(_file("spc", "PST_Reflex532_Z050_010_10000msx2.spc").read_bytes())
    (text,) = read_spectra(_file("spc", "PST_Reflex532_Z050_010_10000msx2.txt"))
    x, y = spc.x[::-1], spc.y[0][::-1]
    difference = np.abs(np.interp(x, text.shift, text.intensity) - y)
    assert difference.max() < 13 and difference.max() < 4e-4 * y.max() and np.median(difference) < 0.05
    shifted = np.abs(np.interp(x + 2, text.shift, text.intensity) - y)  # negative control: 2 cm-1 off
    assert shifted.max() > 10 * difference.max()


def test_multi_spectrum_spc_gives_one_spectrum_per_subfile():
    spectra = read_spectra(_file("spc", "Witec_timeseries3x_SPC_Data_1.spc"))
    assert [(s.meta["index"], s.meta["z"]) for s in spectra] == [(0, 0.0), (1, 1.0), (2, 2.0)]
    assert all(np.all(np.diff(s.shift) > 0) for s in spectra)
    labram = read_spectra(_file("spc", "LabRam-1.spc"))  # descending X: turned increasing
    assert len(labram) == 18 and labram[0].shift[0] == _documented(550.306)


def _spc_with(name: str, **bytes_at) -> bytes:
    data = bytearray(_file("spc", name).read_bytes())
    for offset, value in bytes_at.items():
        data[int(offset[1:])] = value
    return bytes(data)


@pytest.mark.parametrize("data, words", [
    (lambda: _file("spc", "PST10_iR532_Probe_100_3000msx7.spc").read_bytes()[:8000],
     r"byte 544: subfile 0's 3808 Y values needs 15232 bytes, but the file ends at byte 8000; the file is truncated"),
    (lambda: _file("spc", "LabRam-1.spc").read_bytes()[:300], r"byte 0: the SPC header needs 512 bytes"),
    (lambda: _file("spc", "LabRam-1.spc").read_bytes()[:4620], r"byte 4604: subfile 0's header needs 32 bytes"),
    (lambda: _spc_with("raman_atacamit.spc", b1=0x4D), r"byte 1: an old-format SPC file \(version 0x4D\)"),
    (lambda: _spc_with("raman_atacamit.spc", b1=0x4C), r"byte 1: a big-endian SPC file"),
    (lambda: _spc_with("raman_atacamit.spc", b1=0x20), r"byte 1: version 0x20 is not that of an SPC file"),
    (lambda: _spc_with("raman_atacamit.spc", b0=0x40), r"byte 0: each subfile has its own X array \(flag TXYXYS\)"),
    (lambda: _spc_with("raman_atacamit.spc", b7=0x7F), r"byte 4: fnpts = .* points is not from 1 to"),
    (lambda: _spc_with("raman_atacamit.spc", b251=0x80), r"byte 248: the log block's offset flogoff = -2147483648 is "
                                                         r"outside the file \(2780 bytes\)"),
], ids=["truncated-data", "truncated-header", "truncated-subfile", "old-format", "big-endian", "not-spc", "txyxys",
        "fnpts", "log-offset"])
def test_malformed_spc_names_the_byte_offset(data, words):
    with pytest.raises(bridge_errors.SpectrumFileError, match=words):
        read_spc(data(), "f.spc")


def test_axes_the_device_cannot_use_are_refused(tmp_path):
    cases = {
        "nm.spc": (_spc_with("raman_atacamit.spc", b28=3), r"byte 28: the X axis is nanometers \(fxtype\)"),
        "uv.spc": (_spc_with("raman_atacamit.spc", b2=7), r"byte 2: the file holds a UV-VIS spectrum \(fexper 7\)"),
        "ir.jdx": (_file("jcamp", "jtpolys.jdx").read_bytes(),
                   r"is ##DATA TYPE=INFRARED SPECTRUM, not a Raman spectrum"),
        "nm.jdx": (_file("jcamp", "tannic_acid.jdx").read_bytes().replace(b"##XUNITS=1/CM", b"##XUNITS=NANOMETERS"),
                   r"has its X axis in NANOMETERS \(##XUNITS\); the device reads Raman shift in cm-1"),
    }
    for name, (data, words) in cases.items():
        (tmp_path / name).write_bytes(data)
        with pytest.raises(SpectrumFileError, match=f"{name}: .*{words}"):
            read_spectra(tmp_path / name)
    (tmp_path / "raman.spc").write_bytes(_spc_with("raman_atacamit.spc", b2=11))  # control: a Raman experiment
    assert len(read_spectra(tmp_path / "raman.spc")[0]) == 559


def test_jcamp_is_found_by_its_content_whatever_its_name(tmp_path):
    (tmp_path / "tannic.txt").write_bytes(_file("jcamp", "tannic_acid.jdx").read_bytes())
    (s,) = read_spectra(tmp_path / "tannic.txt")
    assert len(s) == 1949 and s.meta["title"] == "tannic acid"


def _records(n):
    shift = np.linspace(400, 2100, 300)
    return [Record(trigger="button", device={}, shift=shift, intensity=np.sin(shift / (40 + i)) * 1e3 + i,
                   verdict="A" if i % 2 else "B", confidence=0.9, time=1_790_000_000.0 + 60 * i, id=i + 1)
            for i in range(n)]


@pytest.mark.parametrize("n", [1, 4])
def test_jcamp_export_reads_back_exactly(tmp_path, n):
    axis = Axis(500, 2000, 751)
    out = tmp_path / "x.jdx"
    assert export(_records(n), out, axis, "jcamp") == n
    text = out.read_text()
    assert text.startswith("##TITLE=") and ("##DATA TYPE=LINK" in text) == (n > 1)
    assert text.count("##BLOCK_ID=") == (n if n > 1 else 0)
    spectra = read_spectra(out)
    npz = tmp_path / "x.npz"
    export(_records(n), npz, axis, "npz")
    with np.load(npz) as z:
        expected = z["X"]
    assert [s.meta["title"] for s in spectra] == ["B", "A", "B", "A"][:n]
    for s, row in zip(spectra, expected):
        np.testing.assert_array_equal(s.shift, axis.values)
        np.testing.assert_array_equal(s.intensity, row)
    assert not np.array_equal(expected[0], expected[-1]) or n == 1  # the blocks differ: their order is checked


def test_write_jcamp_keeps_records_and_order():
    x = np.array([100.0, 200.5, 300.25])
    data = write_jcamp([(x, [1.0, 2.0, 3.0], {"TITLE": "one", "$RECORD ID": 7}), (x, [4.0, 5.0, 6.5], {})], "two")
    first, second = read_jcamp(data)
    assert first.labels["TITLE"] == "one" and first.labels["$RECORDID"] == "7" and second.labels["TITLE"] == "two"
    np.testing.assert_array_equal(second.y, [4.0, 5.0, 6.5])
    assert first.line == 5 and second.line > first.line


def test_fit_reads_jcamp_and_spc_in_class_folders(tmp_path):
    from trainer.data.dataset import load_dataset

    for cls, files in {"A": [("jcamp", "tannic_acid.jdx"), ("spc", "PST10_iR532_Probe_100_3000msx7.spc")],
                       "B": [("spc", "Witec_timeseries3x_SPC_Data_1.spc")]}.items():
        (tmp_path / cls).mkdir()
        for kind, name in files:
            (tmp_path / cls / name).write_bytes(_file(kind, name).read_bytes())
    data = load_dataset(tmp_path)
    assert data.class_names == ("A", "B") and list(data.y) == [0, 0, 1, 1, 1]
    assert data.axis.start >= 175 and data.axis.stop <= 2854.713


def test_classify_reads_jcamp_and_spc_and_says_when_the_axis_does_not_fit(shipped_bundle, capsys):
    files = [_file("jcamp", "tannic_acid.jdx"), _file("spc", "Witec_timeseries3x_SPC_Data_1.spc"),
             _file("jcamp", "throws_error_raman_1000002.jdx"), _file("jcamp", "jtpolys.jdx")]
    status = main(["classify", "--model", str(shipped_bundle.path), *map(str, files)])
    out, err = capsys.readouterr()
    assert status == 1
    assert out.count('"file"') == 4  # tannic acid, and the three spectra of the series
    assert '"index": 2' in out
    assert ("throws_error_raman_1000002.jdx: the spectrum covers 10.3909-668.802 cm-1 but the model needs "
            "501-1999 cm-1") in err
    assert "jtpolys.jdx: the block at line 1 is ##DATA TYPE=INFRARED SPECTRUM, not a Raman spectrum" in err
    assert "2 of 4 file(s) could not be classified" in err


def test_export_command_writes_jcamp(tmp_path, shipped_bundle, capsys):
    store = RecordStore(tmp_path / "r.db")
    for r in _records(3):
        r.id = None
        store.add(r)
    store.close()
    out = tmp_path / "e.jdx"
    assert main(["export", "--db", str(tmp_path / "r.db"), "--model", str(shipped_bundle.path), "--format", "jcamp",
                 "--out", str(out)]) == 0
    assert "wrote 3 spectra" in capsys.readouterr().out
    assert [len(s) for s in read_spectra(out)] == [shipped_bundle.axis.points] * 3
