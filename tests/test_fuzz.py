"""Hostile and malformed input: property-based tests of every parser that reads bytes from outside.

Each parser either returns a valid result or raises its own error type (a ``firmware_bridge.errors``
type or a :class:`device.errors.RamanEdgeError`); nothing else may escape, nothing may be unpickled,
and the control port touches no file. Inputs are random bytes and mutations (flipped, inserted,
deleted bytes, truncation) of valid inputs made with each module's own encoder. ``fuzz/fuzz_parsers.py``
runs the same parsers for many more cases.
"""
from __future__ import annotations

import hashlib
import importlib.util
import io
import json
import shutil
import zipfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from device.errors import BundleError, SpectrumFileError
from device.inference import bundle as bundle_module
from device.inference.bundle import load_bundle
from device.inference.classifier import Classifier
from device.inference.convnet import Conv, ConvNet, MaxPool, Residual, SqueezeExcitation, to_arrays
from device.inference.readers import read_spectra
from device.inference.spectrum import Spectrum
from device.service.config import Config, ConfigError, parse_config
from device.service.control import COMMANDS, MAX_LINE, LineReader, dispatch, reply
from firmware_bridge import errors as bridge_errors
from firmware_bridge import spectrum_files
from firmware_bridge.errors import DeviceError, FramingError, ShortFrameError
from firmware_bridge.protocols.microspec import codec as microspec
from firmware_bridge.protocols.obp import codec as obp
from firmware_bridge.protocols.tcd1304 import codec as tcd1304
from firmware_bridge.registry import PROTOCOLS
from firmware_bridge.spectrum_files import parse_two_columns

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = ROOT / "models" / "sers-pesticides"
EXAMPLE_CSV = SHIPPED / "examples" / "No_pest_present" / "Phosmet_not_spinach (145).CSV"
DEPLOY_TOML = (ROOT / "deploy" / "raman-edge.toml").read_text()


def fuzz_settings(examples: int):
    """Bounded examples, no deadline (the machine is shared), fixtures reused across examples."""
    return settings(max_examples=examples, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture,
                                           HealthCheck.data_too_large, HealthCheck.filter_too_much])


