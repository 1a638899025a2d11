"""Resampling onto a model axis: against np.interp, batches, no extrapolation, axis matching and its cache."""
import numpy as np
import pytest

from device.errors import AxisCoverageError
from device.inference.readers import read_spectra
from device.inference.resample import Resampler, resample
from device.inference.spectrum import Axis

pytestmark = pytest.mark.device  # needs only the device extra


def test_matches_numpy_interp_on_real_instrument_files(raw_files):
    axis = Axis(501, 1999, 1499)
    for f in raw_files[::15]:
        s = read_spectra(f)[0]
        got = resample(s.shift, s.intensity, axis)
        np.testing.assert_allclose(got, np.interp(axis.values, s.shift, s.intensity), rtol=1e-12, atol=1e-9)


def test_batch_equals_rows_and_input_is_not_modified():
    rng = np.random.default_rng(0)
    src = np.sort(rng.uniform(400, 1900, 700))
    src[0], src[-1] = 400, 1900
    Y = rng.normal(size=(4, 700))
    Y.flags.writeable = False
    r = Resampler(src, Axis(450, 1800, 2721))
    batch = r(Y)
    assert batch.shape == (4, 2721)
    for i in range(4):
        np.testing.assert_allclose(batch[i], np.interp(r.target.values, src, Y[i]), rtol=1e-12, atol=1e-12)


def test_identity_axis_returns_a_copy():
    axis = Axis(501, 1999, 1499)
    y = np.arange(1499.0)
    r = Resampler(axis.values, axis)
    out = r(y)
    assert r.identity and np.array_equal(out, y) and out is not y


@pytest.mark.parametrize("lo, hi", [(502, 1999), (501, 1998), (600, 700)])
def test_refuses_to_extrapolate(lo, hi):
    src = np.linspace(lo, hi, 500)
    with pytest.raises(AxisCoverageError, match="refused rather than extrapolated"):
        Resampler(src, Axis(501, 1999, 1499))


def test_end_points_within_tolerance_are_accepted():
    axis = Axis(501, 1999, 1499)
    src = np.linspace(501 + 1e-9, 1999 - 1e-9, 800)
    out = Resampler(src, axis)(np.ones(800))
    np.testing.assert_allclose(out, 1.0)


def test_matches_recognises_the_same_axis():
    src = np.linspace(400, 2000, 100)
    r = Resampler(src, Axis(500, 1900, 50))
    assert r.matches(src) and r.matches(src.copy()) and not r.matches(src + 1)


def test_cache_reuses_and_evicts():
    from device.inference.resample import ResamplerCache

    cache = ResamplerCache(Axis(500, 1900, 50), size=2)
    a, b, c = (np.linspace(400, 2000 + k, 100) for k in range(3))
    ra = cache.get(a)
    assert cache.get(a.copy()) is ra  # same axis, same weights
    cache.get(b)
    cache.get(c)  # a is the oldest and goes
    assert cache.get(a) is not ra
    with pytest.raises(AxisCoverageError):
        cache.get(np.linspace(600, 2000, 100))
