"""``raman-device demo``: the whole loop on one machine.

A simulated OBP spectrometer (from :mod:`firmware_bridge`, showing the bundle's example spectra, paced
at its real transfer rate) on a pseudo-terminal; the service (``raman-device run``, a separate process)
on it with the model; triggers through the control port (a second pseudo-terminal); verdicts printed;
records in a fresh SQLite file; everything shut down cleanly.
"""
from __future__ import annotations

import os
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import tty
from pathlib import Path

from device.errors import RamanEdgeError
from device.inference.bundle import load_bundle
from device.service.control import read_reply
from device.service.record import RECORD_FILE, RecordStore
from firmware_bridge.sim.instrument import Scene
from firmware_bridge.sim.line import SimulatedLine
from firmware_bridge.sim.pty import PtyServer
from firmware_bridge.sim.serve import make_device

LASER_NM = 785.0
TIMEOUT = 60.0


def _reply(fd: int, deadline: float) -> dict:
    """The service's reply on the control port ``fd``, by ``deadline`` (time.monotonic())."""

    def recv() -> bytes:
        while not select.select([fd], [], [], 0.1)[0]:
            if time.monotonic() > deadline:
                raise RamanEdgeError("the service did not answer on its control port in time")
        return os.read(fd, 65536)

    return read_reply(recv)


def run_demo(model: Path, measurements: int, data: Path, out=print) -> int:
    """Run the loop, keeping the record in ``data`` (emptied first).

    Returns 0 if every verdict came back as expected and the record holds every measurement.
    """
    bundle = load_bundle(model)
    if not bundle.examples:
        raise RamanEdgeError(f"model bundle {model} has no example spectra to show the simulated spectrometer")
    expected = {path.name: label for path, label in bundle.examples}
    scene = Scene.from_path(bundle.path / "examples")
    device = make_device("obp", scene, seed=1, laser_nm=LASER_NM)
    spectrometer = PtyServer(SimulatedLine(device, paced=True)).start()
    master, slave = os.openpty()
    tty.setraw(slave)
    data = Path(data).resolve()
    if data.exists():
        shutil.rmtree(data)
    with tempfile.TemporaryDirectory(prefix="raman-edge-demo-") as tmp:
        config = Path(tmp) / "raman-edge.toml"
        config.write_text(
            f'[spectrometer]\nprotocol = "obp"\nport = "{spectrometer.path}"\nlaser_nm = {LASER_NM}\n'
            f'integration_s = 0.2\naverages = 2\n[model]\nbundle = "{bundle.path.resolve()}"\nmin_confidence = 0.8\n'
            f'[triggers]\ncontrol_port = "{os.ttyname(slave)}"\n[data]\ndirectory = "{data}"\n')
        out(f"simulated Ocean STS-class spectrometer (OBP) on {spectrometer.path}; control port on "
            f"{os.ttyname(slave)}")
        service = subprocess.Popen([str(Path(sys.executable).parent / "raman-device"), "run", "--config", str(config)],
                                   stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        failures = 0
        try:
            seen = []
            line = service.stdout.readline()
            while line and not line.startswith("ready:"):
                seen.append(line.rstrip())
                line = service.stdout.readline()
            if not line:
                raise RamanEdgeError("the service stopped before it was ready: " + " | ".join(seen[-3:]))
            out(f"service {line.strip()}\n")
            out(f"{'#':>2}  {'sample under the laser':46s}  {'expected':23s}  {'verdict':23s}  confidence")
            for _ in range(measurements):
                sample = scene.current()[2]  # the simulator moves on when the laser goes off
                os.write(master, b"MEASURE\n")
                r = _reply(master, time.monotonic() + TIMEOUT)
                verdict = r.get("verdict") if r.get("ok") else f"error: {r.get('error')}"
                failures += verdict != expected.get(sample)
                confidence = "-" if r.get("confidence") is None else f"{r['confidence']:.3f}"
                out(f"{r.get('id', '-'):>2}  {sample[:46]:46s}  {expected.get(sample, '?'):23s}  {verdict[:23]:23s}  "
                    f"{confidence}")
        finally:
            service.send_signal(signal.SIGTERM)
            try:
                service.wait(timeout=TIMEOUT)
            except subprocess.TimeoutExpired:
                service.kill()
            spectrometer.stop()
            os.close(master)
            os.close(slave)
    store = RecordStore(data / RECORD_FILE)
    count, intact = store.count(), store.integrity_ok()
    store.close()
    out(f"\nrecord: {count} measurement(s) in {data / RECORD_FILE} (see: raman-device history --db "
        f"{data / RECORD_FILE}), integrity {'ok' if intact else 'FAILED'}; service stopped with status "
        f"{service.returncode}")
    ok = failures == 0 and count == measurements and intact and service.returncode == 0
    out("demo " + ("complete: every verdict as expected, every measurement recorded" if ok else "FAILED"))
    return 0 if ok else 1