def _fuzz_script():
    """``fuzz/fuzz_parsers.py``, whose audit-hook watcher the tests share."""
    spec = importlib.util.spec_from_file_location("fuzz_parsers", Path(__file__).resolve().parents[1] / "fuzz" /
                                                  "fuzz_parsers.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


_FUZZ = _fuzz_script()
WATCH = _FUZZ.WATCH
NO_UNPICKLING = _FUZZ.FILES_ONLY  # reading files is expected, unpickling never


# ---------------------------------------------------------------------------------------------------
# Mutations of valid inputs

_OP = st.one_of(
    st.tuples(st.just("flip"), st.integers(0, 1 << 20), st.integers(1, 255)),
    st.tuples(st.just("insert"), st.integers(0, 1 << 20), st.binary(min_size=1, max_size=8)),
    st.tuples(st.just("delete"), st.integers(0, 1 << 20), st.integers(1, 8)),
    st.tuples(st.just("truncate"), st.integers(0, 1 << 20), st.just(0)),
)
MUTATIONS = st.lists(_OP, min_size=1, max_size=4)


def mutate(data: bytes, ops) -> bytes:
    """Apply (kind, position, argument) edits; positions wrap around the current length."""
    b = bytearray(data)
    for kind, pos, arg in ops:
        i = pos % (len(b) + 1)
        if kind == "flip" and i < len(b):
            b[i] ^= arg
        elif kind == "insert":
            b[i:i] = arg
        elif kind == "delete":
            del b[i:i + arg]
        elif kind == "truncate":
            del b[i:]
    return bytes(b)


# ---------------------------------------------------------------------------------------------------
# 1. Protocol decoders

OBP_MESSAGES = st.builds(
    obp.Message, message_type=st.integers(0, 2**32 - 1), data=st.binary(max_size=200),
    flags=st.integers(0, 0xFFFF), error=st.integers(0, 0xFFFF),
    checksum_type=st.sampled_from([obp.CHECKSUM_NONE, obp.CHECKSUM_MD5]),
    version=st.sampled_from(obp.ACCEPTED_VERSIONS), regarding=st.integers(0, 2**32 - 1))


def _obp_decode(frame: bytes):
    """The decoded message, or None for a frame refused with the codec's own errors."""
    try:
        msg = obp.decode(frame)
    except (ShortFrameError, FramingError):  # ChecksumError is a FramingError
        return None
    assert obp.decode(obp.encode(msg)) == msg
    return msg


@fuzz_settings(200)
@given(OBP_MESSAGES)
def test_obp_round_trip(msg):
    frame = obp.encode(msg)
    assert obp.frame_length(frame[:obp.HEADER_SIZE]) == len(frame)
    assert obp.decode(frame) == msg


@fuzz_settings(300)
@given(st.one_of(st.binary(max_size=300), st.binary(max_size=300).map(lambda b: obp.START + b)))
@example(b"\xc1\xc0" + b"\0" * 20)  # a header cut short: struct.error before the fix
def test_obp_random_bytes(data):
    _obp_decode(data)
    try:
        assert obp.HEADER_SIZE + obp.TRAILER_SIZE <= obp.frame_length(data) <= obp.MAX_PAYLOAD + obp.MIN_SIZE
    except (ShortFrameError, FramingError):
        pass


@fuzz_settings(300)
@given(OBP_MESSAGES, MUTATIONS)
def test_obp_mutated_frames(msg, ops):
    frame = obp.encode(msg)
    bad = mutate(frame, ops)
    decoded = _obp_decode(bad)
    if len(bad) < len(frame) and frame.startswith(bad):
        with pytest.raises(ShortFrameError):
            obp.decode(bad)
    if msg.checksum_type == obp.CHECKSUM_MD5 and len(ops) == 1 and decoded is not None:
        # one damaged byte in an MD5 frame: refused, or only the checksum type byte went from 1 to 0
        assert (decoded.message_type, decoded.data, decoded.flags, decoded.error, decoded.version,
                decoded.regarding) == (msg.message_type, msg.data, msg.flags, msg.error, msg.version, msg.regarding)


def test_obp_appended_bytes_are_refused():
    frame = obp.encode(obp.Message(obp.GET_TEMPERATURE, b"\x01\x02", checksum_type=obp.CHECKSUM_MD5))
    with pytest.raises(FramingError, match="header announces"):
        obp.decode(frame + b"\0")
    with pytest.raises(ShortFrameError, match="shorter than 44"):
        obp.frame_length(frame[:43])


def _tcd_values(seed: int, kind: str) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return {"random": lambda: rng.integers(0, tcd1304.MAX_COUNT + 1, tcd1304.ELEMENTS),
            "dark": lambda: np.zeros(tcd1304.ELEMENTS, int),
            "saturated": lambda: np.full(tcd1304.ELEMENTS, tcd1304.MAX_COUNT)}[kind]()


def _tcd_check(data: bytes) -> None:
    """decode_frame either returns the exact 12-bit values or raises the error the length and values call for."""
    if len(data) < tcd1304.FRAME_BYTES:
        with pytest.raises(ShortFrameError):
            tcd1304.decode_frame(data)
    elif len(data) > tcd1304.FRAME_BYTES:
        with pytest.raises(FramingError, match="extra"):
            tcd1304.decode_frame(data)
    elif np.frombuffer(data, "<u2").max() > tcd1304.MAX_COUNT:
        with pytest.raises(FramingError, match="misaligned"):
            tcd1304.decode_frame(data)
    else:
        values = tcd1304.decode_frame(data)
        assert values.shape == (tcd1304.ELEMENTS,) and tcd1304.encode_frame(values) == data


@fuzz_settings(50)
@given(st.integers(0, 2**32), st.sampled_from(["random", "dark", "saturated"]))
def test_tcd1304_round_trip(seed, kind):
    values = _tcd_values(seed, kind)
    np.testing.assert_array_equal(tcd1304.decode_frame(tcd1304.encode_frame(values)), values)


@fuzz_settings(200)
@given(st.one_of(st.binary(max_size=100), st.integers(0, 2**32).map(
    lambda s: np.random.default_rng(s).bytes(tcd1304.FRAME_BYTES + s % 3 - 1))))
def test_tcd1304_random_bytes(data):
    _tcd_check(data)


@fuzz_settings(200)
@given(st.integers(0, 2**32), st.sampled_from(["random", "dark", "saturated"]), MUTATIONS)
@example(0, "dark", [("insert", 7388, b"\0")])  # an extra byte was silently dropped before the fix
def test_tcd1304_mutated_frames(seed, kind, ops):
    _tcd_check(mutate(tcd1304.encode_frame(_tcd_values(seed, kind)), ops))


def _microspec_parse(line: bytes, trailing_comma: bool):
    try:
        values = microspec.parse_spectrum(line, trailing_comma=trailing_comma)
    except (DeviceError, FramingError):
        return None
    assert values.shape == (microspec.CHANNELS,) and values.dtype == np.int64 and values.min() >= 0
    return values


COUNTS = st.lists(st.one_of(st.integers(0, 1023), st.integers(0, 2**63 - 1)),
                  min_size=microspec.CHANNELS, max_size=microspec.CHANNELS)


@fuzz_settings(100)
@given(COUNTS, st.booleans())
def test_microspec_round_trip(values, trailing_comma):
    line = microspec.format_spectrum(values, trailing_comma)
    np.testing.assert_array_equal(microspec.parse_spectrum(line, trailing_comma=trailing_comma), values)


LINE_BYTES = st.one_of(
    st.binary(max_size=2000),
    st.text(alphabet="0123456789,,,,-+ _#\r\n\t.eE", max_size=2000).map(str.encode),
    st.integers(1, 40).map(lambda digits: b",".join([b"9" * digits] * microspec.CHANNELS)))


@fuzz_settings(300)
@given(LINE_BYTES, st.booleans())
@example(b",".join([b"9" * 20] * 288), False)  # OverflowError before the fix
def test_microspec_random_lines(line, trailing_comma):
    _microspec_parse(line, trailing_comma)


@fuzz_settings(200)
@given(COUNTS, st.booleans(), MUTATIONS)
def test_microspec_mutated_lines(values, trailing_comma, ops):
    _microspec_parse(mutate(microspec.format_spectrum(values, trailing_comma), ops), trailing_comma)


def test_microspec_refuses_an_overflowing_count():
    with pytest.raises(FramingError, match="too large"):
        microspec.parse_spectrum(b",".join([b"1" + b"0" * 19] * 288))


# ---------------------------------------------------------------------------------------------------
# 2. Control port


class _Service:
    """Stands in for device.service.measurement.Service: fixed replies, no hardware, no files."""

    def measure(self, trigger: str) -> dict:
        return {"ok": True, "verdict": "No_pest_present", "confidence": 0.99, "id": 1}

    def status(self) -> dict:
        return {"state": "ready"}

    def last(self) -> dict:
        return {"ok": True, "id": 1}

    def model_info(self) -> dict:
        return {"model": "m@000000000000"}


def _serve(chunks: list[bytes]) -> list[bytes]:
    """Replies to a byte stream delivered in ``chunks``, as the runner composes reader, dispatch and reply."""
    reader, service, out = LineReader(), _Service(), []
    for chunk in chunks:
        for text, error in reader.feed(chunk):
            out.append(reply(dispatch(text, service) if text is not None else {"ok": False, "error": error}))
        assert len(reader._buf) <= MAX_LINE  # the buffered partial line stays bounded
    return out


def _expected(line: bytes) -> tuple[bool, str | None]:
    """(ok, command) that the protocol promises for one line (without its LF)."""
    if len(line) > MAX_LINE:
        return False, None
    try:
        words = line.rstrip(b"\r").decode("ascii").split()
    except UnicodeDecodeError:
        return False, None
    if len(words) == 1 and words[0].upper() in COMMANDS:
        return True, words[0].upper()
    return False, None


PIECES = st.one_of(
    st.binary(max_size=80),
    st.sampled_from([b"MEASURE", b"status", b"Help", b"LAST", b"model", b"\n", b"\r\n", b"\r", b"\0", b" ",
                     b"\t", "\u00e9".encode(), b"\xff", b"A" * 70, b"MODEL extra", b"\x1c", b"../etc/passwd"]))


@fuzz_settings(300)
@given(st.lists(PIECES, max_size=30), st.data())
def test_control_port_any_bytes_any_split(pieces, data):
    stream = b"".join(pieces)
    cuts = sorted(data.draw(st.lists(st.integers(0, len(stream)), max_size=8)))
    chunks = [stream[a:b] for a, b in zip([0, *cuts], [*cuts, len(stream)])]
    with WATCH.only():
        replies = _serve(chunks)
    lines = stream.split(b"\n")[:-1]  # the part after the last LF is not a line yet
    assert len(replies) == len(lines)
    for line, raw in zip(lines, replies):
        assert raw.endswith(b"\n") and raw.count(b"\n") == 1
        answer = json.loads(raw.decode("ascii"))
        ok, command = _expected(line)
        assert answer["ok"] is ok, (line, answer)
        if ok:
            assert answer["command"] == command
        else:
            assert isinstance(answer["error"], str) and answer["error"]


def test_control_port_overlong_line_is_refused_whole():
    replies = _serve([b"M" * 10_000, b"EASURE\nSTATUS\n"])
    assert [json.loads(r)["ok"] for r in replies] == [False, True]
    assert "longer than 64 bytes" in json.loads(replies[0])["error"]


# ---------------------------------------------------------------------------------------------------
# 3. Spectrum files


def _spectra_or_error(path: Path):
    with WATCH.only(NO_UNPICKLING):
        try:
            spectra = read_spectra(path)
        except SpectrumFileError:
            return None
    assert spectra and all(isinstance(s, Spectrum) and len(s) >= 3 for s in spectra)
    return spectra


def _npz_bytes(**arrays) -> bytes:
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    return buf.getvalue()


def _zip_npz(arrays: dict, raw: dict | None = None) -> bytes:
    """An .npz archive, compressed, of ``arrays`` and of ``raw`` entries (name: bytes without a .npy header)."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        for k, v in arrays.items():
            with z.open(f"{k}.npy", "w") as f:
                np.lib.format.write_array(f, v)
        for k, v in (raw or {}).items():
            z.writestr(f"{k}.npy", v)
    return buf.getvalue()


VALID_NPZ = _npz_bytes(X=np.random.default_rng(0).normal(size=(2, 50)), wavenumber=np.linspace(400, 1800, 50))
SUFFIXES = [".csv", ".CSV", ".txt", ".dat", ".npz"]


@fuzz_settings(300)
@given(st.one_of(st.binary(max_size=400),
                 st.text(alphabet="0123456789.,;\t \n\r#eE+-naif\u00e9x", max_size=400).map(str.encode)))
def test_parse_two_columns_random_bytes(data):
    try:
        x, y = parse_two_columns(data, "fuzz.csv")
    except bridge_errors.SpectrumFileError:
        return
    assert x.dtype == y.dtype == np.float64 and x.shape == y.shape and x.ndim == 1 and x.size >= 1


@fuzz_settings(150)
@given(st.binary(max_size=400), st.sampled_from(SUFFIXES))
def test_read_spectra_random_bytes(tmp_path, data, suffix):
    path = tmp_path / f"fuzz{suffix}"
    path.write_bytes(data)
    _spectra_or_error(path)


@fuzz_settings(150)
@given(st.sampled_from(["csv", "npz"]), MUTATIONS)
def test_read_spectra_mutated_files(tmp_path, kind, ops):
    path = tmp_path / f"fuzz.{kind}"
    path.write_bytes(mutate(EXAMPLE_CSV.read_bytes() if kind == "csv" else VALID_NPZ, ops))
    _spectra_or_error(path)


_DTYPES = st.sampled_from([np.float64, np.float32, np.int16, np.uint8, np.bool_, np.complex128, "<U4", "S3",
                           "datetime64[s]", [("a", "<f8"), ("b", "<i4")]])


@fuzz_settings(150)
@given(hnp.arrays(_DTYPES, hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=6)),
       hnp.arrays(_DTYPES, hnp.array_shapes(min_dims=0, max_dims=2, min_side=0, max_side=6)),
       st.booleans())
def test_read_spectra_npz_type_confusion(tmp_path, X, wavenumber, both):
    path = tmp_path / "fuzz.npz"
    path.write_bytes(_npz_bytes(X=X, wavenumber=wavenumber) if both else _npz_bytes(X=X))
    spectra = _spectra_or_error(path)
    if spectra is not None:
        assert X.dtype.kind in "iuf" and wavenumber.dtype.kind in "iuf"


@fuzz_settings(150)
@given(st.integers(3, 60).flatmap(lambda n: st.tuples(
    st.lists(st.floats(-1e6, 1e6) | st.integers(-10**6, 10**6).map(float), min_size=n, max_size=n),
    st.lists(st.floats(-1e12, 1e12) | st.integers(0, 10**5).map(float), min_size=n, max_size=n))),
    st.sampled_from([",", ";", "\t", " "]), st.booleans(), st.sampled_from(["{!r}", "{:g}", "{:.6e}"]),
    st.booleans())
@example(([500.0, 500.5, 501.0], [1.0, 2.0, 3.0]), ";", True, "{:g}", False)  # "500;1" then "500,5;2"
def test_two_column_text_round_trip(columns, sep, decimal_comma, number_format, header):
    decimal_comma &= sep in ";\t"
    text = "# exported\nRaman shift" + sep + "counts\n" if header else ""
    for a, b in zip(*columns):
        a, b = (number_format.format(v).replace(".", "," if decimal_comma else ".") for v in (a, b))
        text += f"{a}{sep}{b}\n"
    x, y = parse_two_columns(text.encode(), "round-trip.csv")
    rtol = 0 if number_format == "{!r}" else 1e-5
    np.testing.assert_allclose(x, columns[0], rtol=rtol)
    np.testing.assert_allclose(y, columns[1], rtol=rtol)


class _Payload:
    """Marks, through the audit hook, any attempt to unpickle it."""

    def __reduce__(self):
        return (print, ("unpickled",))


@pytest.mark.parametrize("key", ["X", "wavenumber"])
def test_npz_object_arrays_are_never_unpickled(tmp_path, key):
    arrays = {"X": np.ones(5), "wavenumber": np.arange(5.0)}
    arrays[key] = np.array([_Payload()] * 5, dtype=object)
    path = tmp_path / "pickle.npz"
    path.write_bytes(_npz_bytes(**arrays))
    with WATCH.only(NO_UNPICKLING), pytest.raises(SpectrumFileError, match="not a readable .npz"):
        read_spectra(path)


@pytest.mark.parametrize("arrays, words", [
    ({"X": np.ones(5, complex), "wavenumber": np.arange(5.0)}, "complex128 values"),
    ({"X": np.ones((0, 5)), "wavenumber": np.arange(5.0)}, "holds no spectra"),
    ({"X": np.ones((400_000, 3), np.uint8), "wavenumber": np.arange(3.0)}, "split the file"),
])
def test_npz_regressions(tmp_path, arrays, words):
    path = tmp_path / "bad.npz"
    path.write_bytes(_npz_bytes(**arrays))
    with pytest.raises(SpectrumFileError, match=words):
        read_spectra(path)


def test_npz_that_unpacks_too_large_is_refused_unread(tmp_path, monkeypatch):
    monkeypatch.setattr(spectrum_files, "MAX_FILE_BYTES", 1 << 20)
    path = tmp_path / "bomb.npz"
    path.write_bytes(_zip_npz({"X": np.zeros(1 << 18), "wavenumber": np.arange(1 << 18, dtype=float)}))
    assert path.stat().st_size < 1 << 20
    with pytest.raises(SpectrumFileError, match="unpack to"):
        read_spectra(path)


def test_npz_entry_without_npy_header_is_refused(tmp_path):  # AttributeError before the fix
    path = tmp_path / "raw.npz"
    path.write_bytes(_zip_npz({"wavenumber": np.arange(5.0)}, {"X": b"1,2,3,4,5"}))
    with pytest.raises(SpectrumFileError, match="'X' is not a NumPy array"):
        read_spectra(path)


def test_text_larger_than_its_limit_is_refused():
    with pytest.raises(bridge_errors.SpectrumFileError, match="too large for a text spectrum"):
        parse_two_columns(b"1 2\n" * (spectrum_files.MAX_TEXT_BYTES // 4 + 1), "big.csv")


# ---------------------------------------------------------------------------------------------------
# 4. Configuration

HOSTILE_TOML_VALUES = st.one_of(
    st.sampled_from(["[]", "[[[[1]]]]", "{}", "{a = 1}", "nan", "inf", "-inf", "1e999", "9" * 30, "true", '""',
                     '"\\u0000"', '"/dev/tty\\u0000"', "1979-05-27", "07:32:00", "[1, 2, 3, 4, 5, 6, 7, 8]",
                     "[1e999, 1]", "[nan, 1]", "[true, false]", "[" + "9" * 400 + ", 1]", "0x7fffffffffffffff",
                     "-0", "1_000", '"obp"', '"tcd1304"', "785.0", "17", "[" * 3000 + "]" * 3000,
                     "1" * 5000]),
    st.integers().map(str), st.floats().map(repr),
    st.text(max_size=20).map(json.dumps))


def _config_or_error(text: str):
    try:
        config = parse_config(text)
    except ConfigError as exc:
        assert exc.problems and all(isinstance(p, str) for p in exc.problems)
        return None
    assert isinstance(config, Config) and config.spectrometer.protocol in PROTOCOLS
    assert all(np.isfinite(c) for c in config.spectrometer.coefficients or ())
    for name in (config.spectrometer.port, str(config.model.bundle), str(config.data_directory)):
        assert name and "\0" not in name
    return config


@fuzz_settings(300)
@given(st.text(max_size=400))
def test_config_random_text(text):
    _config_or_error(text)


@pytest.mark.parametrize("old, new, words", [
    ("laser_nm = 785.0", "laser_nm = " + "1" * 5000, "thousands of digits"),  # ValueError before the fix
    ("laser_nm = 785.0", "laser_nm = " + "[" * 3000, "nested too deeply"),  # RecursionError before the fix
    ('bundle = "/opt', 'bundle = "\\u0000/opt', "model.bundle: must name"),  # ValueError (null byte) before
    ('protocol = "obp"', 'protocol = "tcd1304"\ncoefficients = [1.0, nan]', "finite numbers"),  # was accepted
    ('protocol = "obp"', 'protocol = "tcd1304"\ncoefficients = [1.0, ' + "9" * 400 + "]",
     "finite numbers"),  # OverflowError before the fix
])
def test_config_regressions(old, new, words):
    with pytest.raises(ConfigError, match=words):
        parse_config(DEPLOY_TOML.replace(old, new))


@fuzz_settings(300)
@given(st.data())
def test_config_mutated_values(data):
    lines = DEPLOY_TOML.splitlines()
    keyed = [i for i, ln in enumerate(lines) if "=" in ln]
    for _ in range(data.draw(st.integers(1, 3))):
        i = data.draw(st.sampled_from(keyed))
        key = lines[i].split("=", 1)[0].lstrip("# ")
        lines[i] = f"{key}= {data.draw(HOSTILE_TOML_VALUES)}"
    _config_or_error("\n".join(lines))


@fuzz_settings(200)
@given(MUTATIONS)
def test_config_mutated_bytes(ops):
    _config_or_error(mutate(DEPLOY_TOML.encode(), ops).decode("utf-8", "replace"))


@fuzz_settings(100)
@given(st.sampled_from(tuple(PROTOCOLS)), st.floats(200, 1100), st.integers(1, 5000),
       st.lists(st.floats(-1e3, 1e3), min_size=2, max_size=7), st.sampled_from([None, 0, 17, 27]))
def test_config_valid_round_trip(protocol, laser, averages, coefficients, button):
    tcd = protocol == "tcd1304"
    text = (f'[spectrometer]\nprotocol = "{protocol}"\nport = "/dev/ttyUSB0"\nlaser_nm = {laser!r}\n'
            f"averages = {averages}\n" + (f"coefficients = {coefficients!r}\n" if tcd else "")
            + '[model]\nbundle = "/opt/m"\n' + (f"[triggers]\nbutton_pin = {button}\n" if button is not None else "")
            + '[data]\ndirectory = "/var/lib/raman-edge"\n')
    config = parse_config(text)
    assert (config.spectrometer.protocol, config.spectrometer.laser_nm, config.spectrometer.averages) == \
        (protocol, laser, averages)
    assert config.spectrometer.coefficients == (tuple(coefficients) if tcd else None)
    assert config.triggers.button_pin == button


# ---------------------------------------------------------------------------------------------------
# 5. Model bundles

BASE_ARRAYS = dict(np.load(SHIPPED / "model.npz", allow_pickle=False))
BASE_CARD_BYTES = (SHIPPED / "model.json").read_bytes()
BASE_CARD = json.loads(BASE_CARD_BYTES)


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    """A copy of the shipped bundle whose model.json and model.npz each example rewrites."""
    path = tmp_path_factory.mktemp("bundle") / "sers-pesticides"
    shutil.copytree(SHIPPED, path)
    return path


def _write(path: Path, *, card=None, card_bytes: bytes | None = None, arrays=None, npz: bytes | None = None):
    """Rewrite the bundle at ``path``; a new model.npz is signed into the card, so content checks run."""
    if arrays is not None:
        npz = _npz_bytes(**arrays)
    elif npz is None:
        npz = (SHIPPED / "model.npz").read_bytes()
    (path / "model.npz").write_bytes(npz)
    if card_bytes is None:
        card = json.loads(json.dumps(BASE_CARD if card is None else card))
        if isinstance(card.get("files"), dict) and isinstance(card["files"].get("model.npz"), dict):
            card["files"]["model.npz"]["sha256"] = hashlib.sha256(npz).hexdigest()
        card_bytes = json.dumps(card).encode()
    (path / "model.json").write_bytes(card_bytes)


def _bundle_or_error(path: Path):
    """load_bundle's result, None for a BundleError; a loaded bundle must classify without an exception."""
    with WATCH.only(NO_UNPICKLING):
        try:
            b = load_bundle(path)
        except BundleError:
            return None
    assert b.class_names and all(isinstance(c, str) for c in b.class_names)
    assert all(isinstance(f, Path) and isinstance(label, str) for f, label in b.examples)
    x = b.axis.values
    with np.errstate(all="ignore"):
        p = Classifier(b).probabilities([Spectrum(x, 1.0 + np.sin(x / 40.0))])
    assert p.shape == (1, len(b.class_names))
    return b


def test_shipped_bundle_passes_the_checks(workdir):
    _write(workdir)
    assert _bundle_or_error(workdir) is not None


@fuzz_settings(100)
@given(st.one_of(st.binary(max_size=300), MUTATIONS.map(lambda ops: mutate(BASE_CARD_BYTES, ops))))
def test_bundle_card_bytes(workdir, data):
    _write(workdir, card_bytes=data)
    _bundle_or_error(workdir)


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=10)
    | st.sampled_from([10**400, "../../etc/hostname", "/etc/hostname", "a" * 300, "model.npz"]),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=8)
