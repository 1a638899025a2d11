"""Spectrum quality: saturated, flat and too-weak spectra are refused with reasons; good ones pass."""
import numpy as np
import pytest
from helpers import BAND_AXIS, band_spectra

from device.inference.quality import problems
from trainer.data.degrade import degrade


def test_weak_flat_and_good_spectra():
    rng = np.random.default_rng(2)
    weak = degrade(band_spectra(1), BAND_AXIS, 2.0, rng)[0]
    assert any(p.startswith("too weak: SNR") and "integration time" in p for p in problems(weak))
    good = degrade(band_spectra(1), BAND_AXIS, 100.0, rng)[0]
    assert problems(good) == []
    assert problems(np.full(BAND_AXIS.size, 1234.0))[0].startswith("flat: ")
    assert problems(weak, min_snr=0) == []


def test_saturation_for_normal_and_inverted_detectors():
    y = band_spectra(1)[0]
    raw = 1000 + 15000 * y / y.max()
    raw[700:705] = 16383
    msg = problems(y, raw, {"full_scale": 16383})
    assert msg and msg[0].startswith("saturated: 5 pixels") and "shorten the integration time" in msg[0]
    assert problems(y, raw, {}) == []  # full scale unknown: not judged
    inverted = 3600 - 3000 * y / y.max()
    assert problems(y, inverted, {"full_scale": 4095, "inverted": True}) == []
    inverted[100:103] = 0
    assert problems(y, inverted, {"full_scale": 4095, "inverted": True})[0].startswith("saturated: 3 pixels")


def test_real_measured_spectra_pass(shipped_bundle):
    for path, _ in shipped_bundle.examples:
        x, y = np.loadtxt(path, delimiter=",").T
        assert problems(y) == [], path.name


@pytest.mark.parametrize("integration_s, reason", [(5.0, "saturated: "), (2e-5, "too weak: SNR")])
@pytest.mark.slow
def test_the_service_refuses_and_records_a_saturated_or_weak_measurement(tmp_path, shipped_bundle, integration_s,
                                                                        reason):
    from dataclasses import replace

    from test_service import config

    from device.service.measurement import Service

    cfg = config(tmp_path, shipped_bundle.path, "sim://obp?paced=0&seed=1")
    svc = Service(replace(cfg, spectrometer=replace(cfg.spectrometer, integration_s=integration_s)))
    r = svc.measure("command")
    assert not r["ok"] and r["rejected"] and r["error"].startswith("spectrum rejected: " + reason)
    row = svc.store.last()
    assert row.id == r["id"] and row.verdict is None and row.error.startswith("rejected: " + reason)
    assert row.raw is not None  # the refused spectrum is kept for inspection
    assert svc._spectrometer.port.line.device.laser_on is False
    svc.close()
