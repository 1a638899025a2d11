"""``python -m tools fleet-demo``: a whole fleet (Mosquitto, collector, two devices, a rollout, the dashboard)."""
from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[1]


def test_the_fleet_demo_passes_every_check_and_reports(tmp_path):
    kept = tmp_path / "fleet"
    done = subprocess.run([sys.executable, "-m", "tools", "fleet-demo", "--devices", "2", "--keep", str(kept)],
                          cwd=ROOT, capture_output=True, text=True, timeout=300)
    if done.returncode == 2 and "Mosquitto is not installed" in done.stderr:
        pytest.skip(done.stderr.strip())
    assert done.returncode == 0, done.stdout + done.stderr
    out = done.stdout
    assert "recorded on the devices: 8; stored centrally: 8; duplicates dropped: 3" in out  # 4 each, pi-001's again
    new_model = re.search(r"(sers-pesticides-v2@[0-9a-f]{12}) to roll out", out).group(1)
    assert re.search(rf"^rollout r-\S+: installed {new_model} on pi-001, pi-002$", out, re.M)
    for device in ("pi-001", "pi-002"):  # the status table: online, on the new model, its rollout installed
        assert re.search(rf"^{device}\s+online\s+{re.escape(new_model)}\s.*\s4\s.*installed$", out, re.M), out
    assert re.search(r"^dashboard: http://127\.0\.0\.1:\d+/ \(token [0-9a-f]{48}, ", out, re.M)
    assert out.rstrip().splitlines()[-1].startswith("fleet demo complete in ")
    assert (kept / "fleet.db").is_file() and (kept / "logs" / "collector.log").is_file()  # --keep kept it


def test_a_keep_directory_that_is_not_empty_is_refused(tmp_path):
    (tmp_path / "something").write_text("mine")
    done = subprocess.run([sys.executable, "-m", "tools", "fleet-demo", "--keep", str(tmp_path)], cwd=ROOT,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and "is not empty" in done.stderr
    assert [p.name for p in tmp_path.iterdir()] == ["something"]