CARD_PATHS = [("schema_version",), ("files",), ("files", "model.npz"), ("files", "model.npz", "sha256"),
              ("files", "model.tflite"), ("examples",), ("examples", 0), ("examples", 0, "file"),
              ("examples", 0, "label"), ("files", "../model.json"), ("files", "/etc/hostname"), ("files", "a" * 300)]


@fuzz_settings(150)
@given(st.sampled_from(CARD_PATHS), JSON_VALUES)
def test_bundle_card_type_confusion(workdir, where, value):
    card = json.loads(json.dumps(BASE_CARD))
    node = card
    for key in where[:-1]:
        node = node[key]
    node[where[-1]] = value
    _write(workdir, card_bytes=json.dumps(card).encode())  # the npz hash stays as it was
    _bundle_or_error(workdir)


@fuzz_settings(100)
@given(MUTATIONS)
def test_bundle_npz_bytes_resigned(workdir, ops):
    _write(workdir, npz=mutate((SHIPPED / "model.npz").read_bytes(), ops))
    _bundle_or_error(workdir)


def _array_change(arrays: dict, key: str, how: str, rng: np.random.Generator, value):
    a = arrays.get(key, np.zeros(3))
    changes = {
        "drop": lambda: None,
        "hostile": lambda: value,
        "float32": lambda: a.astype(np.float32) if a.dtype.kind in "iuf" else a,
        "text": lambda: a.astype(str),
        "complex": lambda: a.astype(complex) if a.dtype.kind in "iufc" else a,
        "transpose": lambda: a.T,
        "flatten": lambda: a.reshape(-1),
        "slice": lambda: a[..., :max(a.shape[-1] - 1, 0)] if a.ndim else a,
        "scalar": lambda: np.array(rng.normal()),
        "huge": lambda: a * 1e300 if a.dtype.kind in "iuf" else a,
        "nan": lambda: np.where(rng.random(a.shape) < 0.01, np.nan, a) if a.dtype.kind == "f" else a,
        "noise": lambda: rng.normal(size=a.shape) if a.dtype.kind in "iuf" else a,
        "code points": lambda: rng.integers(0xD000, 0x120000, 8).astype("<u4").view("<U2"),
    }
    with np.errstate(all="ignore"):
        new = changes[how]()
    if new is None:
        arrays.pop(key, None)
    else:
        arrays[key] = new


