"""The system suitability test on the simulators: healthy instruments pass, injected calibration faults fail."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from firmware_bridge.measure import measure
from firmware_bridge.protocols.tcd1304.simulator import TCD1304_COEFFICIENTS
from firmware_bridge.raman_standards import RAMAN_STANDARDS
from firmware_bridge.registry import PROTOCOLS
from firmware_bridge.sim.standards import POLYSTYRENE_HEIGHTS as HEIGHTS
from firmware_bridge.sim.standards import cyclohexane, polystyrene, write_scene
from firmware_bridge.suitability import system_suitability

pytestmark = pytest.mark.device  # needs only the device extra

def polystyrene_scene(path: Path) -> Path:
    """A polystyrene spectrum (Lorentzian bands of 6 cm-1 at the reference positions) as a scene file."""
    return write_scene(path, *polystyrene())


#: Integration time (s) of a suitability measurement on each simulator: the weakest checked band >= 15 sigma.
SECONDS = {"obp": 2.0, "tcd1304": 0.05}


def run(url: str, laser: float = 785.0, coefficients=None, times: int = 1, standard: str = "polystyrene") -> list:
    """``times`` suitability tests of one simulated instrument (fresh noise each time)."""
    protocol = url.split("://")[1].split("?")[0]
    kwargs = {"coefficients": coefficients} if coefficients is not None else {}
    with PROTOCOLS[protocol].driver()(url, **kwargs) as spec:
        spec.set_integration_time(SECONDS[protocol])
        spec.set_averages(1 if protocol == "obp" else 8)
        measured = [measure(spec, laser) for _ in range(times)]
    return [system_suitability(m.shift, m.intensity, standard, laser_nm=laser) for m in measured]


@pytest.fixture(scope="module")
def scene(tmp_path_factory):
    return polystyrene_scene(tmp_path_factory.mktemp("ps") / "polystyrene.csv")


@pytest.mark.slow
@pytest.mark.parametrize("protocol", ["obp", "tcd1304"])
def test_a_healthy_instrument_passes_every_time(scene, protocol):
    coefficients = TCD1304_COEFFICIENTS if protocol == "tcd1304" else None
    results = run(f"sim://{protocol}?paced=0&seed=7&scene={scene}", coefficients=coefficients, times=100)
    failed = [r.reasons for r in results if not r.passed]
    assert not failed, failed[:3]
    errors = [abs(b["error"]) for r in results for b in r.bands if b["found"] is not None]
    assert sum(b["found"] is not None for b in results[0].bands) >= 4
    assert np.median(errors) < 0.5 and max(errors) < 3.0  # the noise of the weakest bands stays within its limit


@pytest.mark.slow
@pytest.mark.parametrize("protocol", ["obp", "tcd1304"])
def test_a_laser_line_off_by_0_3_nm_fails_every_time(scene, protocol):
    """The simulated laser at 785.3 nm, the instrument configured for 785.0: every band moves about 5 cm-1."""
    coefficients = TCD1304_COEFFICIENTS if protocol == "tcd1304" else None
    for r in run(f"sim://{protocol}?paced=0&seed=8&laser=785.3&scene={scene}", coefficients=coefficients, times=20):
        assert not r.passed and "off their positions" in r.reasons[0], r.reasons
        assert all(4 < abs(b["error"]) < 6 for b in r.bands if b["found"] is not None)


@pytest.mark.parametrize("protocol", ["obp", "tcd1304"])
def test_the_failed_test_names_the_laser_line_that_fits_and_that_line_passes(scene, protocol):
    coefficients = TCD1304_COEFFICIENTS if protocol == "tcd1304" else None
    url = f"sim://{protocol}?paced=0&seed=10&laser=785.3&scene={scene}"
    drifted = run(url, coefficients=coefficients)[0]
    assert not drifted.passed and abs(drifted.laser_nm_fit - 785.3) < 0.02, drifted.to_json()
    assert f"{drifted.laser_nm_fit:.3f} nm fits" in drifted.reasons[0]
    again = run(url, laser=drifted.laser_nm_fit, coefficients=coefficients)[0]
    assert again.passed and abs(again.offset_cm1) < 0.3, again.to_json()


@pytest.mark.slow
@pytest.mark.parametrize("fault", ["offset", "tilt"])
def test_a_wavelength_polynomial_off_by_0_5_nm_fails_every_time(scene, fault):
    """The TCD1304 configured with a polynomial 0.5 nm off: everywhere (offset) or at its far end (tilt)."""
    wrong = list(TCD1304_COEFFICIENTS)
    if fault == "offset":
        wrong[0] += 0.5
    else:
        wrong[1] += 0.5 / 3647  # 0 nm at the first pixel, 0.5 nm at the last
    for r in run(f"sim://tcd1304?paced=0&seed=9&scene={scene}", coefficients=tuple(wrong), times=20):
        assert not r.passed and any("off their positions" in reason for reason in r.reasons), r.reasons


@pytest.mark.slow
@pytest.mark.parametrize("protocol", ["obp", "tcd1304"])
def test_cyclohexane_passes_healthy_and_fails_a_drifted_laser(tmp_path, scene, protocol):
    """The other standard: 20 healthy tests pass, 20 with the laser 0.3 nm off fail; polystyrene is not it."""
    cyclohexane_scene = write_scene(tmp_path / "cyclohexane.csv", *cyclohexane())
    coefficients = TCD1304_COEFFICIENTS if protocol == "tcd1304" else None
    url = f"sim://{protocol}?paced=0&seed=11&scene={cyclohexane_scene}"
    healthy = run(url, coefficients=coefficients, times=20, standard="cyclohexane")
    assert all(r.passed for r in healthy), [r.reasons for r in healthy if not r.passed][:3]
    assert sum(b["found"] is not None for b in healthy[0].bands) >= 4
    for r in run(url + "&laser=785.3", coefficients=coefficients, times=20, standard="cyclohexane"):
        assert not r.passed and "off their positions" in r.reasons[0], r.reasons
    wrong = run(f"sim://{protocol}?paced=0&seed=12&scene={scene}", coefficients=coefficients, standard="cyclohexane")
    assert not wrong[0].passed, wrong[0].to_json()


def test_a_spectrometer_that_resolves_no_band_is_told_so(scene):
    """The C12880MA sketches (about 140 cm-1 line width) separate none of polystyrene's bands."""
    for protocol in ("microspec", "groupgets"):
        with PROTOCOLS[protocol].driver()(f"sim://{protocol}?paced=0&seed=4&scene={scene}") as spec:
            m = measure(spec, 532.0)
        r = system_suitability(m.shift, m.intensity, laser_nm=532.0)
        assert not r.passed and r.reasons[0].startswith("no polystyrene band inside the range is resolved"), r.reasons
        assert not any("nan" in reason for reason in r.reasons)


