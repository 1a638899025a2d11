"""python -m tools demo: the whole loop, as `make demo` runs it."""
import subprocess
import sys
from pathlib import Path

import pytest

from device.service.record import RecordStore

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]


def test_demo_runs_the_whole_loop(shipped_bundle, tmp_path):
    r = subprocess.run([sys.executable, "-m", "tools", "demo", "--model", str(shipped_bundle.path),
                        "--measurements", "3", "--data", str(tmp_path / "demo")],
                       cwd=ROOT, capture_output=True, text=True, timeout=180)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "self-test passed" in r.stdout and "demo complete" in r.stdout
    rows = [line for line in r.stdout.splitlines() if line[:2].strip().isdigit()]
    assert len(rows) == 3
    store = RecordStore(tmp_path / "demo" / "record.db")
    assert store.count() == 3 and store.integrity_ok() and all(rec.verdict for rec in store.query())