def changes(keys):
    """(entry, change, hostile array) for :func:`_array_change`."""
    return st.tuples(st.sampled_from(keys), st.sampled_from(
        ["drop", "hostile", "float32", "text", "complex", "transpose", "flatten", "slice", "scalar", "huge", "nan",
         "noise", "code points"]), hnp.arrays(_DTYPES, hnp.array_shapes(min_dims=0, max_dims=3, max_side=4)))


@fuzz_settings(200)
@given(st.lists(changes([*BASE_ARRAYS, "layer2_kernel", "layer2_bias"]), min_size=1, max_size=3),
       st.integers(0, 2**32))
@example([("axis_points", "hostile", np.array(10**9))], 0)  # an 8 GB axis was allocated before the fix
@example([("schema_version", "hostile", np.array(np.inf))], 0)  # OverflowError before the fix
def test_bundle_npz_content(workdir, edits, seed):
    arrays, rng = dict(BASE_ARRAYS), np.random.default_rng(seed)
    for key, how, value in edits:
        _array_change(arrays, key, how, rng, value)
    _write(workdir, arrays=arrays)
    _bundle_or_error(workdir)


def _small_convnet(seed: int) -> ConvNet:
    rng = np.random.default_rng(seed)
    w = lambda *shape: rng.normal(0, 0.3, shape)
    return ConvNet((Conv(w(5, 1, 4), w(4), 2, "relu"), MaxPool(2),
                    Residual(Conv(w(3, 4, 6), w(6), 2, "relu"), Conv(w(3, 6, 6), w(6), 1, "linear"),
                             SqueezeExcitation(w(6, 2), w(2), w(2, 6), w(6)), Conv(w(1, 4, 6), w(6), 2, "linear"))),
                   w(6, 6), w(6))


