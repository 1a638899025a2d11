"""The JCAMP-DX and SPC readers against the maintained readers, ``jcamp`` and ``spc-spectra``, on the real files.

They are test dependencies only: the device reads these formats with NumPy alone
(``firmware_bridge.jcamp``, ``firmware_bridge.spc``).
"""
from __future__ import annotations

import jcamp
import numpy as np
import pytest
import spc_spectra
from test_formats import JCAMP_FILES, SPC_FILES, _file, _records

from device.inference.spectrum import Axis
from device.service.export import export
from firmware_bridge.jcamp import read_jcamp
from firmware_bridge.spc import read_spc

#: Files the jcamp package cannot read (its 1.3.2 crashes on them): the FIX form with a $$ comment on YFACTOR,
#: and SQZ right after the X value.
JCAMP_CRASHES = ("jtpolys.jdx", "sqzdupd1.jdx")


@pytest.mark.parametrize("name", [n for n in JCAMP_FILES if n not in JCAMP_CRASHES])
def test_jcamp_agrees_with_the_jcamp_package(name):
    path = _file("jcamp", name)
    theirs = jcamp.readfile(str(path))
    (ours,) = read_jcamp(path.read_bytes())
    np.testing.assert_allclose(ours.x, theirs["x"], rtol=1e-12, atol=0)
    np.testing.assert_allclose(ours.y, theirs["y"], rtol=1e-12, atol=0)


@pytest.mark.parametrize("name", JCAMP_CRASHES)
def test_files_the_jcamp_package_cannot_read_are_read(name):
    path = _file("jcamp", name)
    with pytest.raises((IndexError, TypeError)):  # a regression case: if it starts to read them, compare above
        jcamp.readfile(str(path))
    (ours,) = read_jcamp(path.read_bytes())
    assert ours.x.size == JCAMP_FILES[name][0]


@pytest.mark.parametrize("name", SPC_FILES)
def test_spc_agrees_with_spc_spectra(name, capsys):
    path = _file("spc", name)
    theirs = spc_spectra.File(str(path))
    capsys.readouterr()  # spc-spectra prints the file's layout
    ours = read_spc(path.read_bytes())
    np.testing.assert_array_equal(ours.x, theirs.x)
    np.testing.assert_array_equal(ours.y, np.array([sub.y for sub in theirs.sub]))


@pytest.mark.parametrize("n", [1, 3])
def test_jcamp_export_reads_in_the_jcamp_package(tmp_path, n):
    axis = Axis(500, 2000, 751)
    out, npz = tmp_path / "x.jdx", tmp_path / "x.npz"
    export(_records(n), out, axis, "jcamp")
    export(_records(n), npz, axis, "npz")
    theirs = jcamp.readfile(str(out))
    blocks = theirs["children"] if n > 1 else [theirs]
    assert len(blocks) == n
    with np.load(npz) as z:
        for block, row in zip(blocks, z["X"]):
            assert block["data type"] == "RAMAN SPECTRUM" and block["xunits"] == "1/CM"
            np.testing.assert_array_equal(block["x"], axis.values)
            np.testing.assert_array_equal(block["y"], row)
    assert [b["title"] for b in blocks] == ["B", "A", "B"][:n]
