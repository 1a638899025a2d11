#!/usr/bin/env python3
"""Fuzz every parser that reads bytes from outside.

Coverage-guided with atheris, when it is installed::

    python fuzz/fuzz_parsers.py TARGET [libFuzzer options] [corpus directories]

or, with or without atheris, a plain loop of random inputs and mutations of valid ones::

    python fuzz/fuzz_parsers.py TARGET --cases 100000 [--seed 1]
    python fuzz/fuzz_parsers.py TARGET --replay crash-TARGET-0123456789ab   # one saved input, with its traceback

TARGET is one of obp, tcd1304, microspec, control, readers, config, bundle. A target feeds the bytes to
its parser and accepts only the parser's own error types. Anything else is a crash: another exception,
a broken invariant (a decoded frame that does not re-encode, a reply that is not one JSON line, a file
opened by the control port, an unpickled object), a case slower than ``--timeout`` seconds, or memory
beyond ``--rss-limit-mb``. The plain loop saves each crashing input as ``crash-TARGET-HASH`` and prints
how to replay it.
"""
from __future__ import annotations

import argparse
import hashlib
import importlib.util
import io
import json
import random
import resource
import shutil
import signal
import sys
import tempfile
import time
import traceback
import zipfile
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
SHIPPED = ROOT / "models" / "sers-pesticides"
PACKAGES = ["firmware_bridge", "device"]


class Hang(BaseException):
    """A case ran longer than the timeout (a BaseException, so that no parser's ``except Exception`` hides it)."""


class Watch:
    """Records file-system, process and unpickling audit events (:func:`sys.audit`) while active."""

    PREFIXES = ("open", "os.", "shutil.", "subprocess.", "pickle.find_class")

    def __init__(self):
        self.active = False
        self.events: list[str] = []
        sys.addaudithook(self)

    def __call__(self, event: str, args) -> None:
        if self.active and event.startswith(self.PREFIXES):
            self.events.append(event)

    @contextmanager
    def only(self, allowed: tuple = ()):
        """Fail if an event other than ``allowed`` (prefixes) happens inside the block."""
        self.events.clear()
        self.active = True
        try:
            yield
        finally:
            self.active = False
            unexpected = [e for e in self.events if not (allowed and e.startswith(allowed))]
            assert not unexpected, f"unexpected {', '.join(sorted(set(unexpected)))}"

    def run(self, fn, *args, allowed: tuple = ()):
        """``fn(*args)`` inside :meth:`only`."""
        with self.only(allowed):
            return fn(*args)


WATCH = Watch()
FILES_ONLY = ("open", "os.", "shutil.")  # reading files is expected, unpickling never


# ---------------------------------------------------------------------------------------------------
# Targets: seeds() gives valid inputs, __call__(data) runs one case


