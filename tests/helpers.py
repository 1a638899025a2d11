"""Test helpers: bundles (a small one, the shipped one with card changes), a service, spectra, a child's output.

The service runs on a simulator; the spectra are noise-free bands; the output is read with deadlines.
"""
from __future__ import annotations

import queue
import subprocess
import threading
import time
from collections.abc import Callable

import numpy as np

from device.inference.bundle import write_bundle
from device.inference.features import FEATURE_NAMES
from device.inference.inputs import Standardizer
from device.inference.network import Dense
from device.inference.spectrum import Axis

TINY_AXIS = Axis(500, 600, 101)


def make_bundle(path, axis=TINY_AXIS, classes=("a", "b", "c"), seed=0, examples=(), normalisation="none"):
    """Write a bundle of the compact network's shape with random weights (TFLite via the trainer)."""
    from trainer.export import tflite_bytes

    rng = np.random.default_rng(seed)
    width = axis.points + len(FEATURE_NAMES)
    layers = (Dense(rng.normal(0, 0.3, (width, 5)).astype(np.float32), rng.normal(0, 0.1, 5).astype(np.float32),
                    "leaky_relu"),
              Dense(rng.normal(0, 0.5, (5, len(classes))).astype(np.float32),
                    rng.normal(0, 0.1, len(classes)).astype(np.float32), "softmax"))
    std = Standardizer(rng.normal(0, 1, width), rng.uniform(0.5, 2, width))
    return write_bundle(path, name="tiny", class_names=classes, axis=axis, prominence=0.05, standardizer=std,
                        layers=layers, leaky_slope=0.3, tflite=tflite_bytes(layers, 0.3, width),
                        card={"description": "test bundle"}, examples=examples, normalisation=normalisation)


def shipped_variant(shipped, path, name: str, relabel: bool = False, shift_cm1: float = 0.0, examples: bool = True):
    """The shipped network under another name (so another model id).

    ``relabel`` gives each example the next class's label (so the self-test fails); ``shift_cm1`` moves the
    axis and the example spectra by that many cm-1 (the examples still come back with their labels);
    ``examples=False`` ships none.
    """
    from device.inference.readers import read_spectra

    labels = list(shipped.class_names)
    stored = []
    for p, label in shipped.examples if examples else ():
        s = read_spectra(p)[0]
        data = "".join(f"{x + shift_cm1:.6f},{y:.6g}\n" for x, y in zip(s.shift, s.intensity)).encode() \
            if shift_cm1 else p.read_bytes()
        stored.append((p.relative_to(shipped.path / "examples").as_posix(), data,
                       labels[(labels.index(label) + 1) % len(labels)] if relabel else label))
    axis = Axis(shipped.axis.start + shift_cm1, shipped.axis.stop + shift_cm1, shipped.axis.points)
    return write_bundle(path, name=name, class_names=shipped.class_names, axis=axis,
                        tflite=shipped.tflite_path.read_bytes(), card={"name": name}, prominence=shipped.prominence,
                        standardizer=shipped.standardizer, layers=shipped.layers, leaky_slope=shipped.leaky_slope,
                        normalisation=shipped.preprocess, input_layout=shipped.input_layout, examples=stored)


def shipped_with_card(shipped_dir, path, **fields):
    """A copy of the shipped bundle at ``path`` whose card has ``fields`` set (the card is not hashed)."""
    import json
    import shutil

    shutil.copytree(shipped_dir, path)
    card = json.loads((path / "model.json").read_text())
    (path / "model.json").write_text(json.dumps({**card, **fields}))
    return path


def examples_service(data_dir, bundle, spectrometer: str = ""):
    """The service on an instant OBP simulator showing the shipped model's examples, with ``bundle``.

    ``spectrometer`` holds extra lines of the ``[spectrometer]`` section (e.g. ``response = "..."``).
    """
    from pathlib import Path

    from device.service.config import parse_config
    from device.service.measurement import Service

    examples = Path(__file__).resolve().parents[1] / "models" / "sers-pesticides" / "examples"
    return Service(parse_config(f"""
[spectrometer]
protocol = "obp"
port = "sim://obp?paced=0&seed=2&scene={examples}"
laser_nm = 785.0
{spectrometer}
[model]
bundle = "{bundle}"
[data]
directory = "{data_dir}"
"""))