def _conv_arrays(net: ConvNet, spec=None) -> dict:
    """The npz entries of a convolutional bundle on the shipped model's axis and classes."""
    base_spec, weights = to_arrays(net)
    arrays = {k: BASE_ARRAYS[k] for k in ("schema_version", "name", "class_names", "axis_start", "axis_stop",
                                          "axis_points")}
    arrays.update({"normalisation": np.array("snv"), "input_layout": np.array(bundle_module.INTENSITIES_LAYOUT),
                   "architecture": np.array(json.dumps(base_spec if spec is None else spec)),
                   **{f"net.{k}": v for k, v in weights.items()}})
    return arrays


def test_convolutional_bundle_passes_the_checks(workdir):
    _write(workdir, arrays=_conv_arrays(_small_convnet(0)))
    assert _bundle_or_error(workdir).convnet is not None


SPEC_EDITS = st.tuples(
    st.integers(0, 5), st.sampled_from(["op", "name", "stride", "activation", "size", "se", "shortcut",
                                        "shortcut_stride", "conv1", "conv2"]),
    JSON_VALUES | st.sampled_from([0, 1, 2, 7, 10**6, 10**30, 1e999, "relu", "linear", "maxpool", "conv", "residual"]))


@fuzz_settings(200)
@given(st.integers(0, 2**32), st.lists(SPEC_EDITS, max_size=3),
       st.lists(changes(list(_conv_arrays(_small_convnet(0)))), max_size=2))