def _zip(entries: dict, index: int = -1, member: bytes = b"") -> bytes:
    """An .npz archive of ``entries`` (name: .npy bytes), the one at ``index`` replaced by ``member``."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        for i, (name, original) in enumerate(entries.items()):
            z.writestr(name, member if i == index else original)
    return buf.getvalue()


class Obp:
    def __init__(self):
        from firmware_bridge import errors
        from firmware_bridge.protocols.obp import codec as obp
        self.obp, self.refused = obp, (errors.ShortFrameError, errors.FramingError)

    def seeds(self) -> list[bytes]:
        m = self.obp
        return [m.encode(m.Message(m.GET_TEMPERATURE, b"", checksum_type=m.CHECKSUM_MD5)),
                m.encode(m.Message(m.GET_WL_COEFF, b"\x01\x02\x03\x04", flags=m.FLAG_RESPONSE)),
                m.encode(m.Message(m.GET_RAW_SPECTRUM_NOW, bytes(range(256)) * 8, checksum_type=m.CHECKSUM_MD5)),
                m.encode(m.Message(m.SET_ITIME_USEC, b"\x40\x42\x0f\x00", flags=m.FLAG_NACK, error=6))]

    def __call__(self, data: bytes) -> None:
        try:
            total = self.obp.frame_length(data[:self.obp.HEADER_SIZE])
            assert self.obp.MIN_SIZE <= total <= self.obp.MAX_PAYLOAD + self.obp.MIN_SIZE, total
        except self.refused:
            pass
        try:
            msg = self.obp.decode(data)
        except self.refused:
            return
        assert self.obp.decode(self.obp.encode(msg)) == msg, "a decoded message does not survive re-encoding"


class Tcd1304:
    def __init__(self):
        import numpy as np

        from firmware_bridge import errors
        from firmware_bridge.protocols.tcd1304 import codec as tcd1304
        self.np, self.tcd, self.refused = np, tcd1304, (errors.ShortFrameError, errors.FramingError)

    def seeds(self) -> list[bytes]:
        np, t = self.np, self.tcd
        return [t.encode_frame(np.arange(t.ELEMENTS) % (t.MAX_COUNT + 1)), t.encode_frame(np.zeros(t.ELEMENTS)),
                t.encode_frame(np.full(t.ELEMENTS, t.MAX_COUNT))]

    def __call__(self, data: bytes) -> None:
        try:
            values = self.tcd.decode_frame(data)
        except self.refused:
            return
        assert values.shape == (self.tcd.ELEMENTS,) and values.max() <= self.tcd.MAX_COUNT
        assert self.tcd.encode_frame(values) == data, "a decoded frame does not survive re-encoding"


class Microspec:
    def __init__(self):
        import numpy as np

        from firmware_bridge import errors
        from firmware_bridge.protocols.microspec import codec as microspec
        self.np, self.ms, self.refused = np, microspec, (errors.DeviceError, errors.FramingError)

    def seeds(self) -> list[bytes]:
        values = [(i * 37) % 1024 for i in range(self.ms.CHANNELS)]
        return [self.ms.format_spectrum(values), self.ms.format_spectrum(values, trailing_comma=True),
                b"### Error: SPEC.INTEG requires 1 argument 'time' (s)\n"]

    def __call__(self, data: bytes) -> None:
        for trailing_comma in (False, True):
            try:
                values = self.ms.parse_spectrum(data, trailing_comma=trailing_comma)
            except self.refused:
                continue
            assert values.shape == (self.ms.CHANNELS,) and values.dtype == self.np.int64 and values.min() >= 0
            line = self.ms.format_spectrum(values, trailing_comma)
            again = self.ms.parse_spectrum(line, trailing_comma=trailing_comma)
            assert (again == values).all(), "parsed counts do not survive re-formatting"


class Control:
    """The first byte sets the chunk size the stream arrives in; the rest is the stream."""

    class Service:
        """A measurement service that answers every command at once with a fixed reply."""

        def measure(self, trigger):
            return {"ok": True, "verdict": "No_pest_present", "confidence": 0.99, "id": 1}

        def status(self):
            return {"state": "ready"}

        def last(self):
            return {"ok": True, "id": 1}

        def model_info(self):
            return {"model": "m@000000000000"}

    def __init__(self):
        from device.service import control
        self.control = control

    def seeds(self) -> list[bytes]:
        return [b"\x05MEASURE\nstatus\r\nHELP\n", b"\x00LAST \nMODEL\nmeasure now\n",
                b"\x10" + b"M" * 100 + b"\nHELP\n", b"\x01\xc3\xa9\n\x00\n\r\r\n"]

    def __call__(self, data: bytes) -> None:
        WATCH.run(self._serve, data)

    def _serve(self, data: bytes) -> None:
        c = self.control
        size, stream = 1 + (data[0] % 64 if data else 0), data[1:]
        reader, service, replies = c.LineReader(), self.Service(), []
        for i in range(0, len(stream), size):
            for text, error in reader.feed(stream[i:i + size]):
                answer = c.dispatch(text, service) if text is not None else {"ok": False, "error": error}
                replies.append(c.reply(answer))
            assert len(reader._buf) <= c.MAX_LINE, "the partial line grew beyond the line limit"
        assert len(replies) == stream.count(b"\n"), "not one reply per line"
        for raw in replies:
            assert raw.endswith(b"\n") and raw.count(b"\n") == 1, raw
            answer = json.loads(raw.decode("ascii"))
            assert isinstance(answer["ok"], bool) and (answer["ok"] or isinstance(answer["error"], str)), answer


class Readers:
    """The first byte picks what the rest is: a .csv, .txt, .npz, .jdx or .spc file, or one entry of an .npz file.

    0 a .csv file, 1 a .txt file, 2 an .npz file, 3 one entry of a valid .npz file (next byte: X or
    wavenumber; then its .npy bytes), 4 a JCAMP-DX file, 5 an SPC file (seeded with the sample files in
    ``shared/datasets/formats`` when they are there).
    """

    def __init__(self):
        import numpy as np

        from device.errors import SpectrumFileError
        from device.inference.readers import read_spectra
        from firmware_bridge import errors
        from firmware_bridge.spectrum_files import parse_two_columns
        self.read, self.parse, self.refused = read_spectra, parse_two_columns, (SpectrumFileError,
                                                                                errors.SpectrumFileError)
        self._tmp = tempfile.TemporaryDirectory(prefix="fuzz-readers-")
        self.dir = Path(self._tmp.name)
        self.entries = {}
        arrays = {"X": np.random.default_rng(0).normal(size=(2, 40)), "wavenumber": np.linspace(400, 1800, 40)}
        for key, a in arrays.items():
            buf = io.BytesIO()
            np.lib.format.write_array(buf, a)
            self.entries[f"{key}.npy"] = buf.getvalue()

    def seeds(self) -> list[bytes]:
        csv = next(SHIPPED.glob("examples/*/*.CSV")).read_bytes()
        text = b"# a\nshift;counts\n500,0;1,5\n501,5;2\n502;3,25\n"
        from firmware_bridge.jcamp import write_jcamp

        jdx = write_jcamp([([500.0, 501.5, 503.0], [1.0, 2.5, 3.0], {}), ([500.0, 502.0, 504.0], [4.0, 5.0, 6.0], {})],
                          "seed")
        samples = ROOT.parent / "shared" / "datasets" / "formats"
        files = [b"\4" + p.read_bytes() for p in sorted(samples.glob("jcamp/*.jdx"))] + [
            b"\5" + p.read_bytes() for p in sorted(samples.glob("spc/*.spc"))]
        return [b"\0" + csv, b"\1" + text, b"\2" + _zip(self.entries), b"\4" + jdx, *files] + [
            b"\3" + bytes([i]) + member for i, member in enumerate(self.entries.values())]

    def __call__(self, data: bytes) -> None:
        mode, content = (data[0] % 6, data[1:]) if data else (0, b"")
        if mode == 3:
            content = _zip(self.entries, content[0] % 2 if content else 0, content[1:])
        path = self.dir / ("case.csv", "case.txt", "case.npz", "case.npz", "case.jdx", "case.spc")[mode]
        path.write_bytes(content)
        try:
            spectra = WATCH.run(self.read, path, allowed=FILES_ONLY)
            assert spectra and all(len(s) >= 3 for s in spectra)
        except self.refused:
            pass
        try:
            x, y = self.parse(content, "case")
            assert x.shape == y.shape and x.ndim == 1 and x.size >= 1
        except self.refused:
            pass


class Config:
    def __init__(self):
        import math

        from device.service.config import ConfigError, parse_config
        self.parse, self.refused, self.isfinite = parse_config, ConfigError, math.isfinite

    def seeds(self) -> list[bytes]:
        deploy = (ROOT / "deploy" / "raman-edge.toml").read_text()
        tcd = deploy.replace('protocol = "obp"', 'protocol = "tcd1304"').replace("# coefficients", "coefficients")
        return [deploy.encode(), tcd.replace("# control_", "control_").encode()]

    def __call__(self, data: bytes) -> None:
        try:
            c = self.parse(data.decode("utf-8", "replace"))
        except self.refused:
            return
        assert all(self.isfinite(v) for v in c.spectrometer.coefficients or ())
        assert all(name and "\0" not in name
                   for name in (c.spectrometer.port, str(c.model.bundle), str(c.data_directory)))


class Bundle:
    """The first byte picks what the rest replaces: model.json, model.npz or one entry of model.npz.

    0 model.json; 1 model.npz; 2 one entry of model.npz (next byte: which; then its .npy bytes). A new
    model.npz is signed into model.json, so the content checks run, not only the hash check.
    """

    def __init__(self):
        import numpy as np

        from device.errors import BundleError
        from device.inference.bundle import load_bundle
        from device.inference.classifier import Classifier
        from device.inference.spectrum import Spectrum
        self.np, self.load, self.refused = np, load_bundle, BundleError
        self.Classifier, self.Spectrum = Classifier, Spectrum
        self._tmp = tempfile.TemporaryDirectory(prefix="fuzz-bundle-")
        self.dir = Path(self._tmp.name) / "sers-pesticides"
        shutil.copytree(SHIPPED, self.dir)
        self.card = json.loads((SHIPPED / "model.json").read_text())
        self.npz = (SHIPPED / "model.npz").read_bytes()
        with zipfile.ZipFile(io.BytesIO(self.npz)) as z:
            self.entries = {name: z.read(name) for name in z.namelist()}

    def seeds(self) -> list[bytes]:
        return [b"\0" + (SHIPPED / "model.json").read_bytes(), b"\1" + self.npz] + [
            b"\2" + bytes([i]) + member for i, member in enumerate(self.entries.values())]

    def __call__(self, data: bytes) -> None:
        mode, rest = (data[0] % 3, data[1:]) if data else (0, b"")
        if mode == 0:
            npz, card = self.npz, rest
        else:
            npz = rest if mode == 1 else _zip(self.entries, rest[0] % len(self.entries) if rest else 0, rest[1:])
            card = json.loads(json.dumps(self.card))
            card["files"]["model.npz"]["sha256"] = hashlib.sha256(npz).hexdigest()
            card = json.dumps(card).encode()
        (self.dir / "model.npz").write_bytes(npz)
        (self.dir / "model.json").write_bytes(card)
        try:
            b = WATCH.run(self.load, self.dir, allowed=FILES_ONLY)
        except self.refused:
            return
        x = b.axis.values
        with self.np.errstate(all="ignore"):
            p = self.Classifier(b).probabilities([self.Spectrum(x, 1.0 + self.np.sin(x / 40.0))])
        assert p.shape == (1, len(b.class_names)) and all(isinstance(label, str) for _, label in b.examples)


TARGETS = {"obp": Obp, "tcd1304": Tcd1304, "microspec": Microspec, "control": Control, "readers": Readers,
           "config": Config, "bundle": Bundle}


# ---------------------------------------------------------------------------------------------------
# The plain loop

INTERESTING = [b"\0", b"\xff", b"\x7f", b"\x80", b"\xff\xff\xff\xff", b"\0\0\0\x80", b"\x14\0\0\0", b"\n", b"\r\n",
               b",", b";", b"\t", b"-", b"#", b"1e999", b"nan", b"-inf", b"9" * 30, b"[" * 64, b"{", b'"', b"\\u0000",
               b"\xc3\xa9", b"\xc1\xc0", b"\xc5\xc4\xc3\xc2", b"PK\x03\x04", b"\x93NUMPY"]


def mutate(rng: random.Random, data: bytes, seeds: list[bytes]) -> bytes:
    """``data`` with one to eight random edits.

    Edits: bit flips, random bytes, insertions, deletions, truncation, duplicated chunks, splices with
    another seed and interesting values.
    """
    b = bytearray(data)
    for _ in range(rng.randint(1, 8)):
        op, i = rng.randrange(8), rng.randint(0, len(b))
        if op == 0 and b:
            b[min(i, len(b) - 1)] ^= 1 << rng.randrange(8)
        elif op == 1 and b:
            b[min(i, len(b) - 1)] = rng.randrange(256)
        elif op == 2:
            b[i:i] = rng.randbytes(rng.randint(1, 16))
        elif op == 3:
            del b[i:i + rng.randint(1, 16)]
        elif op == 4:
            del b[i:]
        elif op == 5:
            j = rng.randint(0, len(b))
            b[i:i] = b[j:j + rng.randint(1, 64)]
        elif op == 6:
            other = rng.choice(seeds)
            b[i:] = other[rng.randint(0, len(other)):]
        else:
            value = rng.choice(INTERESTING)
            b[i:i + rng.choice((0, len(value)))] = value
    return bytes(b)


def _on_alarm(signum, frame):
    raise Hang()


def _limit_memory(megabytes: int) -> None:
    """Cap the address space at its present size plus ``megabytes``, so a runaway allocation fails."""
    pages = int(Path("/proc/self/statm").read_text().split()[0])
    limit = pages * resource.getpagesize() + megabytes * 1024 * 1024
    resource.setrlimit(resource.RLIMIT_AS, (limit, resource.getrlimit(resource.RLIMIT_AS)[1]))


def _run_one(target, data: bytes, timeout: float) -> None:
    signal.setitimer(signal.ITIMER_REAL, timeout)
    try:
        target(data)
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)


def plain_loop(name: str, cases: int, seed: int, timeout: float, rss_limit_mb: int) -> int:
    """Run ``cases`` cases; print each distinct crash with a reproducer and the totals. Exit status."""
    target = TARGETS[name]()
    seeds = target.seeds()
    rng = random.Random(seed)
    signal.signal(signal.SIGALRM, _on_alarm)
    _limit_memory(rss_limit_mb)
    crashes, seen = 0, set()
    start = time.monotonic()
    for _ in range(cases):
        data = rng.randbytes(rng.randint(0, 512)) if rng.random() < 0.05 else mutate(rng, rng.choice(seeds), seeds)
        try:
            _run_one(target, data, timeout)
        except (Exception, Hang) as exc:
            crashes += 1
            where = traceback.extract_tb(exc.__traceback__)[-1]
            key = (type(exc).__name__, where.filename, where.lineno)
            if key in seen:
                continue
            seen.add(key)
            saved = Path(f"crash-{name}-{hashlib.sha1(data).hexdigest()[:12]}")
            saved.write_bytes(data)
            kind = f"hang (> {timeout:g} s)" if isinstance(exc, Hang) else f"{type(exc).__name__}: {exc}"
            print(f"CRASH in {name}: {kind}\n  at {where.filename}:{where.lineno}\n  input ({len(data)} bytes): "
                  f"{data[:120]!r}{'...' if len(data) > 120 else ''}\n  saved as {saved}; replay with: "
                  f"python {Path(__file__).relative_to(ROOT)} {name} --replay {saved}", flush=True)
    elapsed = time.monotonic() - start
    print(f"{name}: {cases} cases in {elapsed:.1f} s ({cases / elapsed:.0f}/s), {crashes} crash(es), "
          f"{len(seen)} distinct")
    return 1 if crashes else 0


def replay(name: str, path: str) -> int:
    """Run one saved input and show its traceback, if any."""
    TARGETS[name]()(Path(path).read_bytes())
    print(f"{name}: {path} runs without a crash")
    return 0


def atheris_fuzz(name: str, args: list[str]) -> None:
    """Coverage-guided fuzzing; without corpus directories, starts from the target's seeds."""
    import atheris
    with atheris.instrument_imports(include=PACKAGES):
        target = TARGETS[name]()
    if not any(not a.startswith("-") for a in args):
        corpus = Path(tempfile.mkdtemp(prefix=f"fuzz-{name}-corpus-"))
        for i, seed in enumerate(target.seeds()):
            (corpus / f"seed-{i}").write_bytes(seed)
        args = [*args, str(corpus)]
    atheris.Setup([sys.argv[0], *args], target)
    atheris.Fuzz()


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("target", choices=sorted(TARGETS))
    parser.add_argument("--cases", type=int, help="run the plain loop for this many cases (also without atheris)")
    parser.add_argument("--seed", type=int, default=1, help="seed of the plain loop")
    parser.add_argument("--timeout", type=float, default=10.0, help="seconds after which a case counts as a hang")
    parser.add_argument("--rss-limit-mb", type=int, default=2048, help="memory a case may add (plain loop)")
    parser.add_argument("--replay", metavar="FILE", help="run one saved input")
    args, rest = parser.parse_known_args(argv)
    if args.replay:
        return replay(args.target, args.replay)
    if args.cases is None:
        if importlib.util.find_spec("atheris") is not None:
            atheris_fuzz(args.target, rest)
            return 0
        print("atheris is not installed: running the plain loop for 10000 cases (--cases N for more)")
        args.cases = 10000
    if rest:
        parser.error(f"unrecognised arguments for the plain loop: {' '.join(rest)}")
    return plain_loop(args.target, args.cases, args.seed, args.timeout, args.rss_limit_mb)


if __name__ == "__main__":
    sys.exit(main())
