"""Fuzz tests of the service configuration (device.service.config): random text, hostile values, round trips."""
from __future__ import annotations

import json

import numpy as np
import pytest
from fuzzing import MUTATIONS, ROOT, fuzz_settings, mutate
from hypothesis import given
from hypothesis import strategies as st

from device.service.config import Config, ConfigError, parse_config
from firmware_bridge.registry import PROTOCOLS

pytestmark = pytest.mark.device  # needs only the device extra

DEPLOY_TOML = (ROOT / "deploy" / "raman-edge.toml").read_text()


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
@pytest.mark.slow
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


@pytest.mark.slow
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


@pytest.mark.slow
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