def test_convolutional_bundle_spec_and_weights(workdir, seed, edits, array_changes):
    net = _small_convnet(seed)
    spec, _ = to_arrays(net)
    for index, key, value in edits:  # conv1 and conv2 get a new stride, other keys a new value
        entry = spec[index % len(spec)]
        if key in ("conv1", "conv2") and isinstance(entry.get(key), dict):
            entry[key]["stride"] = value
        else:
            entry[key] = value
    arrays, rng = _conv_arrays(net, spec), np.random.default_rng(seed)
    for key, how, value in array_changes:
        _array_change(arrays, key, how, rng, value)
    _write(workdir, arrays=arrays)
    _bundle_or_error(workdir)


@pytest.mark.parametrize("spec_edit, replaced, words", [
    (lambda s: s[2]["conv2"].update(stride=2), {}, "branches give"),  # loaded, then failed to classify
    (lambda s: s[2].update(shortcut_stride=1), {}, "branches give"),  # loaded, then failed to classify
    (lambda s: s[1].update(size=10**6), {}, "longer than the 1499-point axis"),  # loaded, NaN probabilities
    (lambda s: s[0].update(stride=10**30), {}, "longer than the 1499-point axis"),  # loaded, NaN probabilities
    (lambda s: s[1].update(size=float("inf")), {}, "malformed"),  # OverflowError
    (None, {"net.op2.se.b1": np.zeros(3)}, "squeeze-excitation biases"),  # loaded, then failed to classify
    (None, {"net.op2.se.w1": np.zeros(())}, "malformed"),  # IndexError
    (None, {"net.head.bias": np.zeros((6, 1))}, "head's bias"),  # six rows of probabilities per spectrum
])
def test_convolutional_bundle_regressions(workdir, spec_edit, replaced, words):
    net = _small_convnet(0)
    spec, _ = to_arrays(net)
    if spec_edit is not None:
        spec_edit(spec)
    _write(workdir, arrays={**_conv_arrays(net, spec), **replaced})
    with pytest.raises(BundleError, match=words):
        load_bundle(workdir)


