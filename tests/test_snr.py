"""The one SNR: the degradation to SNR s gives spectra whose SNR measured on each one is s."""
import numpy as np
import pytest
from helpers import BAND_AXIS, band_spectra

from device.inference.snr import band_height, measured_snr, noise_sd
from trainer.data.degrade import degrade


@pytest.mark.parametrize("shot_fraction", [0.0, 0.5])
@pytest.mark.parametrize("snr", [100.0, 50.0, 20.0, 5.0])
def test_the_degradation_to_an_snr_measures_as_that_snr(snr, shot_fraction):
    spectra = degrade(band_spectra(24), BAND_AXIS, snr, np.random.default_rng(1), shot_fraction=shot_fraction)
    measured = measured_snr(spectra)
    assert np.median(measured) == pytest.approx(snr, rel=0.15)
    assert np.all(np.abs(measured / snr - 1) < 0.35)  # every spectrum, not only the median


def test_the_neighbouring_levels_do_not_pass_for_each_other():
    twenty, fifty = (np.median(measured_snr(degrade(band_spectra(24), BAND_AXIS, s, np.random.default_rng(1))))
                     for s in (20, 50))
    assert fifty / twenty == pytest.approx(2.5, rel=0.15)


def test_very_weak_spectra_read_below_the_default_limit():
    assert measured_snr(degrade(band_spectra(24), BAND_AXIS, 2.0, np.random.default_rng(1))).max() < 5.0


def test_the_noise_estimate_is_the_standard_deviation_of_white_noise():
    noise = np.random.default_rng(3).normal(0, 2.5, (20, 4000))
    assert np.median(noise_sd(noise)) == pytest.approx(2.5, rel=0.03)
    assert noise_sd(np.linspace(0, 100, 4000)) == pytest.approx(0, abs=1e-9)  # a straight line has no noise


def test_one_spectrum_and_a_batch_agree():
    Y = degrade(band_spectra(3), BAND_AXIS, 20.0, np.random.default_rng(4))
    assert [measured_snr(y) for y in Y] == pytest.approx(list(measured_snr(Y)))
    assert band_height(Y[0]) == pytest.approx(Y[0].max() - np.median(Y[0]))
    assert measured_snr(np.full(50, 3.0)) == np.inf
