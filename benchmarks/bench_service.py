"""Service benchmark: trigger-to-verdict overhead, idle memory and idle CPU of `raman-device run`.

Run with ``make bench-service``. The service measures through the OBP simulator in instant mode (no
integration or transfer time). Overhead beyond acquisition = median trigger-to-verdict time over the
control port minus the median time the same driver and simulator take for the acquisition alone
(dark frame, laser switching, spectrum), measured in this process.
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from service_process import ServiceProcess  # noqa: E402

from firmware_bridge.measure import measure  # noqa: E402
from firmware_bridge.protocols.obp.driver import OBPSpectrometer  # noqa: E402

SPECTROMETER = "sim://obp?paced=0&seed=1"
N = 40


def acquisition_times(n: int) -> np.ndarray:
    with OBPSpectrometer(SPECTROMETER) as spec:
        spec.set_integration_time(0.05)
        spec.set_averages(1)
        measure(spec, 785.0)
        out = []
        for _ in range(n):
            t = time.perf_counter()
            measure(spec, 785.0)
            out.append(time.perf_counter() - t)
    return np.array(out)


def proc_stat(pid: int) -> tuple[float, float]:
    """(RSS MB, CPU seconds) of a process."""
    rss = next(int(line.split()[1]) for line in open(f"/proc/{pid}/status") if line.startswith("VmRSS")) / 1024
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return rss, (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def main() -> int:
    argparse.ArgumentParser(description=__doc__.splitlines()[0]).parse_args()
    with tempfile.TemporaryDirectory() as tmp, ServiceProcess(
            f'[spectrometer]\nprotocol = "obp"\nport = "{SPECTROMETER}"\nlaser_nm = 785.0\nintegration_s = 0.05\n'
            f'[model]\nbundle = "{ROOT / "models" / "sers-pesticides"}"\n', Path(tmp)) as service:
        def trigger() -> float:
            answer, elapsed = service.measure()
            assert answer["ok"], answer
            return elapsed

        for _ in range(3):
            trigger()
        total = np.array([trigger() for _ in range(N)])
        time.sleep(1.0)
        rss, cpu0 = proc_stat(service.proc.pid)
        time.sleep(10.0)
        _, cpu1 = proc_stat(service.proc.pid)
    acquisition = acquisition_times(N)
    print(f"machine: {os.cpu_count()} cores; {N} measurements; spectrometer {SPECTROMETER} (instant)\n")
    print("| | median | p90 |\n|---|---|---|")
    print(f"| trigger to verdict over the control port | {1e3 * np.median(total):.1f} ms | "
          f"{1e3 * np.percentile(total, 90):.1f} ms |")
    print(f"| acquisition alone (same driver and simulator, baseline) | {1e3 * np.median(acquisition):.1f} ms | "
          f"{1e3 * np.percentile(acquisition, 90):.1f} ms |")
    print(f"| **overhead beyond acquisition** | **{1e3 * (np.median(total) - np.median(acquisition)):.1f} ms** | |")
    print(f"\n| idle RSS | idle CPU (10 s) |\n|---|---|\n| {rss:.0f} MB | {100 * (cpu1 - cpu0) / 10:.2f} % |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
