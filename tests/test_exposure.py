"""Auto-exposure (firmware_bridge.exposure) and each protocol's integration range, through the real drivers.

The oracle for a chosen time is the frame measured at it: its brightest pixel must land near the target
share of the detector's range, never saturated, and within the device's range and the configured maximum.
"""
import numpy as np
import pytest

from firmware_bridge.errors import SettingError, TooBrightError
from firmware_bridge.exposure import auto_expose, next_integration, peak_fraction
from firmware_bridge.integrity import is_saturated
from firmware_bridge.measure import acquire_signal
from firmware_bridge.protocols.tcd1304 import codec as tcd1304
from firmware_bridge.registry import PROTOCOLS, make_driver

TCD1304_POLYNOMIAL = [780.0, 0.1, 0.0]
SETTABLE = [name for name, p in PROTOCOLS.items() if not p.fixed_integration]


def driver(protocol: str, brightness: float, seed: int = 0):
    """An open driver on a held simulated sample of that brightness."""
    url = f"sim://{protocol}?paced=0&hold=1&seed={seed}&brightness={brightness}"
    d = make_driver(protocol, url, coefficients=TCD1304_POLYNOMIAL if protocol == "tcd1304" else None)
    d.open()
    return d


def measured_fraction(d) -> tuple[float, bool]:
    """The brightest pixel's share of the range in a frame at the driver's setting, and whether it saturated."""
    signal, raw, meta = acquire_signal(d)
    if not meta["dark_subtracted"]:  # as auto-exposure does: the offset from a frame too short to see light
        t = d.integration_s
        d.set_integration_time(d.integration_range_s[0])
        signal = raw - d.acquire()[0]
        d.set_integration_time(t)
    return peak_fraction(signal, raw, meta), is_saturated(raw, meta["full_scale"], bool(meta.get("inverted")))


@pytest.mark.parametrize("protocol", SETTABLE)
@pytest.mark.parametrize("brightness", [1, 10, 100, 1000])
def test_the_brightest_pixel_lands_at_the_target(protocol, brightness):
    with driver(protocol, brightness) as d:
        e = auto_expose(d, longest_s=5.0, target=0.7)
        fraction, saturated = measured_fraction(d)
    lo, hi = PROTOCOLS[protocol].integration_range_s
    assert lo <= e.integration_s <= min(hi, 5.0) and d.integration_s == pytest.approx(e.integration_s, rel=1e-3)
    assert not saturated
    if e.limited:  # only a dim sample: the longest time, and below the target
        assert e.integration_s == 5.0 and fraction < 0.7
    else:
        assert 0.6 <= fraction <= 0.8, (e.to_json(), fraction)


@pytest.mark.parametrize("protocol", SETTABLE)
def test_a_fixed_time_saturates_where_auto_exposure_does_not(protocol):
    """Negative control: the configured default time on a bright sample saturates, so the check above can fail."""
    with driver(protocol, 1000) as d:
        d.set_integration_time(0.1)
        assert measured_fraction(d)[1]


@pytest.mark.parametrize("protocol", SETTABLE)
def test_a_dim_sample_gets_the_configured_maximum_and_says_so(protocol):
    with driver(protocol, 0.01) as d:
        e = auto_expose(d, longest_s=2.0)
    assert e.integration_s == 2.0 and e.limited
    assert all(t < 2.0 for t, _ in e.probes)  # no probe as long as the measurement itself


@pytest.mark.parametrize("protocol", SETTABLE)
def test_the_device_range_or_its_dark_current_bounds_the_configured_maximum(protocol):
    with driver(protocol, 0.0001) as d:
        e = auto_expose(d, longest_s=1e6)
        fraction, saturated = measured_fraction(d)
    assert e.limited and not saturated and e.integration_s <= d.integration_range_s[1]
    assert e.integration_s == d.integration_range_s[1] or fraction > 0.3  # else as long as the dark current allows


@pytest.mark.parametrize("protocol", SETTABLE)
def test_saturated_at_the_shortest_time_is_too_bright_and_the_laser_is_off(protocol):
    with driver(protocol, 1e6) as d:
        d.set_integration_time(d.integration_range_s[0])
        assert measured_fraction(d)[1]
        with pytest.raises(TooBrightError, match="too bright: reduce laser power or move the sample"):
            auto_expose(d, longest_s=5.0)
        if d.has_laser:
            assert d.port.line.device.laser_on is False
        assert d.averages == 1


