"""Accumulation (firmware_bridge.measure.accumulate): dark frames taken along the scans, so the mean's noise falls.

Through the real OBP driver and simulator: the laser sequence and the subtraction are checked against the
frames the device sent, and the noise of the accumulated mean against the negative control of one dark frame.
"""
import numpy as np
import pytest

from firmware_bridge import measure
from firmware_bridge.measure import SCANS_PER_DARK, accumulate
from firmware_bridge.protocols.obp.driver import OBPSpectrometer

pytestmark = pytest.mark.device


class Recording(OBPSpectrometer):
    """The OBP driver, keeping each frame it returns and each laser switch, in order."""

    def open(self):
        super().open()
        self.events = []

    def set_laser(self, on):
        super().set_laser(on)
        self.events.append("on" if on else "off")

    def acquire(self):
        counts, meta = super().acquire()
        self.events.append(("frame", self._lamp_on, counts.copy()))
        return counts, meta

    @property
    def _lamp_on(self):
        return self.port.line.device.laser_on


def after(scans):
    return lambda signals, raw, meta: len(signals) == scans


def test_a_dark_frame_is_taken_first_and_after_every_few_scans_and_their_mean_subtracted():
    with Recording("sim://obp?paced=0&hold=1&seed=3") as spec:
        spec.set_integration_time(0.05)
        signals, raw, meta = accumulate(spec, after(5))
    frames = [e for e in spec.events if e[0] == "frame"]
    darks = [c for _, lit, c in frames if not lit]
    scans = [c for _, lit, c in frames if lit]
    assert len(scans) == 5 and len(darks) == 1 + (5 - 1) // SCANS_PER_DARK == meta["dark_frames"]
    expected = [lit for i in range(5) for lit in ([False, True] if i % SCANS_PER_DARK == 0 else [True])]
    assert [lit for _, lit, _ in frames] == expected
    assert spec.events[-1] == "off" and meta["dark_subtracted"] is True
    np.testing.assert_array_equal(raw, np.array(scans))
    np.testing.assert_allclose(signals, np.array(scans) - np.mean(darks, axis=0))


def _noise_of_mean(scans: int, seed: int) -> float:
    """Std of the difference of two independent accumulated means of a dark-level sample, counts."""
    means = []
    for k in range(2):
        with OBPSpectrometer(f"sim://obp?paced=0&hold=1&seed={seed + k}&brightness=0.0001") as spec:
            spec.set_integration_time(0.05)
            signals, _, _ = accumulate(spec, after(scans))
        means.append(signals.mean(axis=0))
    return float(np.std(means[0] - means[1]) / np.sqrt(2))


def test_the_accumulated_mean_averages_the_dark_noise_down_too(monkeypatch):
    one = _noise_of_mean(1, seed=10)
    sixteen = _noise_of_mean(16, seed=20)
    # scans and darks both average: noise^2 = s^2 / 16 + s^2 / (16 / SCANS_PER_DARK), s the noise of one frame
    expected = one / np.sqrt(2) * np.sqrt(1 / 16 + SCANS_PER_DARK / 16)
    assert sixteen == pytest.approx(expected, rel=0.15)
    monkeypatch.setattr(measure, "SCANS_PER_DARK", 10 ** 6)  # negative control: one dark frame for all scans
    single_dark = _noise_of_mean(16, seed=30)
    assert single_dark == pytest.approx(one / np.sqrt(2) * np.sqrt(1 / 16 + 1), rel=0.15)
    assert single_dark > 1.7 * sixteen
