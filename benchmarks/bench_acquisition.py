"""Acquisition benchmark: time to verdict with fixed and with adaptive acquisition, against each simulator.

Run with ``make bench-acquisition``. Each scene is one real spectrum of the SERS pesticide data set
(``../shared/datasets/sersformer_pesticides``, chosen at random, stratified by class, all concentrations)
at a signal strength drawn log-uniformly over ``--decades`` decades (laser power x sample response:
the simulator's ``brightness``). For every scene a `raman-device run` process with the shipped
``sers-pesticides`` model measures it once through a paced simulator (integration, transfer at the
baud rate, dark frame) on a control port, in each mode:

- fixed: the shipped deployment configuration's ``integration_s`` and ``averages``
  (``deploy/raman-edge.toml``), one measurement (the GroupGets sketch's integration is fixed: its averages only);
- adaptive: ``exposure = "auto"`` (where the driver can set the integration) and ``stop = "adaptive"``
  with the defaults (at most 10 s), one frame per scan, by the model card's calibrated stop rule.

Time to verdict is from writing ``MEASURE`` to the whole reply. Accuracy counts a scene right when its
verdict is its class; refusals (too weak, saturated, ...), ``uncertain`` and ``unknown`` count as not right.
The shipped model was fitted on every spectrum of the data set, so the accuracies compare the two modes on
the same scenes; the model's own held-out figures are in its card. Scenes run three at a time.

The same run measures the service's start-up (process start to the ``ready:`` line, shipped model, an
instant simulator) against a bare interpreter importing NumPy, and the trigger-to-verdict overhead
beyond acquisition (``benchmarks/bench_service.py``'s measurement).
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import tomllib

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench_service import acquisition_times  # noqa: E402
from service_process import ServiceProcess  # noqa: E402

from firmware_bridge.protocols.tcd1304.simulator import TCD1304_COEFFICIENTS  # noqa: E402

MODEL = ROOT / "models" / "sers-pesticides"
DEPLOYED = tomllib.loads((ROOT / "deploy" / "raman-edge.toml").read_text())
#: name: (protocol, laser line (nm), extra [spectrometer] lines, whether the driver sets the integration)
SIMULATORS = {
    "OBP (Ocean STS-class)": ("obp", 785.0, "", True),
    "TCD1304": ("tcd1304", 785.0, f"coefficients = {list(TCD1304_COEFFICIENTS)}\n", True),
    "C12880MA (microspec)": ("microspec", 532.0, "", True),
    "C12880MA (GroupGets)": ("groupgets", 532.0, "", False),
}
MODES = ("fixed", "adaptive")
WORKERS = 3
INSTANT = "sim://obp?paced=0&seed=1"


def scenes(datasets: Path, n: int, decades: float, seed: int) -> list[dict]:
    """``n`` spectra stratified by class, each with a brightness 10**U(-decades + 0.5, 0.5)."""
    data = np.load(datasets / "sersformer_pesticides" / "sersformer_pesticides.npz")
    rng = np.random.default_rng(seed)
    classes = data["class_names"]
    per_class = [rng.permutation(np.flatnonzero(data["y"] == k)) for k in range(len(classes))]
    rows = [per_class[i % len(classes)][i // len(classes)] for i in range(n)]
    brightness = 10 ** rng.uniform(-decades + 0.5, 0.5, n)
    return [{"label": str(classes[data["y"][r]]), "shift": data["wavenumber"], "intensity": data["X"][r],
             "concentration_ppm": float(data["concentration_ppm"][r]), "brightness": float(b), "seed": i}
            for i, (r, b) in enumerate(zip(rows, brightness))]


def config(simulator: str, mode: str, scene_file: Path, scene: dict) -> str:
    """The service configuration measuring ``scene`` through ``simulator`` in ``mode``."""
    protocol, laser_nm, extra, sets_integration = SIMULATORS[simulator]
    deployed = DEPLOYED["spectrometer"]
    port = f"sim://{protocol}?seed={scene['seed']}&hold=1&brightness={scene['brightness']:.6g}&scene={scene_file}"
    text = f'[spectrometer]\nprotocol = "{protocol}"\nport = "{port}"\nlaser_nm = {laser_nm}\n{extra}'
    if sets_integration:
        text += f'integration_s = {deployed["integration_s"]}\n'
    text += f'averages = {deployed["averages"] if mode == "fixed" else 1}\n'  # adaptive: the rule sets the scans
    text += f'[model]\nbundle = "{MODEL}"\nmin_confidence = {DEPLOYED["model"]["min_confidence"]}\n'
    if mode == "adaptive":
        text += '[acquisition]\nstop = "adaptive"\n' + ('exposure = "auto"\n' if sets_integration else "")
    return text


def outcome(reply: dict, label: str) -> str:
    """right, wrong, uncertain, unknown, too weak, too bright or refused."""
    if reply.get("ok"):
        verdict = reply.get("verdict")
        return "right" if verdict == label else verdict if verdict in ("uncertain", "unknown") else "wrong"
    error = reply.get("error", "")
    return "too weak" if "too weak" in error else "too bright" if ("too bright" in error or "saturat" in error) \
        else "refused"


def measure_scene(simulator: str, mode: str, scene: dict, tmp: Path) -> dict:
    """One scene measured once by a fresh service process: outcome, seconds to the reply, stop reason."""
    directory = tmp / f"{SIMULATORS[simulator][0]}-{mode}-{scene['seed']}"
    directory.mkdir(parents=True)
    scene_file = directory / "scene.csv"
    np.savetxt(scene_file, np.column_stack([scene["shift"], scene["intensity"]]), delimiter=",", fmt="%.6g")
    with ServiceProcess(config(simulator, mode, scene_file, scene), directory) as service:
        reply, seconds = service.measure()
    return {"outcome": outcome(reply, scene["label"]), "seconds": seconds,
            "stop": (reply.get("acquisition") or {}).get("stop_reason", ""), "error": reply.get("error", "")}


def startup_times(n: int) -> tuple[np.ndarray, np.ndarray]:
    """Service start to ready with the shipped model (``n`` runs), and a bare ``python -c 'import numpy'``."""
    service, bare = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(n):
            with ServiceProcess(f'[spectrometer]\nprotocol = "obp"\nport = "{INSTANT}"\nlaser_nm = 785.0\n'
                                f'[model]\nbundle = "{MODEL}"\n', Path(tmp) / str(i)) as s:
                service.append(s.startup_s)
            start = time.perf_counter()
            subprocess.run([sys.executable, "-c", "import numpy"], check=True)
            bare.append(time.perf_counter() - start)
    return np.array(service), np.array(bare)


def overhead_s(n: int) -> tuple[float, float]:
    """Median trigger-to-verdict over the control port (instant simulator) and median acquisition alone, s."""
    with tempfile.TemporaryDirectory() as tmp, ServiceProcess(
            f'[spectrometer]\nprotocol = "obp"\nport = "{INSTANT}"\nlaser_nm = 785.0\nintegration_s = 0.05\n'
            f'[model]\nbundle = "{MODEL}"\n', Path(tmp)) as service:
        times = [service.measure()[1] for _ in range(n + 3)][3:]
    return float(np.median(times)), float(np.median(acquisition_times(n)))


def summary(results: list[dict]) -> dict:
    """Median and p90 seconds to verdict, accuracy and the share of each outcome."""
    seconds = np.array([r["seconds"] for r in results])
    shares = {k: np.mean([r["outcome"] == k for r in results]) for k in
              ("right", "wrong", "uncertain", "unknown", "too weak", "too bright", "refused")}
    return {"median": float(np.median(seconds)), "p90": float(np.percentile(seconds, 90)), **shares}


def table(by_simulator: dict, n: int) -> str:
    head = ("| simulator | mode | median time to verdict | p90 | accuracy | wrong | uncertain | unknown "
            "| too weak | too bright | other refusals |\n|---|---|---|---|---|---|---|---|---|---|---|\n")
    lines = []
    for name, modes in by_simulator.items():
        for mode in MODES:
            s = summary(modes[mode])
            lines.append(f"| {name} | {mode} | {s['median']:.2f} s | {s['p90']:.2f} s | {100 * s['right']:.1f} % | "
                         + " | ".join(f"{100 * s[k]:.1f} %" for k in ("wrong", "uncertain", "unknown", "too weak",
                                                                       "too bright", "refused")) + " |")
    return head + "\n".join(lines) + f"\n\n({n} scenes per simulator and mode)"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", type=Path, default=ROOT.parent / "shared" / "datasets")
    parser.add_argument("--scenes", type=int, default=36, help="scenes per simulator (default 36)")
    parser.add_argument("--decades", type=float, default=3.0, help="brightness range, decades (default 3)")
    parser.add_argument("--simulators", nargs="+", default=list(SIMULATORS), choices=list(SIMULATORS))
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    chosen = scenes(args.datasets, args.scenes, args.decades, args.seed)
    jobs = [(sim, mode, scene) for sim in args.simulators for scene in chosen for mode in MODES]
    with tempfile.TemporaryDirectory() as tmp, ThreadPoolExecutor(WORKERS) as pool:
        measured = list(pool.map(lambda job: measure_scene(*job, Path(tmp)), jobs))
    by_simulator = {sim: {mode: [] for mode in MODES} for sim in args.simulators}
    for (sim, mode, scene), result in zip(jobs, measured):
        by_simulator[sim][mode].append({**result, "brightness": scene["brightness"]})
    service_start, bare_start = startup_times(5)
    total, acquisition = overhead_s(40)

    print(f"machine: {os.cpu_count()} cores; model {MODEL.name}; fixed mode: integration_s "
          f"{DEPLOYED['spectrometer']['integration_s']} s x {DEPLOYED['spectrometer']['averages']} averages "
          f"(deploy/raman-edge.toml); adaptive: exposure auto, stop adaptive (max 10 s); brightness "
          f"{10 ** (-args.decades + 0.5):.4g} to {10 ** 0.5:.3g}, log-uniform; seed {args.seed}\n")
    print(table(by_simulator, args.scenes))
    fits = [s for s in args.simulators if SIMULATORS[s][1] == 785.0]
    if fits:
        fixed = summary([r for s in fits for r in by_simulator[s]["fixed"]])
        adaptive = summary([r for s in fits for r in by_simulator[s]["adaptive"]])
        print(f"\n| {' and '.join(fits)}, all scenes | fixed | adaptive | ratio |\n|---|---|---|---|")
        print(f"| median time to verdict | {fixed['median']:.2f} s | {adaptive['median']:.2f} s | "
              f"**{fixed['median'] / adaptive['median']:.1f}x shorter** |")
        print(f"| p90 time to verdict | {fixed['p90']:.2f} s | {adaptive['p90']:.2f} s | "
              f"{fixed['p90'] / adaptive['p90']:.1f}x |")
        print(f"| accuracy | {100 * fixed['right']:.1f} % | {100 * adaptive['right']:.1f} % | "
              f"{100 * (adaptive['right'] - fixed['right']):+.1f} points |")
        print(f"| refused as too weak | {100 * fixed['too weak']:.1f} % | {100 * adaptive['too weak']:.1f} % | |")
    print("\n| service | median | baseline (same run) | |\n|---|---|---|---|")
    ratio = np.median(service_start) / np.median(bare_start)
    print(f"| start-up to READY (shipped model, instant simulator, 5 runs) | {np.median(service_start):.3f} s | "
          f"`python -c 'import numpy'` {np.median(bare_start):.3f} s | {ratio:.1f}x |")
    print(f"| trigger to verdict beyond acquisition (40 measurements) | {1e3 * (total - acquisition):.1f} ms | "
          f"acquisition alone {1e3 * acquisition:.1f} ms | |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