def test_auto_exposure_keeps_the_averages_and_refuses_a_fixed_device():
    with driver("obp", 10) as d:
        d.set_averages(7)
        auto_expose(d, longest_s=1.0)
        assert d.averages == 7
    with driver("groupgets", 1) as d:
        assert d.integration_range_s is None
        with pytest.raises(SettingError, match="fixed integration time"):
            auto_expose(d, longest_s=1.0)


@pytest.mark.parametrize("protocol", list(PROTOCOLS))
def test_every_driver_refuses_times_outside_its_protocol_range(protocol):
    spec = PROTOCOLS[protocol]
    with driver(protocol, 1) as d:
        if spec.fixed_integration:
            with pytest.raises(SettingError):
                d.set_integration_time(0.1)
            return
        lo, hi = spec.integration_range_s
        for bad, words in [(lo / 2, "below"), (hi * 2, "exceeds"), (float("nan"), "not a number")]:
            with pytest.raises(SettingError, match=words):
                d.set_integration_time(bad)
            assert spec.integration_problem(bad) is not None
        for good in (lo, hi):
            d.set_integration_time(good)
            assert spec.integration_problem(good) is None


def test_the_tcd1304_range_follows_its_master_clock():
    d = make_driver("tcd1304", "sim://tcd1304?paced=0", coefficients=TCD1304_POLYNOMIAL)
    assert d.integration_range_s == tcd1304.integration_range() == PROTOCOLS["tcd1304"].integration_range_s
    with pytest.raises(SettingError, match="below the TCD1304's minimum 10 us"):
        d.set_integration_time(6e-6)
    d.fm = 4_000_000
    assert d.integration_range_s == (20 / 4e6, 0xFFFFFFFF / 4e6)
    d.set_integration_time(6e-6)  # below the minimum at 2 MHz, not at 4 MHz
    assert d.integration_s == 6e-6


def frame(peak: float, offset: float, noise: float = 2.0, pixels: int = 500, seed: int = 0):
    """A synthetic frame: one Gaussian band of ``peak`` counts over ``offset``, on a 16383-count detector."""
    rng = np.random.default_rng(seed)
    x = np.arange(pixels)
    signal = peak * np.exp(-0.5 * ((x - 250) / 4) ** 2) + rng.normal(0, noise, pixels)
    return signal, signal + offset, {"full_scale": 16383}


def test_next_integration_extrapolates_linearly_above_the_offset():
    signal, raw, meta = frame(peak=1000.0, offset=1500.0)
    t, final, limited = next_integration(signal, raw, meta, 0.01, 0.7, 1e-5, 10.0)
    top = signal.max()
    assert final and not limited
    assert t == pytest.approx(0.01 * (0.7 * 16383 - 1500) / top, rel=1e-9)


def test_next_integration_probes_longer_when_nothing_stands_out_and_shorter_when_saturated():
    signal, raw, meta = frame(peak=5.0, offset=1500.0)  # 2.5 noise widths: nothing to extrapolate from
    assert next_integration(signal, raw, meta, 0.01, 0.7, 1e-5, 10.0) == (0.2, False, False)
    assert next_integration(signal, raw, meta, 0.01, 0.7, 1e-5, 0.1) == (0.1, True, True)
    signal, raw, meta = frame(peak=20000.0, offset=1500.0)
    raw = np.minimum(raw, 16383)
    assert next_integration(signal, raw, meta, 0.01, 0.7, 1e-5, 10.0) == (0.001, False, False)
    with pytest.raises(TooBrightError, match="too bright: reduce laser power or move the sample"):
        next_integration(signal, raw, meta, 1e-5, 0.7, 1e-5, 10.0)


def test_inverted_detectors_count_their_swing_down_to_zero():
    signal, _, _ = frame(peak=500.0, offset=0.0)
    meta = {"full_scale": 4095, "inverted": True, "dark_reference": 3600.0}
    raw = 3600.0 - signal
    assert peak_fraction(signal, raw, meta) == pytest.approx(signal.max() / 3600.0)
    t, final, _ = next_integration(signal, raw, meta, 0.01, 0.7, 1e-5, 10.0)
    assert final and t == pytest.approx(0.01 * 0.7 * 3600.0 / signal.max())
