"""The spike check of protocols without a checksum: real bands and shot noise pass, one corrupted pixel does not."""
import numpy as np
import pytest

from firmware_bridge.errors import SpikeError
from firmware_bridge.integrity import check_no_isolated_spikes
from firmware_bridge.protocols.tcd1304.simulator import tcd1304_instrument
from firmware_bridge.sim.serve import default_scene

pytestmark = pytest.mark.device


def frames(times: int, seconds: float = 0.05, seed: int = 0):
    """``times`` noisy TCD1304 exposures of every sample of the default scene (bright SERS bands), upright."""
    rng = np.random.default_rng(seed)
    instrument = tcd1304_instrument()
    scene = default_scene()
    for k in range(times):
        shift, intensity = scene.spectra[k % len(scene.spectra)]
        yield instrument.dark_level - instrument.render(shift, intensity, seconds, rng)


def test_bright_bands_with_their_shot_noise_pass():
    """Shot noise on a band top is several times the read noise between bands: no false spike in 240 frames."""
    for frame in frames(240):
        check_no_isolated_spikes(frame, "frame")


@pytest.mark.parametrize("where", ["on a band", "in the dark"])
def test_one_corrupted_pixel_is_caught(where):
    frame = next(frames(1)).astype(float)
    p = int(np.argmax(frame)) if where == "on a band" else int(np.argmin(frame[100:-100])) + 100
    around = frame[p - 15:p + 16]
    noise = np.std(np.diff(around, 2)) / np.sqrt(6)  # the shot and read noise there
    frame[p] += max(30 * noise, 40)
    with pytest.raises(SpikeError, match=f"pixel {p} stands"):
        check_no_isolated_spikes(frame, "frame")


def test_a_resolved_band_is_not_a_spike():
    x = np.arange(500, dtype=float)
    band = 3000.0 * np.exp(-0.5 * ((x - 250) / (3.0 / 2.3548)) ** 2)  # 3-pixel FWHM: the narrowest the optics give
    check_no_isolated_spikes(band + 100.0, "frame")
    band[250] += 3000.0  # the control: the same band with one pixel doubled
    with pytest.raises(SpikeError):
        check_no_isolated_spikes(band + 100.0, "frame")