def test_npz_object_array_in_a_bundle_is_never_unpickled(workdir):
    arrays = dict(BASE_ARRAYS, class_names=np.array([_Payload()] * 6, dtype=object))
    _write(workdir, arrays=arrays)
    with WATCH.only(NO_UNPICKLING), pytest.raises(BundleError, match="cannot be read"):
        load_bundle(workdir)


@pytest.mark.parametrize("edit, words", [
    (lambda c: c["files"].update({"a" * 300: {"sha256": "0"}}), "cannot be read"),  # OSError before the fix
    (lambda c: c["files"].update({"/etc/hostname": {"sha256": "0"}}), "not a file inside the bundle"),
    (lambda c: c["files"].update({"../sers-pesticides/model.npz": {"sha256": "0"}}), "not a file inside"),
    (lambda c: c.update(examples=5), "examples"),  # TypeError when the service read the examples
    (lambda c: c.update(examples=[{"file": [1], "label": "x"}]), "examples"),
])
def test_bundle_card_regressions(workdir, edit, words):
    card = json.loads(json.dumps(BASE_CARD))
    edit(card)
    _write(workdir, card=card)
    with pytest.raises(BundleError, match=words):
        load_bundle(workdir)


@pytest.mark.parametrize("text", ["[" * 100_000, "1" * 5000])  # RecursionError, ValueError before the fix
def test_bundle_card_of_hostile_json(workdir, text):
    _write(workdir, card_bytes=text.encode())
    with pytest.raises(BundleError, match="thousands"):
        load_bundle(workdir)


