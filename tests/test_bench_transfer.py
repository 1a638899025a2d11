"""The transfer benchmark: its quick run through the real simulators and drivers, and what its report says."""
import re
import sys

import pytest

from tests.conftest import DATASETS, ROOT
from tests.test_bench_identify import tables

sys.path.insert(0, str(ROOT / "benchmarks"))

import bench_transfer as bt  # noqa: E402

PESTICIDES, MICROPLASTICS = bt.SETS
SHARE = re.compile(r"^(\d+\.\d\d) %$")

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def quick_report(tmp_path_factory):
    """A quick run on the microplastics set (the smaller one), written to a report."""
    path = DATASETS / MICROPLASTICS.data
    if not path.exists():
        pytest.skip(f"real data set not found at {path}; set RAMAN_EDGE_DATASETS to the datasets folder")
    report = tmp_path_factory.mktemp("transfer") / "transfer.md"
    assert bt.main(["--quick", "--write", "--report", str(report), "--datasets", str(DATASETS),
                    "--sets", MICROPLASTICS.data.split("/")[0]]) == 0
    return report.read_text()


def test_the_quick_report_has_every_way_and_unit(quick_report):
    assert quick_report.startswith("# Benchmark: the same samples on three instruments")
    assert "`benchmarks/bench_transfer.py --quick --write`" in quick_report
    sections = quick_report.split("\n## ")[1:]
    assert [s.splitlines()[0] for s in sections] == [MICROPLASTICS.title]
    accuracy, calibration = tables(sections[0])
    assert accuracy[0] == ["calibration", "augmentation", "A -> A", "A -> B", "A -> C",
                           "lost (points, worst, 95 % interval)"]
    assert [r[:2] for r in accuracy[1:]] == [["none", "off"], ["none", "training default"],
                                            ["calibrated (laser line, response, resolution)", "off"],
                                            ["calibrated (laser line, response, resolution)", "training default"]]
    for row in accuracy[1:]:
        shares = [float(SHARE.match(c).group(1)) for c in row[2:5]]
        assert all(0.0 <= s <= 100.0 for s in shares)
        lost, interval = (float(v) for v in row[5].split(" ± "))
        assert lost == pytest.approx(max(shares[0] - shares[1], shares[0] - shares[2]), abs=0.011)
        assert interval >= 0.0
    assert "Target: at most 1 point lost" in sections[0]


def test_the_suitability_test_finds_each_units_laser_and_resolution(quick_report):
    """B and C are set 0.3 and 0.2 nm off: the SST fails them at the nominal line and finds the true one."""
    _, calibration = tables(quick_report.split("\n## ")[1])
    head, rows = calibration[0], {r[0]: dict(zip(calibration[0], r)) for r in calibration[1:]}
    assert list(rows) == ["A", "B", "C"] and "SST FWHM (cm-1)" in head
    assert [rows[u]["SST"] for u in "ABC"] == ["PASS", "FAIL", "FAIL"]
    for unit in bt.UNITS:
        assert float(rows[unit.name]["fitted laser nm"]) == pytest.approx(unit.laser_nm, abs=0.06)
    width = {u: float(rows[u]["SST FWHM (cm-1)"]) for u in "ABC"}
    assert width["B"] < width["A"] < width["C"]  # line spreads of 3, 5 and 8 pixels
    assert f"the coarsest unit's resolution, {width['C']:.1f} cm-1" in quick_report