class OutputLines:
    """The lines a child process writes to its stdout, read by a thread so that every wait has a deadline.

    The thread owns ``proc.stdout`` (opened in text mode) and closes it at the end of the output; it also keeps
    the pipe drained, so a chatty child never blocks on a full pipe. Waits fail with an AssertionError that
    holds the output so far (and the child's stderr, if it is a pipe and the child has exited).
    """

    def __init__(self, proc: subprocess.Popen):
        self.proc = proc
        self.lines: list[str] = []  # every line taken so far, in order
        self._queue: queue.Queue[str | None] = queue.Queue()
        self._ended = False
        threading.Thread(target=self._pump, args=(proc.stdout,), daemon=True).start()

    def _pump(self, stream) -> None:
        with stream:
            for line in stream:
                self._queue.put(line)
        self._queue.put(None)

    def _take(self, deadline: float, timeout: float) -> str | None:
        """The next line, or None at the end of the output; fails once ``deadline`` (monotonic, s) has passed."""
        if self._ended:
            return None
        try:
            line = self._queue.get(timeout=max(deadline - time.monotonic(), 0.0))
        except queue.Empty:
            so_far = "".join(self.lines)
            raise AssertionError(f"still waiting after {timeout} s; output so far:\n{so_far}") from None
        if line is None:
            self._ended = True
        else:
            self.lines.append(line)
        return line

    def read_until(self, predicate: Callable[[str], bool] = lambda line: True, timeout: float = 60.0) -> str:
        """The next line for which ``predicate`` holds (by default the next line), skipping the ones before.

        Fails after ``timeout`` seconds, or when the output ends first.
        """
        deadline = time.monotonic() + timeout
        while (line := self._take(deadline, timeout)) is not None:
            if predicate(line):
                return line
        raise AssertionError(f"output ended without such a line; output:\n{''.join(self.lines)}{self._stderr()}")

    def rest(self, timeout: float = 60.0) -> str:
        """The lines not yet taken, once the output has ended; fails if it goes on for more than ``timeout`` s."""
        deadline, taken = time.monotonic() + timeout, len(self.lines)
        while self._take(deadline, timeout) is not None:
            pass
        return "".join(self.lines[taken:])

    def _stderr(self) -> str:
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            return ""
        return f"stderr:\n{self.proc.stderr.read()}" if self.proc.stderr is not None else ""


def wait_ready(output: OutputLines, timeout: float = 60.0) -> str:
    """The service's ``ready:`` line, skipping what ``raman-device run`` logs before it."""
    return output.read_until(lambda line: line.startswith("ready:"), timeout)


#: The Raman-shift axis of :func:`band_spectra`, cm-1.
BAND_AXIS = np.linspace(400, 1800, 1401)


def band_spectra(n: int, seed: int = 0) -> np.ndarray:
    """``n`` noise-free spectra (n, 1401) on :data:`BAND_AXIS`: four Gaussian bands of 5-15 cm-1 on an offset."""
    rng = np.random.default_rng(seed)
    return np.stack([sum(a * np.exp(-0.5 * ((BAND_AXIS - c) / w) ** 2) for a, c, w in
                         zip(rng.uniform(0.3, 1, 4), rng.uniform(500, 1700, 4), rng.uniform(5, 15, 4))) + 0.2
                     for _ in range(n)])


def payload_of(rec, device: str = "pi-001", store: str = "0123456789abcdef0123456789abcdef") -> bytes:
    """The uplink's payload of ``rec`` (a :class:`~device.service.record.Record`) as ``device``'s measurement.

    ``rec`` goes through a real record (in memory) and comes back as the uplink reads it; it keeps its id.
    """
    from dataclasses import replace

    from device.service.record import RecordStore
    from device.uplink.messages import measurement_payload

    record = RecordStore(":memory:")
    record.add(replace(rec))
    (stored,) = record.stored_after(0, 1)
    record.close()
    return measurement_payload(device, store, {**stored, "id": rec.id})