def test_no_standard_in_the_beam_fails_with_the_reason(scene):
    examples = Path(__file__).resolve().parents[1] / "models" / "sers-pesticides" / "examples"
    r = run(f"sim://obp?paced=0&seed=1&scene={sorted(examples.glob('*/*'))[0]}")[0]
    assert not r.passed and r.to_json()["result"] == "FAIL" and r.reasons


def test_resolution_and_snr_limits():
    x = np.linspace(100, 3500, 2000)
    sharp = sum(h / (1 + ((x - b) / 3.0) ** 2) for b, h in zip(RAMAN_STANDARDS["polystyrene"], HEIGHTS))
    noise = np.random.default_rng(0).normal(0, 0.002, x.size)
    assert system_suitability(x, 1000 * (sharp + noise)).passed
    broad = sum(h / (1 + ((x - b) / 20.0) ** 2) for b, h in zip(RAMAN_STANDARDS["polystyrene"], HEIGHTS))
    r = system_suitability(x, 1000 * (broad + noise))
    assert not r.passed and any(reason.startswith("resolution") for reason in r.reasons)
    weak = system_suitability(x, sharp + np.random.default_rng(1).normal(0, 0.06, x.size))
    assert not weak.passed and any(reason.startswith("SNR") or "found" in reason for reason in weak.reasons)