@pytest.mark.parametrize("key, value, words", [
    ("axis_points", np.array(10**9), "longer than any model"),
    ("schema_version", np.array(np.inf), "finite numbers"),
    ("layer0_kernel", np.full((1521, 5), np.nan), "finite numbers"),
    ("scaler_mean", np.full(1521, "1.0"), "finite numbers"),
    ("feature_names", np.full(22 * 12, 0x110000, "<u4").view("<U12"), "does not hold text"),  # SystemError
    ("class_names", np.full(6, 0xD800, "<u4").view("<U1"), "does not hold text"),  # lone surrogates
    ("name", np.array(5), "does not hold text"),
])
def test_bundle_npz_regressions(workdir, key, value, words):
    _write(workdir, arrays=dict(BASE_ARRAYS, **{key: value}))
    with pytest.raises(BundleError, match=words):
        load_bundle(workdir)


def test_bundle_npz_that_unpacks_too_large_is_refused_unread(workdir, monkeypatch):
    monkeypatch.setattr(bundle_module, "MAX_NPZ_BYTES", 1 << 20)
    _write(workdir, npz=_zip_npz({**BASE_ARRAYS, "padding": np.zeros(1 << 18)}))
    with pytest.raises(BundleError, match="unpacks to"):
        load_bundle(workdir)


def test_bundle_npz_entry_without_npy_header_is_refused(workdir):  # AttributeError before the fix
    arrays = {k: v for k, v in BASE_ARRAYS.items() if k != "layer0_bias"}
    _write(workdir, npz=_zip_npz(arrays, {"layer0_bias": b"\xc5\xc4"}))
    with pytest.raises(BundleError, match="'layer0_bias' is not a NumPy array"):
        load_bundle(workdir)
